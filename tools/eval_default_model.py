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



FORMATS = [  # (label, needle format, indented like the line it precedes, tab-indented context)
    ("const", "const", False, False),
    ("const, tab-indented code", "const", True, True),
    ("let, indented", "let", True, False),
    ("Python NAME = VALUE, indented", "python", True, False),
    ("object property NAME: VALUE,", "property", True, False),
]


def run_format_probes(model, tok, cbs, L, depth, fmt, indented, tabs, n, rng):
    hits, misses = 0, []
    for i in range(n):
        cb = cbs[i % len(cbs)]
        start = rng.randrange(len(cb.files))
        ctx = dmd.codebase_lines(cb.files[start:] + cb.files[:start])
        if tabs:
            ctx = dmd.tabify(ctx)
        name, value = dmd.needle_name(rng), dmd.needle_value(rng)
        prompt, _ = dmd.build_probe_fmt(tok, ctx, L, depth, name, value, fmt, indented)
        got = answer(model, tok, prompt)
        hits += int(got == value)
        if got != value:
            misses.append((value, got))
    return hits, misses


def code_sim(prediction: str, truth: str) -> float:
    """LongBench's code_sim_score: the first predicted line without ` # or //, fuzz ratio (difflib's
    ratio, as fuzzywuzzy computes it without python-Levenshtein), both sides trimmed as kvlens does."""
    import difflib
    line = ""
    for cand in prediction.lstrip("\n").split("\n"):
        if "`" not in cand and "#" not in cand and "//" not in cand:
            line = cand
            break
    return round(100 * difflib.SequenceMatcher(None, line.strip(), truth.strip()).ratio()) / 100


def continue_line(model, tok, prompt: str, max_new: int = 40) -> str:
    """Greedy continuation up to the end of its first non-blank line."""
    ids = torch.tensor([tok.encode(prompt).ids])
    with torch.no_grad():
        out = model(input_ids=ids, use_cache=True)
        past = out.past_key_values
        nxt = out.logits[0, -1].argmax().item()
        got = []
        for _ in range(max_new):
            got.append(nxt)
            text = tok.decode(got)
            if "\n" in text.lstrip("\n") and text.strip():
                break
            out = model(input_ids=torch.tensor([[nxt]]), past_key_values=past, use_cache=True)
            past = out.past_key_values
            nxt = out.logits[0, -1].argmax().item()
    return tok.decode(got)


def fit_code_prompt(tok, lead: list[str], filler: list[str], target: list[str], L: int) -> tuple[str, int]:
    """lead + as many filler lines as fit + target, ending with a newline (the engine's completion prompt);
    when lead + target alone overflow, the top of target is cut."""
    def build(n, cut=0):
        return "\n".join(lead + filler[:n] + target[cut:]) + "\n"
    if dmd.count_tokens(tok, build(0)) > L:
        lo, hi = 1, len(target) - 1
        while lo < hi:
            mid = (lo + hi) // 2
            if dmd.count_tokens(tok, "\n".join(lead + target[:1] + target[1 + mid:]) + "\n") <= L:
                hi = mid
            else:
                lo = mid + 1
        return "\n".join(lead + target[:1] + target[1 + lo:]) + "\n", 0
    lo, hi = 0, len(filler)
    limit, chars = 0, 0
    while limit < len(filler) and chars <= L * 8:
        chars += len(filler[limit]) + 1
        limit += 1
    hi = limit
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if dmd.count_tokens(tok, build(mid)) <= L:
            lo = mid
        else:
            hi = mid - 1
    return build(lo), lo


def heuristics(prefix: list[str]) -> tuple[str, str]:
    """(repeat the previous non-blank line, copy the line after the earlier line most similar to it)."""
    import difflib
    idx = [i for i, l in enumerate(prefix) if l.strip()]
    if not idx:
        return "", ""
    last = idx[-1]
    prev = prefix[last].strip()
    best, best_r = None, -1.0
    for j in idx[:-1]:
        r = difflib.SequenceMatcher(None, prefix[j].strip(), prev).ratio()
        if r > best_r:
            best, best_r = j, r
    copy = prev
    if best is not None:
        after = [i for i in idx if i > best]
        copy = prefix[after[0]].strip() if after else prev
    return prev, copy


def completion_probes(model, tok, cbs, L, n, rng, crossfile=False):
    """Next-line (or cross-file) completion on held-out code: scores of the model and the two heuristics;
    for cross-file also the model without the defining file in the context (what eviction costs)."""
    rows = []
    tries = 0
    while len(rows) < n and tries < n * 20:
        tries += 1
        cb = cbs[len(rows) % len(cbs)]
        fi = rng.randrange(len(cb.files))
        path, text = cb.files[fi]
        flines = text.split("\n")
        lead = []
        if crossfile:
            key = cb.name
            defs = _DEFS.setdefault(key, dmd.unique_definitions(cb.files))
            sites = dmd.crossfile_sites(cb.files, fi, defs)
            if not sites:
                continue
            t, sym, (dfi, dline) = rng.choice(sites)
            dpath, dtext = cb.files[dfi]
            dl = dtext.split("\n")
            radius = len(dl)
            while radius > 4 and dmd.count_tokens(tok, "\n".join(dl[max(0, dline - radius):dline + radius + 1])) > L // 2:
                radius //= 2
            lead = [f"// file: {dpath}"] + dl[max(0, dline - radius):dline + radius + 1]
            skip = {fi, dfi}
        else:
            lang = dmd.lang_of_path(path)
            cands = [i for i in range(3, len(flines)) if dmd.is_target_line(flines[i], lang)]
            if not cands:
                continue
            t = rng.choice(cands)
            skip = {fi}
        others = [cb.files[j] for j in range(len(cb.files)) if j not in skip]
        rng.shuffle(others)
        filler = dmd.codebase_lines(others)
        target = [f"// file: {path}"] + flines[:t]
        prompt, _ = fit_code_prompt(tok, lead, filler, target, L)
        truth = flines[t].strip()
        pred = continue_line(model, tok, prompt)
        rep, copy = heuristics(flines[:t])
        row = {"model": code_sim(pred, truth), "repeat": code_sim(rep, truth), "copy": code_sim(copy, truth),
               "pred": pred.strip()[:80], "truth": truth[:80]}
        if crossfile:
            bare, _ = fit_code_prompt(tok, [], filler, target, L)
            row["no_lead"] = code_sim(continue_line(model, tok, bare), truth)
        rows.append(row)
    return rows


_DEFS: dict = {}


def vartrack_probes(model, tok, cbs, L, n, rng, hops=4):
    """The engine's vartrack task: `const v0 = VALUE;` at a depth, hops `const v(i+1) = v(i);` after it,
    query `// v_last =`."""
    hits = 0
    for i in range(n):
        cb = cbs[i % len(cbs)]
        start = rng.randrange(len(cb.files))
        ctx = dmd.codebase_lines(cb.files[start:] + cb.files[:start])
        names = [f"v_{rng.getrandbits(16):04x}" for _ in range(hops + 1)]
        value = dmd.needle_value(rng)
        d0 = rng.choice([0.0, 0.25, 0.5, 0.75])
        depths = sorted(d0 + (1 - d0) * rng.random() for _ in range(hops))
        ins = [(d0, f"const {names[0]} = {value};")] + [(d, f"const {names[k + 1]} = {names[k]};") for k, d in enumerate(depths)]

        def build(m):
            out, k = [], 0
            at = [round(d * m) for d, _ in ins]
            for j in range(m + 1):
                for q, (_, line) in enumerate(ins):
                    if at[q] == j:
                        out.append(line)
                if j < m:
                    out.append(ctx[j])
            return "\n".join(out + [f"// {names[-1]} ="])
        limit, chars = 0, 0
        while limit < len(ctx) and chars <= L * 8:
            chars += len(ctx[limit]) + 1
            limit += 1
        lo, hi = 0, limit
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if dmd.count_tokens(tok, build(mid)) <= L:
                lo = mid
            else:
                hi = mid - 1
        hits += int(answer(model, tok, build(lo)) == value)
    return hits, n


def mean(xs):
    return sum(xs) / len(xs) if xs else float("nan")


def render(res: dict) -> str:
    out = []
    n_cell = res["probes_per_cell"]
    out.append(f"Needle probe (the engine's `const NAME = VALUE;` / `// NAME =`), full KV cache, held-out code "
               f"({n_cell} probes per cell: {res['per_lang']} each of TypeScript, JavaScript, Python; greedy decoding in transformers):\n")
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
    if res.get("formats"):
        nf = res["format_per_cell"]
        out.append(f"\nNeedle formats (query `// NAME =` for all; {nf} probes per length and depth, "
                   f"all five depths d=0 ... d=1 pooled, so {5 * nf} per cell):\n")
        out.append("| format | " + " | ".join(f"{L}" for L in LENGTHS) + " |")
        out.append("|---" * (len(LENGTHS) + 1) + "|")
        for label, *_ in FORMATS:
            out.append(f"| {label} | " + " | ".join(pct(*res["formats"][f"{label}:{L}"]) for L in LENGTHS) + " |")
        out.append("\nThe same by depth, all formats and lengths pooled:\n")
        out.append("| " + " | ".join(f"d={d:g}" for d in DEPTHS) + " |")
        out.append("|---" * len(DEPTHS) + "|")
        out.append("| " + " | ".join(pct(*res["format_depth"][f"{d}"]) for d in DEPTHS) + " |")
    if res.get("completion"):
        out.append("\nNext-line completion on held-out code, LongBench `code_sim_score` (mean over probes), model "
                   "(greedy) beside two heuristics on the same probes: *repeat* the previous non-blank line, *copy* "
                   "the line that followed the earlier line most similar to it:\n")
        out.append("| L (tokens) | language | probes | model | repeat | copy |")
        out.append("|---|---|---|---|---|---|")
        for L in LENGTHS:
            allrows = []
            for lang in LANGS:
                rows = res["completion"][f"{L}:{lang}"]
                allrows += rows
                out.append(f"| {L} | {lang} | {len(rows)} | {mean([r['model'] for r in rows]):.2f} | "
                           f"{mean([r['repeat'] for r in rows]):.2f} | {mean([r['copy'] for r in rows]):.2f} |")
            out.append(f"| {L} | **all** | {len(allrows)} | **{mean([r['model'] for r in allrows]):.2f}** | "
                       f"{mean([r['repeat'] for r in allrows]):.2f} | {mean([r['copy'] for r in allrows]):.2f} |")
    if res.get("crossfile"):
        out.append("\nCross-file completion (the next line uses a symbol defined only in another file, which opens "
                   "the context) and variable tracking (a value passed along 4 assignments, exact match):\n")
        out.append("| L (tokens) | crossfile probes | model | model without the defining file | repeat | copy | vartrack |")
        out.append("|---|---|---|---|---|---|---|")
        for L in LENGTHS:
            rows = res["crossfile"][f"{L}"]
            vt = res["vartrack"][f"{L}"]
            out.append(f"| {L} | {len(rows)} | {mean([r['model'] for r in rows]):.2f} | "
                       f"{mean([r['no_lead'] for r in rows]):.2f} | {mean([r['repeat'] for r in rows]):.2f} | "
                       f"{mean([r['copy'] for r in rows]):.2f} | {pct(*vt)} |")
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
    ap.add_argument("--format-per-cell", type=int, default=3, help="probes per (format, L, depth); 0 skips")
    ap.add_argument("--completion-per-lang", type=int, default=20, help="completion probes per (L, language); 0 skips")
    ap.add_argument("--crossfile", type=int, default=15, help="crossfile and vartrack probes per L; 0 skips")
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
    if args.format_per_cell:
        res["format_per_cell"] = args.format_per_cell
        res["formats"], res["format_depth"] = {}, {f"{d}": [0, 0] for d in DEPTHS}
        for label, fmt, indented, tabs in FORMATS:
            for L in LENGTHS:
                h_all = n_all = 0
                for d in DEPTHS:
                    rng = random.Random(f"{args.seed}:fmt:{label}:{L}:{d}")
                    h, misses = run_format_probes(model, tok, held, L, d, fmt, indented, tabs, args.format_per_cell, rng)
                    h_all += h
                    n_all += args.format_per_cell
                    res["format_depth"][f"{d}"][0] += h
                    res["format_depth"][f"{d}"][1] += args.format_per_cell
                    if misses:
                        print(f"  miss {label} L={L} d={d}: {misses[:3]}", flush=True)
                res["formats"][f"{label}:{L}"] = (h_all, n_all)
                print(f"format {label} L={L}: {h_all}/{n_all} ({(time.time()-t0)/60:.1f} min)", flush=True)
    if args.completion_per_lang:
        res["completion"] = {}
        for L in LENGTHS:
            for lang in LANGS:
                rng = random.Random(f"{args.seed}:completion:{L}:{lang}")
                rows = completion_probes(model, tok, by_lang[lang], L, args.completion_per_lang, rng)
                res["completion"][f"{L}:{lang}"] = rows
                print(f"completion L={L} {lang}: model {mean([r['model'] for r in rows]):.3f} repeat "
                      f"{mean([r['repeat'] for r in rows]):.3f} copy {mean([r['copy'] for r in rows]):.3f} "
                      f"({(time.time()-t0)/60:.1f} min)", flush=True)
                for r in rows[:2]:
                    print(f"    {r['truth']!r} <- {r['pred']!r}", flush=True)
    if args.crossfile:
        res["crossfile"], res["vartrack"] = {}, {}
        for L in LENGTHS:
            rng = random.Random(f"{args.seed}:crossfile:{L}")
            rows = completion_probes(model, tok, held, L, args.crossfile, rng, crossfile=True)
            res["crossfile"][f"{L}"] = rows
            rng = random.Random(f"{args.seed}:vartrack:{L}")
            res["vartrack"][f"{L}"] = vartrack_probes(model, tok, held, L, args.crossfile, rng)
            print(f"crossfile L={L}: model {mean([r['model'] for r in rows]):.3f} no lead "
                  f"{mean([r['no_lead'] for r in rows]):.3f} copy {mean([r['copy'] for r in rows]):.3f}; vartrack "
                  f"{res['vartrack'][f'{L}']} ({(time.time()-t0)/60:.1f} min)", flush=True)
    if args.loss_chunks:
        unigram = fit_unigram(tok, 8.0, args.seed)
        for lang in LANGS:
            rng = random.Random(f"{args.seed}:loss:{lang}")
            res["loss"][lang] = heldout_loss(model, tok, by_lang[lang], unigram, args.loss_chunks, 1024, rng)
            print(f"loss {lang}: model {res['loss'][lang][0]:.3f} unigram {res['loss'][lang][1]:.3f}", flush=True)
    res["minutes"] = (time.time() - t0) / 60
    tables = render(res) if args.loss_chunks else json.dumps(res["cells"])
    print(tables)
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))
    if not args.no_card and args.loss_chunks and len(LENGTHS) == 3:
        write_card(args.model / "README.md", tables)


if __name__ == "__main__":
    main()

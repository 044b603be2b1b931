"""Trains the embedded default model (models/default): a small Llama-format code model that
retrieves values defined far back in a long prompt.

Data: real source code from the training split of default_model_data.py, with synthetic
`const NAME = VALUE;` definitions ("needles") inserted at line boundaries and queried later as
`// NAME = VALUE`. Every token carries loss (so the model is also a language model of code); the
answer tokens of queries weigh 10x, the random digits of the definitions weigh 0 (they are
unpredictable by construction and only add noise). Other ingredients that each made a measured
difference in earlier runs: decoy definitions sharing the word pair of a needle, needles right
after BOS, repeated spans of 2-8 lines (plain copying practice), and a length curriculum ending
with a large share of 4k-token sequences so that far needles are seen at full length.

Retrieval-dense sequences ("dense" stages: 3-8 needles, every one queried, code tokens weighted
0.3, repeated spans in 60% of sequences) are what made the copy circuit form on this diverse
corpus; plain needle data alone left the answer loss flat. "mixed" stages draw half of their
sequences dense.

By default the stages and the LR curve follow wall-clock fractions of --minutes (the machine is
shared, so measured speed varies); the steps each stage took are written to train_meta.json, and
--schedule steps --replay <train_meta.json> repeats a run step for step with the same seed.

The shipped model was made in five phases, each continuing from the previous one with --init;
models/default/README.md lists the exact flags and steps. Phase 5, for example:
  python tools/train_default_model.py --init <phase 4 dir> --warmup 5 --lr 3e-4 \
      --stages 1024:4:0.45:dense,4096:1:0.55:mixed --minutes 6.3 --out /work/train-cache/run5
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAYON_NUM_THREADS", "1")

import torch  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import default_model_data as dmd  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
LANG_SHARE = {"typescript": 0.35, "javascript": 0.35, "python": 0.30}
# (seq len, batch, share of training time); tokens/s measured on this machine with 1 thread and
# bf16 autocast for this model size, used only to turn minutes into a fixed step count.
STAGES = [(256, 16, 0.10, True), (512, 8, 0.08, True), (512, 8, 0.05, False), (1024, 4, 0.14, False),
          (2048, 2, 0.25, False), (4096, 1, 0.38, False)]
TOK_PER_S = {256: 4200, 512: 4200, 1024: 4000, 2048: 3400, 4096: 2600}


def model_config(vocab_size: int, args) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=vocab_size, hidden_size=args.width, intermediate_size=args.ffn,
        num_hidden_layers=args.layers, num_attention_heads=args.heads, num_key_value_heads=args.heads,
        head_dim=args.width // args.heads, max_position_embeddings=8192, rope_theta=5e5,
        rms_norm_eps=1e-5, tie_word_embeddings=True, attention_bias=False, mlp_bias=False,
        bos_token_id=0, eos_token_id=1, pad_token_id=3, initializer_range=0.02, use_cache=True,
        )


class ExampleMaker:
    """Builds (ids, weights) training sequences of at most L tokens."""

    def __init__(self, tok: Tokenizer, codebases: list[dmd.Codebase], seed: int):
        self.tok = tok
        self.rng = random.Random(seed)
        self.by_lang: dict[str, tuple[list[dmd.Codebase], list[float]]] = {}
        for lang in LANG_SHARE:
            cbs = [cb for cb in codebases if cb.lang == lang]
            # sqrt weighting: big packages still dominate, but small ones are seen too
            self.by_lang[lang] = (cbs, [math.sqrt(cb.chars) for cb in cbs])
        self.pad = tok.token_to_id("<pad>")

    def _context_lines(self, L: int) -> list[str]:
        rng = self.rng
        lang = rng.choices(list(LANG_SHARE), weights=list(LANG_SHARE.values()))[0]
        cbs, w = self.by_lang[lang]
        cb = rng.choices(cbs, weights=w)[0]
        need = L * 5  # characters; code runs 3.5-4 chars/token, so this overshoots
        i = rng.randrange(len(cb.files))
        lines: list[str] = []
        have = 0
        first = True
        while have < need:
            path, text = cb.files[i % len(cb.files)]
            fl = dmd.codebase_lines([(path, text)])
            if first and rng.random() < 0.5:
                fl = fl[rng.randrange(len(fl)):]  # start mid-file half of the time
            first = False
            for line in fl:  # stop at the budget: tokenizing whole large files is the slow part
                lines.append(line)
                have += len(line) + 1
                if have >= need:
                    break
            # neighbouring files (sorted paths) usually belong together; sometimes jump
            i = i + 1 if rng.random() < 0.7 else rng.randrange(len(cb.files))
            if len(lines) > 20000:
                break
        return lines

    def make(self, L: int, dense: bool | None = False):
        rng = self.rng
        if dense is None:  # "mixed" stage: half the sequences retrieval-dense
            dense = rng.random() < 0.5
        ctx = self._context_lines(L)
        if dense:
            # retrieval-dense sequences: many needles, all queried, code tokens down-weighted;
            # this is what gets the copy circuit to form at all on a diverse corpus
            k = rng.randint(3, 5) if L <= 256 else rng.randint(4, 8)
        else:
            k = rng.choices([1, 2, 3, 4, 5, 6], weights=[3, 3, 3, 2, 2, 1])[0]
        names = [dmd.needle_name(rng) for _ in range(k)]
        if k >= 2 and rng.random() < 0.5:
            # decoy: same word pair, other hex suffix, so the suffix has to be read
            base = names[0].rsplit("_", 1)[0]
            for j in range(1, rng.randint(2, min(3, k)) if k >= 3 else 2):
                names[j] = f"{base}_{rng.getrandbits(16):04x}"
        values = [dmd.needle_value(rng) for _ in range(k)]
        target = rng.randrange(k)  # needle queried on the last line

        # fit: token count of each context line prefix
        joined = "\n".join(ctx)
        enc = self.tok.encode(joined)
        line_end_tok = []
        pos = 0
        t = 0
        offs = enc.offsets
        for line in ctx:
            pos += len(line) + 1
            while t < len(offs) and offs[t][1] <= pos - 1:
                t += 1
            line_end_tok.append(t)
        overhead = 4 + 16 * k + 14 * k  # BOS + definitions + queries, generous
        budget = L - overhead
        n = max(1, sum(1 for x in line_end_tok if x <= budget))
        for _ in range(6):
            text, spans = self._compose(ctx[:n], names, values, target, dense)
            enc = self.tok.encode(text)
            if len(enc.ids) <= L:
                break
            n = max(1, int(n * 0.93))
        ids = enc.ids[:L]
        weights = [0.3 if dense else 1.0] * len(ids)
        for (s, e, wt) in spans:
            for ti, (a, b) in enumerate(enc.offsets[:len(ids)]):
                if ti > 0 and a >= s and a < e:
                    weights[ti] = wt
        weights[0] = 0.0  # nothing predicts BOS
        return ids, weights

    def _compose(self, ctx: list[str], names, values, target, dense: bool = False):
        """Place definitions, optional earlier queries, repeated spans; last line queries target."""
        rng = self.rng
        n = len(ctx)
        k = len(names)
        items: list[list[str]] = [[l] for l in ctx]  # items[i] = lines emitted before ctx line i
        items.append([])  # slot after the last context line
        slots: dict[int, list[tuple[str, int]]] = {}

        def put(idx: int, kind: str, j: int):
            slots.setdefault(idx, []).append((kind, j))

        r = rng.random()
        if r < 0.2:
            tdepth = 0.0
        elif r < 0.3:
            tdepth = 1.0
        else:
            tdepth = rng.random()
        def_at = {}
        for j in range(k):
            d = tdepth if j == target else rng.random()
            def_at[j] = round(d * n)
            put(def_at[j], "def", j)
        for j in range(k):
            if j != target and rng.random() < (1.0 if dense else 0.85) and def_at[j] < n:
                put(rng.randint(def_at[j] + 1, n), "query", j)
        if rng.random() < (0.6 if dense else 0.3) and n > 20:
            a = rng.randrange(0, n - 10)
            span = rng.randint(2, 8)
            b = rng.randint(a + span, n)
            for off, line in enumerate(ctx[a:a + span]):
                slots.setdefault(b, []).append(("copy", line))

        out: list[str] = []
        spans_lines: list[tuple[int, str, int]] = []  # (line index in out, kind, j)
        for i in range(n + 1):
            for kind, j in slots.get(i, []):
                if kind == "def":
                    spans_lines.append((len(out), "def", j))
                    out.append(f"const {names[j]} = {values[j]};")
                elif kind == "query":
                    spans_lines.append((len(out), "query", j))
                    out.append(f"// {names[j]} = {values[j]}")
                else:
                    out.append(j)
            if i < n:
                out.append(ctx[i])
        spans_lines.append((len(out), "query", target))
        out.append(f"// {names[target]} = {values[target]}")
        text = "\n".join(out)

        # char spans -> weights
        starts = []
        p = 0
        for line in out:
            starts.append(p)
            p += len(line) + 1
        spans = []
        for li, kind, j in spans_lines:
            line = out[li]
            eq = line.index(" = ") + 2  # char right after '='
            s = starts[li] + eq
            if kind == "def":
                spans.append((s + 1, starts[li] + len(line) - 1, 0.0))  # value digits only
            else:
                # the space, the digits and the newline that ends the number
                spans.append((s, starts[li] + len(line) + 1, 10.0))
        return text, spans


def plan_steps(minutes: float):
    plan = []
    for L, B, share, _ in STAGES:
        longest = max(L) if isinstance(L, list) else L
        steps = max(1, int(minutes * 60 * share * TOK_PER_S[longest] / (longest * B)))
        plan.append((L, B, steps))
    return plan


def lr_at(step: int, total: int, base: float, warmup: int) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    p = (step - warmup) / max(1, total - warmup)
    return base * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, p))))


def lr_time(frac: float, step: int, base: float, warmup: int) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    return base * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, frac))))


def save(model, out: Path, meta: dict):
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out), safe_serialization=True)
    # transformers 5 nests rope_theta under rope_parameters; loaders that read the classic
    # top-level key (including older transformers) get it too
    cfg_path = out / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["rope_theta"] = cfg.get("rope_parameters", {}).get("rope_theta", cfg.get("rope_theta"))
    cfg_path.write_text(json.dumps(dict(sorted(cfg.items())), indent=2) + "\n")
    (out / "train_meta.json").write_text(json.dumps(meta, indent=2) + "\n")


def quick_probe(model, tok, heldout, L: int, n: int, seed: int) -> float:
    """Small held-out needle check at depths 0 / 0.5 / 1 (the full table is eval_default_model.py)."""
    rng = random.Random(seed)
    hits = 0
    total = 0
    model.eval()
    with torch.no_grad():
        for i in range(n):
            cb = heldout[i % len(heldout)]
            start = rng.randrange(len(cb.files))
            ctx = dmd.codebase_lines(cb.files[start:] + cb.files[:start])
            name, value = dmd.needle_name(rng), dmd.needle_value(rng)
            d = [0.0, 0.5, 1.0][i % 3]
            prompt, _ = dmd.build_probe(tok, ctx, L, d, name, value)
            ids = torch.tensor([tok.encode(prompt).ids])
            out = model.generate(ids, max_new_tokens=8, do_sample=False, pad_token_id=3)
            got = dmd.first_int(tok.decode(out[0, ids.shape[1]:].tolist()))
            hits += int(got == value)
            total += 1
    model.train()
    return hits / max(1, total)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=80.0, help="planned training time (fixes the step count)")
    ap.add_argument("--stop-after", type=float, default=None, help="wall-clock guard in minutes")
    ap.add_argument("--out", type=Path, default=Path("/work/train-cache/run"))
    ap.add_argument("--tokenizer", type=Path, default=REPO / "models" / "default" / "tokenizer.json")
    ap.add_argument("--seed", type=int, default=20260101)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--width", type=int, default=192)
    ap.add_argument("--heads", type=int, default=6)
    ap.add_argument("--ffn", type=int, default=512)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--init", type=Path, default=None, help="continue from a saved checkpoint")
    ap.add_argument("--stages", type=str, default=None, help="override: comma-separated LEN:BATCH:SHARE[:dense|mixed], e.g. '1024:4:0.5:dense,4096:1:0.5:mixed'")
    ap.add_argument("--checkpoint-every", type=float, default=10.0, help="minutes")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--schedule", choices=["time", "steps"], default="time")
    ap.add_argument("--replay", type=Path, default=None, help="train_meta.json of a run to repeat step for step")
    ap.add_argument("--no-bf16", action="store_true")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    global STAGES
    if args.stages:
        # LEN may list several lengths joined by "|" (e.g. 4096|4096|2048|1024): each step then draws one of them,
        # with the batch scaled so every step holds about BATCH x the longest length in tokens.
        STAGES = [(a, int(b), float(c), {"dense": True, "mixed": None}.get(d, False)) for a, b, c, d in
                  ((s.split(":") + [""])[:4] for s in args.stages.split(","))]
        STAGES = [([int(x) for x in a.split("|")] if "|" in a else int(a), b, c, d) for a, b, c, d in STAGES]

    tok = Tokenizer.from_file(str(args.tokenizer))
    t0 = time.time()
    train_cbs = dmd.load_codebases("train")
    heldout = dmd.load_codebases("heldout")
    print(f"corpus: {len(train_cbs)} train codebases, {sum(c.chars for c in train_cbs)/1e6:.1f} MB; "
          f"loaded in {time.time()-t0:.0f}s", flush=True)
    maker = ExampleMaker(tok, train_cbs, args.seed)

    if args.init:
        model = LlamaForCausalLM.from_pretrained(str(args.init), dtype=torch.float32)
    else:
        model = LlamaForCausalLM(model_config(tok.get_vocab_size(), args))
    nparams = sum(p.numel() for p in model.parameters())
    print(f"params {nparams/1e6:.2f}M", flush=True)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95), eps=1e-8)

    # Two schedules. "steps" fixes the step count per stage from --minutes and measured speed, so
    # a rerun repeats the run exactly. "time" (the default) moves through the stages and the LR
    # curve by wall-clock fraction of --minutes, which keeps the curriculum intact when the
    # machine is shared and slower than measured; the steps it took per stage are recorded in
    # train_meta.json and can be replayed with --schedule steps --replay <meta>.
    if args.replay:
        plan = [tuple(x) for x in json.loads(args.replay.read_text())["steps_per_stage"]]
    elif args.schedule == "steps":
        plan = plan_steps(args.minutes)
    else:
        plan = None
    print("plan:", plan or f"time-based over {args.minutes} min", flush=True)
    step = 0
    start = time.time()
    last_ckpt = start
    budget_s = args.minutes * 60
    meta = {"seed": args.seed, "schedule": "steps" if plan else "time",
            "args": {k: str(v) for k, v in vars(args).items()}, "steps_per_stage": []}
    model.train()
    length_rng = random.Random(args.seed + 1)
    stopped = False
    bounds = []
    acc_share = 0.0
    for L, B, share, _ in STAGES:
        acc_share += share
        bounds.append(acc_share / sum(x[2] for x in STAGES))
    for si, (L, B, _, dense) in enumerate(STAGES):
        ema = None
        stage_steps = 0
        while True:
            if plan is not None:
                if stage_steps >= plan[si][2]:
                    break
                frac = (step + 1) / sum(x[2] for x in plan)
            else:
                frac = (time.time() - start) / budget_s
                if frac >= bounds[si]:
                    break
            if plan is None:
                lr = lr_time(frac, step, args.lr, args.warmup)
            else:
                lr = lr_at(step, sum(x[2] for x in plan), args.lr, args.warmup)
            for g in opt.param_groups:
                g["lr"] = lr
            if isinstance(L, list):  # interleaved lengths: keeps every trained length in use
                step_L = length_rng.choice(L)
                step_B = max(1, B * max(L) // step_L)
            else:
                step_L, step_B = L, B
            batch = [maker.make(step_L, dense) for _ in range(step_B)]
            T = max(len(ids) for ids, _ in batch)
            x = torch.full((step_B, T), maker.pad, dtype=torch.long)
            w = torch.zeros((step_B, T))
            for b, (ids, wt) in enumerate(batch):
                x[b, :len(ids)] = torch.tensor(ids)
                w[b, :len(wt)] = torch.tensor(wt)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=not args.no_bf16):
                logits = model(input_ids=x).logits
            logits = logits[:, :-1].float()
            ce = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), x[:, 1:].reshape(-1),
                                                   reduction="none").view(step_B, T - 1)
            wt = w[:, 1:]
            loss = (ce * wt).sum() / wt.sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            step += 1
            stage_steps += 1
            plain = (ce * (wt == 1)).sum() / (wt == 1).sum().clamp(min=1)
            ans = (ce * (wt == 10)).sum() / (wt == 10).sum().clamp(min=1)
            ema = (plain.item(), ans.item()) if ema is None else (0.98 * ema[0] + 0.02 * plain.item(), 0.98 * ema[1] + 0.02 * ans.item())
            elapsed = (time.time() - start) / 60
            if step % 25 == 0:
                print(f"step {step} L={step_L} lr={lr:.2e} code_loss={ema[0]:.3f} answer_loss={ema[1]:.3f} "
                      f"{elapsed:.1f} min", flush=True)
            if time.time() - last_ckpt > args.checkpoint_every * 60:
                meta.update(step=step, minutes=elapsed)
                save(model, args.out, meta)
                last_ckpt = time.time()
            if args.stop_after and elapsed > args.stop_after:
                print("wall-clock guard reached, stopping", flush=True)
                stopped = True
                break
        meta["steps_per_stage"].append([L, B, stage_steps])
        meta.update(step=step, minutes=(time.time() - start) / 60)
        save(model, args.out, meta)
        for PL in sorted({1024, *(L if isinstance(L, list) else [L])}):
            acc = quick_probe(model, tok, heldout, PL, 12, seed=7)
            print(f"== after L={L} stage ({stage_steps} steps): quick probe at {PL}: {acc:.0%}", flush=True)
        if stopped:
            break
    meta.update(step=step, minutes=(time.time() - start) / 60, params=nparams)
    save(model, args.out, meta)
    print(f"done: {step} steps, {meta['minutes']:.1f} min", flush=True)


if __name__ == "__main__":
    main()

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

"mix" stages (the v2 run) draw every sequence's kind from --mix: plain code with loss on every token
(next-line completion needs induction and local modelling on ordinary code, with nothing synthetic to
imitate), needle and dense sequences whose definitions take several formats (`const`, `let`, Python
`NAME = VALUE`, object properties; indented like their block; tab-indented code in a fifth of all
sequences), crossfile sequences laid out as the engine's crossfile task (defining file first, using file
last), and the engine's variable-tracking chains. Definition lines and the query text weigh 0 there, so the
model is never taught to write a synthetic definition after ordinary code.

Checkpoints for resuming (weights, AdamW moments, step, stage, elapsed training time) go to <out>/ckpt
every --checkpoint-every minutes; --resume <ckpt> continues from one (see tools/default_model_ckpt).

The shipped model was made in seven phases, each continuing from the previous one with --init;
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


# Extra words so needle names are not limited to the probe's own list (the engine draws from another one).
EXTRA_WORDS = ["CAPACITY", "PACKET", "HANDLE", "METRIC", "SAMPLE", "FILTER", "EVENT", "SIGNAL", "TASK", "NODE",
               "EDGE", "GRAPH", "FLUSH", "COMMIT", "SYNC", "LOCK", "SPAN", "TRACE", "LOG", "ALERT", "PROBE", "CHECK",
               "USER", "ITEM", "FIELD", "TABLE", "ROW", "COLUMN", "KEY", "VALUE", "NAME", "PATH", "FILE", "DIR",
               "HOST", "REGION", "ZONE", "LIMITS", "WEIGHT", "PRIORITY", "ORDER", "MODE", "STATE", "PHASE"]
WORDS = sorted(set(dmd.NEEDLE_WORDS) | set(EXTRA_WORDS))
# Sequence kinds of a "mix" stage and their default shares (--mix overrides): plain code is what next-line
# completion needs (induction and local modelling on ordinary code, nothing synthetic to imitate); needle and
# dense keep retrieval exact; crossfile puts a defining file first the way the engine's crossfile task does;
# vartrack is the engine's chain of assignments.
DEFAULT_MIX = {"plain": 0.45, "needle": 0.25, "dense": 0.12, "crossfile": 0.12, "vartrack": 0.06}


def train_name(rng: random.Random) -> str:
    a, b = rng.sample(WORDS, 2)
    suffix = f"{rng.getrandbits(16):04x}"
    r = rng.random()
    if r < 0.7:
        return f"{a}_{b}_{suffix}"
    if r < 0.85:
        return f"{a.lower()}{b.capitalize()}_{suffix}"
    return f"{a.lower()}_{b.lower()}_{suffix}"


class ExampleMaker:
    """Builds (ids, weights) training sequences of at most L tokens."""

    def __init__(self, tok: Tokenizer, codebases: list[dmd.Codebase], seed: int, mix: dict | None = None):
        self.tok = tok
        self.rng = random.Random(seed)
        self.mix = mix or DEFAULT_MIX
        self.by_lang: dict[str, tuple[list[dmd.Codebase], list[float]]] = {}
        for lang in LANG_SHARE:
            cbs = [cb for cb in codebases if cb.lang == lang]
            # sqrt weighting: big packages still dominate, but small ones are seen too
            self.by_lang[lang] = (cbs, [math.sqrt(cb.chars) for cb in cbs])
        self.pad = tok.token_to_id("<pad>")
        self._defs: dict[str, dict] = {}
        self._sites: dict[tuple[str, int], list] = {}

    def reseed(self, seed: int):
        self.rng = random.Random(seed)

    def _codebase(self) -> dmd.Codebase:
        rng = self.rng
        lang = rng.choices(list(LANG_SHARE), weights=list(LANG_SHARE.values()))[0]
        cbs, w = self.by_lang[lang]
        return rng.choices(cbs, weights=w)[0]

    def _context_lines(self, L: int, cb: dmd.Codebase | None = None, need: int | None = None,
                       start: int | None = None, skip: set | None = None) -> list[str]:
        rng = self.rng
        cb = cb or self._codebase()
        need = need if need is not None else L * 5  # characters; code runs 3.5-4 chars/token, so this overshoots
        i = rng.randrange(len(cb.files)) if start is None else start
        lines: list[str] = []
        have = 0
        first = start is None
        guard = 0
        while have < need and guard < 4 * len(cb.files) + 4:
            guard += 1
            idx = i % len(cb.files)
            i = i + 1 if rng.random() < 0.7 else rng.randrange(len(cb.files))
            if skip and idx in skip:
                continue
            path, text = cb.files[idx]
            fl = dmd.codebase_lines([(path, text)])
            if first and rng.random() < 0.5:
                fl = fl[rng.randrange(len(fl)):]  # start mid-file half of the time
            first = False
            for line in fl:  # stop at the budget: tokenizing whole large files is the slow part
                lines.append(line)
                have += len(line) + 1
                if have >= need:
                    break
            if len(lines) > 20000:
                break
        return lines

    def _maybe_tabs(self, lines: list[str]) -> list[str]:
        # a share of tab-indented code: the corpus is mostly space-indented, real workspaces often are not
        return dmd.tabify(lines) if self.rng.random() < 0.2 else lines

    def _encode_weighted(self, text: str, L: int, base: float, spans):
        enc = self.tok.encode(text)
        ids = enc.ids[:L]
        weights = [base] * len(ids)
        if spans:
            offs = enc.offsets[:len(ids)]
            starts = [a for a, _ in offs]
            import bisect
            for (s, e, wt) in spans:
                lo = bisect.bisect_left(starts, s)
                hi = bisect.bisect_left(starts, e)
                for ti in range(max(1, lo), hi):
                    weights[ti] = wt
        weights[0] = 0.0  # nothing predicts BOS
        return ids, weights

    def _fit_lines(self, lines: list[str], L: int) -> list[str]:
        """The longest prefix of `lines` that encodes to at most L tokens (approximately: cut by offsets)."""
        text = "\n".join(lines)
        enc = self.tok.encode(text)
        if len(enc.ids) <= L:
            return lines
        cut = enc.offsets[L - 1][0]
        keep, pos = [], 0
        for line in lines:
            if pos + len(line) > cut:
                break
            keep.append(line)
            pos += len(line) + 1
        return keep or lines[:1]

    def make(self, L: int, dense: bool | None | str = False):
        kind = dense
        if dense == "mix":
            kind = self.rng.choices(list(self.mix), weights=list(self.mix.values()))[0]
        if kind == "plain":
            return self.make_plain(L)
        if kind == "crossfile":
            return self.make_crossfile(L)
        if kind == "vartrack":
            return self.make_vartrack(L)
        if kind == "needle":
            return self.make_needles(L, False)
        if kind == "dense":
            return self.make_needles(L, True)
        return self.make_needles(L, kind)

    def make_plain(self, L: int):
        lines = self._maybe_tabs(self._context_lines(L))
        return self._encode_weighted("\n".join(lines), L, 1.0, None)

    def make_crossfile(self, L: int):
        """A file that defines a symbol first, other files of the package, then the file that uses it, up
        to some lines past the use: the layout of the engine's crossfile task."""
        rng = self.rng
        for _ in range(4):
            cb = self._codebase()
            if len(cb.files) < 3:
                continue
            if cb.name not in self._defs:
                self._defs[cb.name] = dmd.unique_definitions(cb.files)
            fi = rng.randrange(len(cb.files))
            key = (cb.name, fi)
            if key not in self._sites:
                self._sites[key] = dmd.crossfile_sites(cb.files, fi, self._defs[cb.name])
            sites = self._sites[key]
            if not sites:
                continue
            line, sym, (dfi, dline) = rng.choice(sites)
            dpath, dtext = cb.files[dfi]
            dlines = dtext.split("\n")
            # the definition's file, or a window around the definition: at most ~half the budget
            radius = len(dlines)
            while radius > 8 and sum(len(x) + 1 for x in dlines[max(0, dline - radius):dline + radius + 1]) > L * 1.8:
                radius //= 2
            lead = [f"// file: {dpath}"] + dlines[max(0, dline - radius):dline + radius + 1]
            tpath, ttext = cb.files[fi]
            tl = ttext.split("\n")
            end = min(len(tl), line + rng.randint(1, 30))
            top = 0
            # like the engine, cut the top of the using file when it alone would crowd out the definition
            while top < line and sum(len(x) + 1 for x in tl[top:end]) > L * 1.6:
                top += max(1, (line - top) // 4)
            tail = [f"// file: {tpath}"] + tl[top:end]
            line -= top
            tail_chars = sum(len(x) + 1 for x in tail)
            lead_chars = sum(len(x) + 1 for x in lead)
            room = max(0, int(L * 3.6) - tail_chars - lead_chars)
            filler = self._context_lines(L, cb, need=room, start=rng.randrange(len(cb.files)), skip={fi, dfi}) if room > 200 else []
            tabs = rng.random() < 0.2
            # cut filler (not the ends) until it fits
            for _ in range(8):
                lines = lead + filler + tail
                enc_len = len(self.tok.encode("\n".join(lines)).ids)
                if enc_len <= L or not filler:
                    break
                filler = filler[:int(len(filler) * min(0.95, L / enc_len))]
            if tabs:
                lines = dmd.tabify(lines)
            text = "\n".join(lines)
            # the line that uses the other file's symbol counts double: it is what the task asks for
            ui = len(lead) + len(filler) + 1 + line
            s = sum(len(x) + 1 for x in lines[:ui])
            spans = [(s, s + len(lines[ui]) + 1, 2.0)] if ui < len(lines) else None
            return self._encode_weighted(text, L, 1.0, spans)
        return self.make_plain(L)

    def make_vartrack(self, L: int):
        """`const v_a = VALUE;` then hops `const v_b = v_a;` later on, queried `// v_last = VALUE`."""
        rng = self.rng
        hops = rng.choice([1, 2, 3, 4, 4])
        names = []
        while len(names) <= hops:
            n = f"v_{rng.getrandbits(16):04x}"
            if n not in names:
                names.append(n)
        value = dmd.needle_value(rng)
        ctx = self._maybe_tabs(self._context_lines(L))
        ctx = self._fit_lines(ctx, L - 20 - 14 * hops)
        n = len(ctx)
        d0 = 0.0 if rng.random() < 0.15 else rng.random()
        hop_depths = sorted(d0 + (1 - d0) * rng.random() for _ in range(hops))
        ins = [(round(d0 * n), f"const {names[0]} = {value};")]
        ins += [(round(d * n), f"const {names[i + 1]} = {names[i]};") for i, d in enumerate(hop_depths)]
        out = []
        zero = []  # inserted lines: weight 0 (nothing in the code predicts them)
        pos = 0
        k = 0
        for i in range(n + 1):
            while k < len(ins) and ins[k][0] == i:
                zero.append((pos, pos + len(ins[k][1])))
                out.append(ins[k][1])
                pos += len(ins[k][1]) + 1
                k += 1
            if i < n:
                out.append(ctx[i])
                pos += len(ctx[i]) + 1
        q = f"// {names[-1]} ="
        zero.append((pos, pos + len(q)))
        text = "\n".join(out + [f"{q} {value}"])
        spans = [(a, b, 0.0) for a, b in zero] + [(pos + len(q), len(text) + 1, 10.0)]
        return self._encode_weighted(text, L, 1.0, spans)

    def make_needles(self, L: int, dense: bool | None = False):
        rng = self.rng
        if dense is None:  # "mixed" stage: half the sequences retrieval-dense
            dense = rng.random() < 0.5
        ctx = self._maybe_tabs(self._context_lines(L))
        if dense:
            # retrieval-dense sequences: many needles, all queried, code tokens down-weighted;
            # this is what gets the copy circuit to form at all on a diverse corpus
            k = rng.randint(3, 5) if L <= 256 else rng.randint(4, 8)
        else:
            k = rng.choices([1, 2, 3, 4, 5, 6], weights=[3, 3, 3, 2, 2, 1])[0]
        names = [train_name(rng) for _ in range(k)]
        if k >= 2 and rng.random() < 0.5:
            # decoy: same word pair, other hex suffix, so the suffix has to be read
            base = names[0].rsplit("_", 1)[0]
            for j in range(1, rng.randint(2, min(3, k)) if k >= 3 else 2):
                names[j] = f"{base}_{rng.getrandbits(16):04x}"
        values = [dmd.needle_value(rng) for _ in range(k)]
        # one definition format per needle: the engine's const line most often, the others so that recall
        # does not hang on one spelling; indented like the line it precedes half of the time
        fmts = [rng.choices(dmd.NEEDLE_FORMATS, weights=[0.55, 0.15, 0.15, 0.15])[0] for _ in range(k)]
        indents = [rng.random() < 0.5 for _ in range(k)]
        target = rng.randrange(k)  # needle queried on the last line
        ctx = self._fit_lines(ctx, L - 4 - 18 * k - 14 * k)
        for _ in range(6):
            text, spans = self._compose(ctx, names, values, fmts, indents, target, dense)
            enc_len = len(self.tok.encode(text).ids)
            if enc_len <= L:
                break
            ctx = ctx[:max(1, int(len(ctx) * 0.93))]
        return self._encode_weighted(text, L, 0.3 if dense else 1.0, spans)

    def _compose(self, ctx: list[str], names, values, fmts, indents, target, dense: bool = False):
        """Place definitions, optional earlier queries, repeated spans; last line queries target."""
        rng = self.rng
        n = len(ctx)
        k = len(names)
        slots: dict[int, list[tuple[str, int]]] = {}

        def put(idx: int, kind: str, j):
            slots.setdefault(idx, []).append((kind, j))

        r = rng.random()
        if r < 0.2:
            tdepth = 0.0
        elif r < 0.35:
            tdepth = 1.0  # right before the question: the probe's d=1
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
            for line in ctx[a:a + span]:
                slots.setdefault(b, []).append(("copy", line))

        def cue(j):
            # the engine asks `// NAME =` in every language; `# NAME =` now and then for Python-style needles
            return f"# {names[j]} =" if fmts[j] == "python" and rng.random() < 0.3 else f"// {names[j]} ="

        out: list[str] = []
        marks: list[tuple[int, str, int]] = []  # (line index in out, kind, j)
        for i in range(n + 1):
            for kind, j in slots.get(i, []):
                if kind == "def":
                    ref = ctx[min(i, n - 1)] if n else ""
                    indent = dmd.leading_ws(ref) if indents[j] else ""
                    marks.append((len(out), "def", j))
                    out.append(dmd.needle_text(fmts[j], names[j], values[j], indent))
                elif kind == "query":
                    marks.append((len(out), "query", j))
                    out.append(f"{cue(j)} {values[j]}")
                else:
                    out.append(j)
            if i < n:
                out.append(ctx[i])
        marks.append((len(out), "query", target))
        out.append(f"{cue(target)} {values[target]}")
        text = "\n".join(out)

        starts = []
        p = 0
        for line in out:
            starts.append(p)
            p += len(line) + 1
        spans = []
        for li, kind, j in marks:
            line = out[li]
            if kind == "def":
                # the whole definition weighs 0: it is unpredictable, and a model trained to predict it
                # learns to write synthetic definitions after ordinary code
                spans.append((starts[li], starts[li] + len(line), 0.0))
            else:
                eq = line.index(" =") + 2
                spans.append((starts[li], starts[li] + eq, 0.0))  # the query itself is prompt, not output
                # the space, the digits and the newline that ends the number
                spans.append((starts[li] + eq, starts[li] + len(line) + 1, 10.0))
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


def save_resumable(model, opt, ckpt: Path, state: dict):
    """Weights (float32) + AdamW moments (bfloat16, each file well under 20 MB) + where the run stands,
    so a later run continues with --resume exactly from here (same LR curve, same stage)."""
    from safetensors.torch import save_file
    tmp = ckpt.with_name(ckpt.name + ".tmp")
    save(model, tmp, state)
    names = {id(p): n for n, p in model.named_parameters()}
    moments = {}
    for group in opt.param_groups:
        for p in group["params"]:
            st = opt.state.get(p)
            if not st:
                continue
            n = names[id(p)]
            moments[f"{n}.exp_avg"] = st["exp_avg"].to(torch.bfloat16).contiguous()
            moments[f"{n}.exp_avg_sq"] = st["exp_avg_sq"].to(torch.bfloat16).contiguous()
            moments[f"{n}.step"] = torch.tensor([float(st["step"])])
    save_file(moments, str(tmp / "optimizer.safetensors"))
    if ckpt.exists():
        old = ckpt.with_name(ckpt.name + ".old")
        if old.exists():
            import shutil
            shutil.rmtree(old)
        ckpt.rename(old)
        tmp.rename(ckpt)
        import shutil
        shutil.rmtree(old)
    else:
        tmp.rename(ckpt)


def load_moments(model, opt, ckpt: Path):
    from safetensors.torch import load_file
    m = load_file(str(ckpt / "optimizer.safetensors"))
    for n, p in model.named_parameters():
        if f"{n}.exp_avg" in m:
            opt.state[p] = {"step": torch.tensor(float(m[f"{n}.step"][0])),
                            "exp_avg": m[f"{n}.exp_avg"].float(), "exp_avg_sq": m[f"{n}.exp_avg_sq"].float()}


def parse_stages(spec: str):
    # LEN may list several lengths joined by "|" (e.g. 4096|4096|2048|1024): each step then draws one of them,
    # with the batch scaled so every step holds about BATCH x the longest length in tokens.
    kinds = {"dense": True, "mixed": None, "mix": "mix"}
    out = []
    for s in spec.split(","):
        a, b, c, d = (s.split(":") + [""])[:4]
        L = [int(x) for x in a.split("|")] if "|" in a else int(a)
        out.append((L, int(b), float(c), kinds.get(d, False)))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=80.0, help="planned training time (fixes the step count)")
    ap.add_argument("--stop-after", type=float, default=None, help="wall-clock guard in minutes (of this invocation)")
    ap.add_argument("--out", type=Path, default=Path("/work/train-cache/run"))
    ap.add_argument("--tokenizer", type=Path, default=REPO / "models" / "default" / "tokenizer.json")
    ap.add_argument("--seed", type=int, default=20260101)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--width", type=int, default=192)
    ap.add_argument("--heads", type=int, default=6)
    ap.add_argument("--ffn", type=int, default=512)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--init", type=Path, default=None, help="start from these weights (fresh optimizer)")
    ap.add_argument("--resume", type=Path, default=None,
                    help="continue a run from a resumable checkpoint (weights, optimizer, step, elapsed time); "
                         "pass the same --stages/--minutes/--lr/--mix as the run it continues")
    ap.add_argument("--ckpt", type=Path, default=None, help="where resumable checkpoints go (default <out>/ckpt)")
    ap.add_argument("--stages", type=str, default=None, help="override: comma-separated LEN:BATCH:SHARE[:dense|mixed|mix], e.g. '1024:4:0.5:dense,4096:1:0.5:mixed'")
    ap.add_argument("--mix", type=str, default=None, help="shares of sequence kinds in 'mix' stages, e.g. "
                    "plain:0.45,needle:0.25,dense:0.12,crossfile:0.12,vartrack:0.06")
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
        STAGES = parse_stages(args.stages)
    mix = None
    if args.mix:
        mix = {k: float(v) for k, v in (x.split(":") for x in args.mix.split(","))}
    ckpt_dir = args.ckpt or args.out / "ckpt"

    tok = Tokenizer.from_file(str(args.tokenizer))
    t0 = time.time()
    train_cbs = dmd.load_codebases("train")
    heldout = dmd.load_codebases("heldout")
    print(f"corpus: {len(train_cbs)} train codebases, {sum(c.chars for c in train_cbs)/1e6:.1f} MB; "
          f"loaded in {time.time()-t0:.0f}s", flush=True)
    maker = ExampleMaker(tok, train_cbs, args.seed, mix)

    resumed = None
    if args.resume:
        resumed = json.loads((args.resume / "train_meta.json").read_text())
        model = LlamaForCausalLM.from_pretrained(str(args.resume), dtype=torch.float32)
    elif args.init:
        model = LlamaForCausalLM.from_pretrained(str(args.init), dtype=torch.float32)
    else:
        model = LlamaForCausalLM(model_config(tok.get_vocab_size(), args))
    nparams = sum(p.numel() for p in model.parameters())
    print(f"params {nparams/1e6:.2f}M", flush=True)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95), eps=1e-8)
    if resumed:
        load_moments(model, opt, args.resume)

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
    before_s = 0.0  # training seconds of the run before this invocation (resume)
    first_stage, first_stage_steps = 0, 0
    meta = {"seed": args.seed, "schedule": "steps" if plan else "time",
            "args": {k: str(v) for k, v in vars(args).items()}, "steps_per_stage": [], "invocations": []}
    if resumed:
        step = resumed["step"]
        before_s = resumed["train_seconds"]
        first_stage, first_stage_steps = resumed["stage"], resumed["stage_steps"]
        meta["steps_per_stage"] = resumed.get("steps_per_stage", [])
        meta["invocations"] = resumed.get("invocations", [])
        print(f"resumed at step {step}, {before_s/60:.1f} min, stage {first_stage} (+{first_stage_steps} steps)", flush=True)
    meta["invocations"].append({"args": {k: str(v) for k, v in vars(args).items()}, "from_step": step})
    start = time.time() - before_s
    invocation_start = time.time()
    last_ckpt = time.time()
    budget_s = args.minutes * 60
    model.train()
    # the data stream of a resumed run is keyed by the step it resumes from, so a resume is deterministic
    maker.reseed(args.seed + 7919 * step)
    length_rng = random.Random(args.seed + 1 + 7919 * step)
    stopped = False
    bounds = []
    acc_share = 0.0
    for L, B, share, _ in STAGES:
        acc_share += share
        bounds.append(acc_share / sum(x[2] for x in STAGES))
    for si, (L, B, _, dense) in enumerate(STAGES):
        if si < first_stage:
            continue
        ema = None
        stage_steps = first_stage_steps if si == first_stage else 0
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
                meta.update(step=step, minutes=elapsed, train_seconds=time.time() - start, stage=si,
                            stage_steps=stage_steps, params=nparams)
                save_resumable(model, opt, ckpt_dir, meta)
                last_ckpt = time.time()
            if args.stop_after and (time.time() - invocation_start) / 60 > args.stop_after:
                print("wall-clock guard reached, stopping", flush=True)
                stopped = True
                break
        if not stopped:
            meta["steps_per_stage"].append([L, B, stage_steps])
        meta.update(step=step, minutes=(time.time() - start) / 60, train_seconds=time.time() - start,
                    stage=si + (0 if stopped else 1), stage_steps=stage_steps if stopped else 0, params=nparams)
        save(model, args.out, meta)
        save_resumable(model, opt, ckpt_dir, meta)
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

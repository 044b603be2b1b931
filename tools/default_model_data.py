"""Corpus gathering and needle-probe construction for the embedded default model.

Shared by build_default_tokenizer.py, train_default_model.py and eval_default_model.py so that
the training split, the held-out split and the probe format can never drift apart.

Sources (all read from disk, nothing is fetched at run time):
  * npm packages installed under <cache>/npm/node_modules (TypeScript, .d.ts, JavaScript);
  * the CPython standard library of the local Python 3.11 and Debian's dist-packages.

Held out from training (never read by the tokenizer or the trainer):
  * the npm packages in HELDOUT_NPM (one TypeScript-source package, two JavaScript packages);
  * every Python top-level module whose md5(name) % 10 == 0 (a fixed, name-based split);
  * test/fixtures/codebase of the repository (never listed here at all).
"""
from __future__ import annotations

import hashlib
import os
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_CACHE = Path(os.environ.get("KVLENS_TRAIN_CACHE", "/work/train-cache"))

# One TypeScript-source package and two plain JavaScript packages, chosen because they ship real,
# readable source (not bundles) and are large enough to fill a 4k-token prompt.
HELDOUT_NPM = {"@trpc/server": "typescript", "koa": "javascript", "commander": "javascript"}

PY_ROOTS = [Path("/root/.pyenv/versions/3.11.7/lib/python3.11"), Path("/usr/lib/python3/dist-packages")]
# Directories that are test suites, generated tables or vendored copies: noisy and repetitive.
PY_SKIP_PARTS = {"test", "tests", "site-packages", "idlelib", "lib2to3", "pydoc_data", "encodings",
                 "__pycache__", "ensurepip", "turtledemo", "config-3.11-x86_64-linux-gnu", "_vendor"}

JS_EXTS = (".ts", ".tsx", ".mts", ".cts", ".js", ".mjs", ".cjs", ".jsx")
MAX_FILE_BYTES = 256_000
MIN_FILE_BYTES = 200
MAX_PACKAGE_BYTES = 3_000_000  # keeps typescript/effect/etc. from drowning out small packages

# Word list for needle names: short upper-case words that look like constants in real code.
NEEDLE_WORDS = [
    "RETRY", "LIMIT", "MAX", "MIN", "TIMEOUT", "BUFFER", "CACHE", "SIZE", "COUNT", "PORT", "DELAY",
    "INTERVAL", "BATCH", "QUEUE", "POOL", "DEPTH", "WIDTH", "HEIGHT", "OFFSET", "INDEX", "TOTAL",
    "THRESHOLD", "WINDOW", "CHUNK", "BLOCK", "PAGE", "FRAME", "TOKEN", "SESSION", "WORKER", "THREAD",
    "STACK", "HEAP", "RATE", "SCALE", "LEVEL", "STEP", "RANGE", "VERSION", "SEED", "MASK", "FLAG",
    "CODE", "ERROR", "STATUS", "HEADER", "PAYLOAD", "SOCKET", "STREAM", "BUCKET", "SHARD", "REPLICA",
    "LEASE", "QUOTA", "BUDGET", "EPOCH", "CURSOR", "ANCHOR", "PIVOT", "VECTOR", "KERNEL", "LAYER",
    "SLOT", "ROUTE", "CLIENT", "SERVER", "CONFIG", "DEFAULT", "INITIAL", "FINAL", "BACKOFF", "JITTER",
]


@dataclass
class Codebase:
    name: str
    lang: str  # "typescript" | "javascript" | "python"
    files: list[tuple[str, str]] = field(default_factory=list)  # (relative path, text)

    @property
    def chars(self) -> int:
        return sum(len(t) for _, t in self.files)


def _looks_generated(text: str) -> bool:
    # Minified bundles and data tables teach nothing about code structure and waste tokens.
    lines = text.split("\n")
    if not lines:
        return True
    longest = max(len(l) for l in lines)
    return longest > 1000 or len(text) / max(1, len(lines)) > 160


def _read(path: Path) -> str | None:
    try:
        raw = path.read_bytes()
    except OSError:
        return None
    if not (MIN_FILE_BYTES <= len(raw) <= MAX_FILE_BYTES):
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if "\x00" in text or _looks_generated(text):
        return None
    return text


def _npm_package_dirs(root: Path) -> list[tuple[str, Path]]:
    out = []
    for entry in sorted(root.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.name.startswith("@"):
            for sub in sorted(entry.iterdir()):
                out.append((f"{entry.name}/{sub.name}", sub))
        else:
            out.append((entry.name, entry))
    return out


def _npm_codebase(name: str, pdir: Path, seen: set[str]) -> Codebase | None:
    files = []
    total = 0
    paths = []
    for dirpath, dirnames, filenames in os.walk(pdir):
        # nested node_modules are other packages (listed on their own) or duplicates
        dirnames[:] = sorted(d for d in dirnames if d != "node_modules")
        for fn in sorted(filenames):
            if fn.endswith(JS_EXTS) and ".min." not in fn:
                paths.append(Path(dirpath) / fn)
    for p in paths:
        text = _read(p)
        if text is None:
            continue
        h = hashlib.md5(text.encode()).hexdigest()
        if h in seen:  # the same file shipped in several builds (cjs/esm) of one or more packages
            continue
        seen.add(h)
        files.append((str(p.relative_to(pdir)), text))
        total += len(text)
        if total > MAX_PACKAGE_BYTES:
            break
    if not files:
        return None
    n_ts = sum(1 for f, _ in files if f.endswith((".ts", ".tsx", ".mts", ".cts")))
    lang = "typescript" if n_ts * 2 >= len(files) else "javascript"
    return Codebase(name, lang, files)


def python_module_heldout(top: str) -> bool:
    return int(hashlib.md5(top.encode()).hexdigest(), 16) % 10 == 0


def _python_codebases(split: str, seen: set[str]) -> list[Codebase]:
    groups: dict[str, Codebase] = {}
    for root in PY_ROOTS:
        if not root.is_dir():
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if d not in PY_SKIP_PARTS and not d.endswith((".dist-info", ".egg-info")))
            for fn in sorted(filenames):
                if not fn.endswith(".py"):
                    continue
                p = Path(dirpath) / fn
                rel = p.relative_to(root)
                top = rel.parts[0][:-3] if len(rel.parts) == 1 else rel.parts[0]
                if python_module_heldout(top) != (split == "heldout"):
                    continue
                text = _read(p)
                if text is None:
                    continue
                h = hashlib.md5(text.encode()).hexdigest()
                if h in seen:
                    continue
                seen.add(h)
                # single-file modules are grouped by root so that a "codebase" has many files
                key = f"{root.name}:{top}" if len(rel.parts) > 1 else f"{root.name}:<modules>"
                cb = groups.setdefault(key, Codebase(key, "python"))
                cb.files.append((str(rel), text))
    return [groups[k] for k in sorted(groups)]


def load_codebases(split: str, cache: Path = DEFAULT_CACHE) -> list[Codebase]:
    """split: "train" or "heldout". Deterministic order."""
    assert split in ("train", "heldout")
    seen: set[str] = set()
    out = []
    nm = cache / "npm" / "node_modules"
    # Hash the held-out packages first so a copy of them inside another package is not trained on.
    held = []
    for name, pdir in _npm_package_dirs(nm):
        if name in HELDOUT_NPM:
            cb = _npm_codebase(name, pdir, seen)
            if cb:
                cb.lang = HELDOUT_NPM[name]
                # the TS probe set uses only real .ts sources of the held-out TS package
                if cb.lang == "typescript":
                    cb.files = [(f, t) for f, t in cb.files if f.endswith(".ts") and not f.endswith(".d.ts")]
                held.append(cb)
    if split == "heldout":
        out.extend(held)
        out.extend(_python_codebases("heldout", seen))
        return out
    for name, pdir in _npm_package_dirs(nm):
        if name in HELDOUT_NPM:
            continue
        cb = _npm_codebase(name, pdir, seen)
        if cb:
            out.append(cb)
    out.extend(_python_codebases("train", seen))
    return out


# ---------------------------------------------------------------------------------------------
# Probe format (the TypeScript bench implements the same definition)
# ---------------------------------------------------------------------------------------------

def codebase_lines(files: list[tuple[str, str]]) -> list[str]:
    """Every file as a `// file: <path>` line followed by its lines (trailing newline dropped)."""
    lines = []
    for path, text in files:
        lines.append(f"// file: {path}")
        body = text[:-1] if text.endswith("\n") else text
        lines.extend(body.split("\n"))
    return lines


def needle_name(rng: random.Random) -> str:
    a, b = rng.sample(NEEDLE_WORDS, 2)
    return f"{a}_{b}_{rng.getrandbits(16):04x}"


def needle_value(rng: random.Random) -> int:
    digits = rng.randint(1, 6)
    return rng.randint(10 ** (digits - 1) if digits > 1 else 1, 10 ** digits - 1)


def assemble(context: list[str], n: int, depth: float, needle: str, query: str) -> str:
    """First n context lines with the needle line at index round(depth * n), then the query line."""
    at = round(depth * n)
    lines = context[:at] + [needle] + context[at:n] + [query]
    return "\n".join(lines)


def count_tokens(tok, text: str) -> int:
    return len(tok.encode(text).ids)  # includes BOS from the post-processor


def build_probe(tok, context: list[str], L: int, depth: float, name: str, value: int):
    """Returns (prompt text, n context lines used). The prompt is the largest prefix of whole
    context lines for which BOS + context + needle + query line fits in L tokens."""
    needle = f"const {name} = {value};"
    query = f"// {name} ="
    # Code never packs more than ~8 characters into a token here, so lines past L*8 characters
    # cannot fit; dropping them first keeps each trial encode small.
    limit, chars = 0, 0
    while limit < len(context) and chars <= L * 8:
        chars += len(context[limit]) + 1
        limit += 1
    context = context[:limit]
    lo, hi = 0, len(context)
    if count_tokens(tok, assemble(context, hi, depth, needle, query)) <= L:
        return assemble(context, hi, depth, needle, query), hi
    # binary search on the number of lines; token counts are monotone in n up to rare merges
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count_tokens(tok, assemble(context, mid, depth, needle, query)) <= L:
            lo = mid
        else:
            hi = mid - 1
    return assemble(context, lo, depth, needle, query), lo


def first_int(text: str) -> int | None:
    m = re.search(r"\d+", text)
    return int(m.group(0)) if m else None


# ---------------------------------------------------------------------------------------------
# Needle formats beyond the engine's `const NAME = VALUE;` (evaluation and training share them)
# ---------------------------------------------------------------------------------------------

NEEDLE_FORMATS = ("const", "let", "python", "property")


def needle_text(fmt: str, name: str, value: int, indent: str = "") -> str:
    if fmt == "const":
        return f"{indent}const {name} = {value};"
    if fmt == "let":
        return f"{indent}let {name} = {value};"
    if fmt == "python":
        return f"{indent}{name} = {value}"
    if fmt == "property":
        return f"{indent}{name}: {value},"
    raise ValueError(fmt)


def leading_ws(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]


def tabify(lines: list[str]) -> list[str]:
    """Re-indents space-indented code with tabs (one tab per indentation unit), as many codebases are."""
    widths = [len(l) - len(l.lstrip(" ")) for l in lines if l.strip() and l.startswith(" ")]
    unit = min([w for w in widths if w > 0] or [2])
    unit = unit if unit in (2, 4) else 2
    out = []
    for l in lines:
        n = len(l) - len(l.lstrip(" "))
        out.append("\t" * (n // unit) + " " * (n % unit) + l[n:] if n else l)
    return out


def build_probe_fmt(tok, context: list[str], L: int, depth: float, name: str, value: int, fmt: str = "const",
                    indented: bool = False):
    """Like build_probe, in another needle format; `indented` gives the needle the indentation of the
    context line it is inserted before (so it sits inside a block like real code). Query: `// NAME =`."""
    query = f"// {name} ="
    limit, chars = 0, 0
    while limit < len(context) and chars <= L * 8:
        chars += len(context[limit]) + 1
        limit += 1
    context = context[:limit]

    def make(n: int) -> str:
        at = round(depth * n)
        indent = ""
        if indented and n:
            ref = context[min(at, n - 1)]
            indent = leading_ws(ref)
        return assemble(context, n, depth, needle_text(fmt, name, value, indent), query)

    lo, hi = 0, len(context)
    if count_tokens(tok, make(hi)) <= L:
        return make(hi), hi
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count_tokens(tok, make(mid)) <= L:
            lo = mid
        else:
            hi = mid - 1
    return make(lo), lo


# ---------------------------------------------------------------------------------------------
# Code-line classification, as src/engine/tasks/codelines.ts defines it (completion / crossfile)
# ---------------------------------------------------------------------------------------------

def lang_of_path(path: str) -> str:
    if path.endswith(".py"):
        return "python"
    if path.endswith((".ts", ".tsx", ".mts", ".cts")):
        return "typescript"
    return "javascript"


def is_comment_line(line: str, lang: str) -> bool:
    t = line.strip()
    if t.startswith(("//", "/*", "*", "<!--")):
        return True
    if lang == "python" and (t.startswith("#") or t.startswith('"""') or t.startswith("'''")):
        return True
    return False


def is_target_line(line: str, lang: str) -> bool:
    t = line.strip()
    return len(t) >= 6 and re.search(r"[A-Za-z]", t) is not None and not is_comment_line(line, lang)


IMPORT_LINE = re.compile(r"^\s*(import\b|from\s+\S+\s+import\b|export\s+.*\bfrom\s|require\s*\(|(const|let|var)\s+.*=\s*require\s*\()")
DEF_PATTERNS = [
    re.compile(r"^(?:export\s+)?(?:default\s+)?(?:declare\s+)?(?:abstract\s+)?(?:async\s+)?(?:function\*?|class|interface|type|enum|const|let|var)\s+([A-Za-z_$][\w$]*)"),
    re.compile(r"^(?:async\s+)?def\s+([A-Za-z_]\w*)"),
    re.compile(r"^class\s+([A-Za-z_]\w*)"),
    re.compile(r"^([A-Z][A-Z0-9_]+)\s*(?::[^=]+)?="),
]
GENERIC_NAMES = set("""main init test self this data value name type index result error config options default string
number object list item items args kwargs props state setup start stop update create delete module exports require
true false null none None True False String Object Array Error Promise Record const function return export import
class interface async await""".split())
IDENT = re.compile(r"[A-Za-z_$][\w$]*")


def defined_symbols(line: str) -> list[str]:
    out = []
    for p in DEF_PATTERNS:
        m = p.match(line)
        if m and len(m.group(1)) >= 4 and m.group(1) not in GENERIC_NAMES:
            out.append(m.group(1))
    return out


def unique_definitions(files: list[tuple[str, str]]) -> dict[str, tuple[int, int]]:
    """symbol -> (file index, line) for symbols defined in exactly one file."""
    found: dict[str, tuple[int, int] | None] = {}
    for fi, (_, text) in enumerate(files):
        for li, line in enumerate(text.split("\n")):
            if not line or line[0] in " \t":
                continue  # every pattern is anchored at column 0
            for sym in defined_symbols(line):
                seen = found.get(sym, 0)
                if seen == 0:
                    found[sym] = (fi, li)
                elif seen is not None and seen[0] != fi:
                    found[sym] = None
    return {k: v for k, v in found.items() if v}


def family(lang: str) -> str:
    return "py" if lang == "python" else "js"


def crossfile_sites(files: list[tuple[str, str]], fi: int, defs: dict[str, tuple[int, int]]):
    """(line, symbol, (def file, def line)) for lines of file fi that use a symbol defined only in another
    file of the same language family and not mentioned earlier in fi except on import lines."""
    path, text = files[fi]
    lang = lang_of_path(path)
    seen: set[str] = set()
    out = []
    for i, line in enumerate(text.split("\n")):
        names = IDENT.findall(line)
        imp = IMPORT_LINE.match(line) is not None
        if i >= 3 and not imp and is_target_line(line, lang):
            for sym in names:
                d = defs.get(sym)
                if d and d[0] != fi and family(lang_of_path(files[d[0]][0])) == family(lang) and sym not in seen:
                    out.append((i, sym, d))
                    break
        if not imp:
            seen.update(names)
    return out

"""Writes test/fixtures/llamacpp-kv/reference.json: rows of fp32 keys/values and the bytes llama.cpp's KV cache
holds for them in every cache type `--cache-type-k/-v` accepts (f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1,
iq4_nl), with their values as gguf-py dequantizes them. The independent reference for
src/engine/kv/quant/ggml-rows.ts.

The bytes come from ggml itself: the `quantize_row_*_ref` functions (and the fp16/bf16 row converters) of the
libggml-base.so that node-llama-cpp (a devDependency) ships, called through ctypes. These are what llama.cpp's
CPU backend writes into a quantized cache (ggml_set_rows calls them, except q8_0 on x86, see below). Where
gguf-py has a quantizer too (everything but iq4_nl) its bytes must equal ggml's, and gguf-py's dequantization
gives the values.

q8_0 on an x86 CPU with AVX goes through a vectorised quantize_row_q8_0 (127/amax instead of 1/(amax/127),
ties to even): the script counts the codes where that differs from the reference into `x86Q8Differences`.

Usage: /work/venv/bin/python tools/make_llamacpp_kv_fixture.py [--lib DIR]   (needs gguf and numpy;
DIR defaults to node_modules/@node-llama-cpp/linux-x64/bins/linux-x64)
"""
from __future__ import annotations

import argparse
import base64
import ctypes
import json
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType as Q
from gguf.quants import dequantize, quantize

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "test" / "fixtures" / "llamacpp-kv" / "reference.json"
DEFAULT_LIB = ROOT / "node_modules" / "@node-llama-cpp" / "linux-x64" / "bins" / "linux-x64"
BLOCK = 32
# Cache type name (as llama.cpp's --cache-type-k spells it) -> ggml type, bytes per 32 elements, ggml converter.
TYPES = {
    "f16": (Q.F16, 64, "ggml_fp32_to_fp16_row"),
    "bf16": (Q.BF16, 64, "ggml_fp32_to_bf16_row_ref"),
    "q8_0": (Q.Q8_0, 34, "quantize_row_q8_0_ref"),
    "q4_0": (Q.Q4_0, 18, "quantize_row_q4_0_ref"),
    "q4_1": (Q.Q4_1, 20, "quantize_row_q4_1_ref"),
    "q5_0": (Q.Q5_0, 22, "quantize_row_q5_0_ref"),
    "q5_1": (Q.Q5_1, 24, "quantize_row_q5_1_ref"),
    "iq4_nl": (Q.IQ4_NL, 18, "quantize_row_iq4_nl_ref"),
}


def rows(rng: np.random.Generator) -> np.ndarray:
    """Blocks of 32 that probe the edges of every format, then key- and value-like random data."""
    special = [
        np.full(BLOCK, 0.75),
        np.full(BLOCK, -0.3),
        np.linspace(-1, 1, BLOCK),  # the extreme is negative and positive in turn across formats
        np.linspace(1, -1, BLOCK),
        np.arange(BLOCK) * 0.125 - 2,  # exact multiples: ties of x*id + 0.5 land on half codes
        np.where(np.arange(BLOCK) == 5, 40.0, 0.01),  # one outlier
        rng.normal(0, 1e-5, BLOCK),  # scales in fp16's subnormal range
        rng.normal(0, 60, BLOCK),
        np.concatenate([np.zeros(BLOCK - 1), [-2.5]]),
    ]
    keys = rng.normal(0, 1, (20, BLOCK)) * rng.uniform(0.2, 6, BLOCK)  # per-channel magnitudes, as keys have
    values = rng.standard_t(3, (19, BLOCK)) * 0.4
    return np.concatenate([np.stack(special), keys, values]).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lib", type=Path, default=DEFAULT_LIB)
    args = parser.parse_args()
    base = ctypes.CDLL(str(args.lib / "libggml-base.so"), mode=ctypes.RTLD_GLOBAL)
    data = rows(np.random.default_rng(20261202))
    n = data.size
    src = np.ascontiguousarray(data.reshape(-1))
    out: dict[str, object] = {
        "source": "ggml quantize_row_*_ref from node-llama-cpp's libggml-base.so; values from gguf-py dequantize",
        "blockElements": BLOCK,
        "rows": base64.b64encode(src.astype("<f4").tobytes()).decode(),
        "types": {},
    }
    for name, (qtype, block_bytes, symbol) in TYPES.items():
        dst = np.zeros(n // BLOCK * block_bytes, dtype=np.uint8)
        fn = getattr(base, symbol)
        fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
        fn.restype = None
        fn(src.ctypes.data, dst.ctypes.data, n)
        if qtype != Q.IQ4_NL:
            ours = np.asarray(quantize(data, qtype)).view(np.uint8).reshape(-1)
            assert np.array_equal(ours, dst), f"{name}: gguf-py's quantizer disagrees with ggml's"
        values = dequantize(dst, qtype).astype(np.float32).reshape(-1)
        assert values.size == n and np.isfinite(values).all(), name
        out["types"][name] = {
            "typeId": int(qtype),
            "blockBytes": block_bytes,
            "bytes": base64.b64encode(dst.tobytes()).decode(),
            "values": base64.b64encode(values.astype("<f4").tobytes()).decode(),
        }
    cpu = args.lib / "libggml-cpu-haswell.so"
    if cpu.exists():
        lib = ctypes.CDLL(str(cpu))
        lib.ggml_cpu_init()
        fn = lib.quantize_row_q8_0
        fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
        dst = np.zeros(n // BLOCK * 34, dtype=np.uint8)
        fn(src.ctypes.data, dst.ctypes.data, n)
        reference = np.frombuffer(base64.b64decode(out["types"]["q8_0"]["bytes"]), dtype=np.uint8)
        blocks, ref_blocks = dst.reshape(-1, 34), reference.reshape(-1, 34)
        out["x86Q8Differences"] = {
            "scales": int((blocks[:, :2].view(np.uint16) != ref_blocks[:, :2].view(np.uint16)).sum()),
            "codes": int((blocks[:, 2:] != ref_blocks[:, 2:]).sum()),
            "elements": n,
        }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {OUT} ({n // BLOCK} blocks; {', '.join(TYPES)}); x86 q8_0: {out.get('x86Q8Differences')}")


if __name__ == "__main__":
    main()

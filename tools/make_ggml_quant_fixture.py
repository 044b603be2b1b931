"""Writes test/fixtures/ggml-quants/reference.json: random blocks of every ggml block format kvlens
reads from GGUF files, and their fp32 values as dequantized by gguf-py (llama.cpp's own Python
package), the independent reference for src/engine/model/ggmlQuants.ts.

Usage: /work/venv/bin/python tools/make_ggml_quant_fixture.py   (needs `pip install gguf numpy`)
"""
from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType as Q
from gguf.constants import GGML_QUANT_SIZES
from gguf.quants import dequantize

OUT = Path(__file__).resolve().parent.parent / "test" / "fixtures" / "ggml-quants" / "reference.json"
BLOCKS = 5
# Byte offsets of the fp16 scale/minimum fields in each block: random bytes there would often be
# NaN/Inf or huge, so they get small finite values instead.
HALF_FIELDS = {
    Q.Q4_0: [0], Q.Q4_1: [0, 2], Q.Q5_0: [0], Q.Q5_1: [0, 2], Q.Q8_0: [0],
    Q.Q2_K: [80, 82], Q.Q3_K: [108], Q.Q4_K: [0, 2], Q.Q5_K: [0, 2], Q.Q6_K: [208],
}


def main() -> None:
    rng = np.random.default_rng(20261125)
    out = {}
    for qtype, halves in HALF_FIELDS.items():
        block_elems, block_bytes = GGML_QUANT_SIZES[qtype]
        raw = rng.integers(0, 256, size=(BLOCKS, block_bytes), dtype=np.uint8)
        for at in halves:
            scale = rng.uniform(-0.08, 0.08, size=BLOCKS).astype(np.float16)
            raw[:, at:at + 2] = scale.view(np.uint8).reshape(BLOCKS, 2)
        values = dequantize(raw.reshape(-1), qtype).astype(np.float32).reshape(-1)
        assert values.size == BLOCKS * block_elems and np.isfinite(values).all()
        out[qtype.name] = {
            "typeId": int(qtype),
            "blockElements": block_elems,
            "blockBytes": block_bytes,
            "bytes": base64.b64encode(raw.tobytes()).decode(),
            "values": base64.b64encode(values.astype("<f4").tobytes()).decode(),
        }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {OUT} ({', '.join(out)})")


if __name__ == "__main__":
    main()

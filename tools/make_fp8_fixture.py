"""Writes test/fixtures/fp8/reference.json: fp32 values and the FP8 E4M3 (fn) and E5M2 codes torch rounds them to,
and every code's value, the independent reference for src/engine/kv/quant/fp8.ts and e5m2.ts. Values stay inside
each format's finite range (torch overflows to inf/NaN where vLLM's conversion saturates; the tests check that apart).

Usage: /work/venv/bin/python tools/make_fp8_fixture.py
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

OUT = Path(__file__).resolve().parent.parent / "test" / "fixtures" / "fp8" / "reference.json"


def codes(values: torch.Tensor, dtype: torch.dtype) -> list[int]:
    return values.to(dtype).view(torch.uint8).tolist()


def main() -> None:
    gen = torch.Generator().manual_seed(20261202)
    out = {}
    for name, dtype in (("e4m3", torch.float8_e4m3fn), ("e5m2", torch.float8_e5m2)):
        top = torch.finfo(dtype).max
        every = torch.arange(256, dtype=torch.uint8).view(dtype).to(torch.float32)
        finite = every[torch.isfinite(every)]
        # Midpoints between neighbouring codes (ties to even), and points just either side of them.
        grid = torch.sort(finite.unique()).values
        mids = (grid[1:] + grid[:-1]) / 2
        eps = (grid[1:] - grid[:-1]) / 1000
        values = torch.cat([
            mids, mids + eps, mids - eps,
            torch.randn(300, generator=gen) * 3,
            torch.randn(100, generator=gen) * top / 8,
            torch.rand(100, generator=gen) * grid[grid > 0].min() * 8,
        ]).to(torch.float32).clamp(-top, top)
        out[name] = {
            "values": values.tolist(),
            "codes": codes(values, dtype),
            "decoded": [None if not torch.isfinite(v) else float(v) for v in every],
        }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()

// FP8 E5M2 (IEEE-like: infinities at 0x7C/0xFC, NaN above them, max finite 57344), vLLM's fp8_e5m2 cache format.
// Encoding rounds to nearest, ties to even, and saturates to ±57344 as CUDA's __NV_SATFINITE conversion does.

export const E5M2_MAX = 57344;

/** The 124 non-negative finite magnitudes, indexed by code 0x00..0x7b (the encoding is monotonic). */
const MAGNITUDES = Float64Array.from({ length: 0x7c }, (_, code) => {
  const e = code >>> 2;
  const m = code & 3;
  return e === 0 ? m * 2 ** -16 : (1 + m / 4) * 2 ** (e - 15);
});

export function encodeE5M2(value: number): number {
  if (value !== value) return 0x7f;
  const sign = value < 0 || (value === 0 && 1 / value < 0) ? 0x80 : 0;
  const a = sign ? -value : value;
  if (a >= E5M2_MAX) return sign | 0x7b;
  let lo = 0;
  let hi = 0x7b;
  while (lo < hi) {
    const mid = (lo + hi + 1) >>> 1;
    if (MAGNITUDES[mid] <= a) lo = mid;
    else hi = mid - 1;
  }
  const below = MAGNITUDES[lo];
  if (a === below) return sign | lo;
  const midpoint = (below + MAGNITUDES[lo + 1]) / 2;
  if (a > midpoint || (a === midpoint && lo % 2 === 1)) return sign | (lo + 1);
  return sign | lo;
}

const DECODED = Float64Array.from({ length: 256 }, (_, byte) => {
  const sign = byte & 0x80 ? -1 : 1;
  const code = byte & 0x7f;
  if (code === 0x7c) return sign * Infinity;
  if (code > 0x7c) return NaN;
  return sign * MAGNITUDES[code];
});

export function decodeE5M2(byte: number): number {
  return DECODED[byte & 0xff];
}

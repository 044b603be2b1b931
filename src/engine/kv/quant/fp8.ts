// FP8 E4M3 ("fn" variant: no infinities, 0x7F/0xFF are NaN, max 448), the 1-byte format of vLLM's fp8 KV cache.
// Encoding rounds to nearest, ties to even, and saturates to ±448 instead of overflowing.

export const E4M3_MAX = 448;

/** The 127 non-negative finite magnitudes, indexed by code 0x00..0x7e (the encoding is monotonic). */
const MAGNITUDES = Float64Array.from({ length: 0x7f }, (_, code) => {
  const e = code >>> 3;
  const m = code & 7;
  return e === 0 ? m * 2 ** -9 : (1 + m / 8) * 2 ** (e - 7);
});

export function encodeE4M3(value: number): number {
  if (value !== value) return 0x7f; // NaN
  const sign = value < 0 || (value === 0 && 1 / value < 0) ? 0x80 : 0;
  const a = sign ? -value : value;
  if (a >= E4M3_MAX) return sign | 0x7e;
  // Largest code whose magnitude is <= a, then round to nearest with ties to the even code.
  let lo = 0;
  let hi = 0x7e;
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

function decodeFields(byte: number): number {
  const sign = byte & 0x80 ? -1 : 1;
  const e = (byte >>> 3) & 0xf;
  const m = byte & 7;
  if (e === 15 && m === 7) return NaN;
  if (e === 0) return sign * m * 2 ** -9;
  return sign * (1 + m / 8) * 2 ** (e - 7);
}

const DECODED = Float64Array.from({ length: 256 }, (_, byte) => decodeFields(byte));

export function decodeE4M3(byte: number): number {
  return DECODED[byte & 0xff];
}

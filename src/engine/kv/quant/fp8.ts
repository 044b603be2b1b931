// FP8 E4M3 ("fn" variant: no infinities, 0x7F/0xFF are NaN, max 448), the 1-byte format of vLLM's fp8 KV cache.
// Encoding rounds to nearest, ties to even, and saturates to ±448 instead of overflowing.

export const E4M3_MAX = 448;

function roundHalfEven(v: number): number {
  const floor = Math.floor(v);
  const fraction = v - floor;
  if (fraction > 0.5) return floor + 1;
  if (fraction < 0.5) return floor;
  return floor % 2 === 0 ? floor : floor + 1;
}

export function encodeE4M3(value: number): number {
  if (Number.isNaN(value)) return 0x7f;
  const sign = value < 0 || Object.is(value, -0) ? 0x80 : 0;
  const a = Math.abs(value);
  if (a >= E4M3_MAX) return sign | 0x7e;
  if (a < 2 ** -6) return sign | roundHalfEven(a * 2 ** 9); // subnormals: m * 2^-9; m = 8 is the smallest normal
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e--;
  if (2 ** (e + 1) <= a) e++;
  let m = roundHalfEven((a / 2 ** e - 1) * 8);
  if (m === 8) {
    e++;
    m = 0;
  }
  return sign | Math.min(((e + 7) << 3) | m, 0x7e);
}

export function decodeE4M3(byte: number): number {
  const sign = byte & 0x80 ? -1 : 1;
  const e = (byte >>> 3) & 0xf;
  const m = byte & 7;
  if (e === 15 && m === 7) return NaN;
  if (e === 0) return sign * m * 2 ** -9;
  return sign * (1 + m / 8) * 2 ** (e - 7);
}

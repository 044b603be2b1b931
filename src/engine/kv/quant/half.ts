// IEEE 754 binary16 conversion (round to nearest, ties to even), for scales and zero-points stored as fp16.
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

export function toHalfBits(value: number): number {
  f32[0] = value;
  return halfBitsOfFloatBits(u32[0]);
}

/** The fp16 pattern nearest to the fp32 value with these bits (ties to even, overflow to infinity). */
export function halfBitsOfFloatBits(bits: number): number {
  const sign = (bits >>> 16) & 0x8000;
  const exponent = (bits >>> 23) & 0xff;
  const mantissa = bits & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa ? 0x200 : 0);
  const e = exponent - 112; // rebias 127 -> 15
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    // Subnormal half: value = h * 2^-24, so h = (1.mantissa * 2^23) >> (14 - e).
    const shift = 14 - e;
    if (shift > 24) return sign;
    const full = mantissa | 0x800000;
    let h = full >>> shift;
    const rest = full & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rest > halfway || (rest === halfway && h & 1)) h++;
    return sign | h;
  }
  let h = (e << 10) | (mantissa >>> 13);
  const rest = mantissa & 0x1fff;
  // A carry out of the mantissa correctly bumps the exponent (and reaches infinity at the top).
  if (rest > 0x1000 || (rest === 0x1000 && h & 1)) h++;
  return sign | h;
}

export function fromHalfBits(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >>> 10) & 0x1f;
  const mantissa = h & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 31) return mantissa ? NaN : sign * Infinity;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

let halfValues: Float64Array | null = null;

/** fromHalfBits for every 16-bit pattern (512 KiB, built on first use): decoding a whole cache's scales every step reads it. */
export function halfTable(): Float64Array {
  if (!halfValues) halfValues = Float64Array.from({ length: 0x10000 }, (_, h) => fromHalfBits(h));
  return halfValues;
}

/** The fp16 value nearest to `value`. */
export function roundHalf(value: number): number {
  return fromHalfBits(toHalfBits(value));
}

/** The smallest fp16 value >= a non-negative `value` (scales are rounded up so the top code still covers the range). */
export function roundHalfUp(value: number): number {
  let h = toHalfBits(value);
  if (fromHalfBits(h) < value) h++;
  return fromHalfBits(h);
}

// fp32 values to fp16 patterns (round to nearest, ties to even) for whole rows: decoded KV rows handed to a forward
// pass that reads 16-bit patterns. The same results as halfBitsOfFloatBits, several times faster on rows.
import { halfBitsOfFloatBits } from './half';

/**
 * A rounder over one scratch array: writes the fp16 patterns of values[from, from + count) to target[to..], exactly as
 * halfBitsOfFloatBits, reading each fp32 as two 16-bit halves so the arithmetic stays on small integers (values outside
 * fp16's normal range take the general path). The views over `values` are made once, so it can run row by row.
 */
export function halfRounder(values: Float32Array): (from: number, count: number, target: Uint16Array, to: number) => void {
  const words = new Uint16Array(values.buffer, values.byteOffset, values.length * 2);
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  return (from, count, target, to) => {
    for (let i = from; i < from + count; i++) {
      const low = words[2 * i];
      const high = words[2 * i + 1];
      const exponent = ((high >> 7) & 0xff) - 112;
      const out = to + i - from;
      if (exponent <= 0 || exponent >= 31) {
        target[out] = halfBitsOfFloatBits(bits[i]);
        continue;
      }
      let h = (exponent << 10) | ((high & 0x7f) << 3) | (low >> 13);
      const rest = low & 0x1fff;
      // A carry out of the mantissa bumps the exponent, up to infinity, as it should.
      if (rest > 0x1000 || (rest === 0x1000 && h & 1)) h++;
      target[out] = (high & 0x8000) | h;
    }
  };
}

/** All of `values` as fp16 patterns at target[to..]. */
export function roundToHalf(values: Float32Array, target: Uint16Array, to: number): void {
  halfRounder(values)(0, values.length, target, to);
}

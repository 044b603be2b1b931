// The element type a full-precision cache holds its keys and values in: fp16 by default (what llama.cpp,
// vLLM and transformers keep), bf16, or fp32 for parity checks. 16-bit caches store raw bit patterns.
import { KvlensError } from '../errors';
import { halfBitsOfFloatBits, halfTable } from './quant/half';

export type KvDtype = 'fp16' | 'bf16' | 'fp32';

export const KV_DTYPES: readonly KvDtype[] = ['fp16', 'bf16', 'fp32'];
export const DEFAULT_KV_DTYPE: KvDtype = 'fp16';

/** Storage of one cache's keys or values: fp32 values, or 16-bit patterns of the cache's dtype. */
export type KvArray = Float32Array | Uint16Array;

export function parseKvDtype(value: string, where = '--kv-dtype'): KvDtype {
  if ((KV_DTYPES as readonly string[]).includes(value)) return value as KvDtype;
  throw new KvlensError(`unknown KV dtype "${value}" (choose ${KV_DTYPES.join(', ')})`, where);
}

export function kvElementBytes(dtype: KvDtype): number {
  return dtype === 'fp32' ? 4 : 2;
}

export function allocateKv(dtype: KvDtype, elements: number): KvArray {
  return dtype === 'fp32' ? new Float32Array(elements) : new Uint16Array(elements);
}

/** fp32 bits -> bf16 bits, ties to even (as torch's `.bfloat16()`), NaN kept quiet. */
function floatBitsToBfloat(bits: number): number {
  if ((bits & 0x7f800000) === 0x7f800000 && bits & 0x7fffff) return ((bits >>> 16) | 0x40) & 0xffff;
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
}

/** Writes `source` (fp32 values) into `target` at element `offset`, rounding to the cache's dtype. */
export function encodeKv(dtype: KvDtype, source: Float32Array, target: KvArray, offset: number): void {
  if (dtype === 'fp32') {
    (target as Float32Array).set(source, offset);
    return;
  }
  const bits = new Uint32Array(source.buffer, source.byteOffset, source.length);
  const out = target as Uint16Array;
  if (dtype === 'fp16') for (let i = 0; i < bits.length; i++) out[offset + i] = halfBitsOfFloatBits(bits[i]);
  else for (let i = 0; i < bits.length; i++) out[offset + i] = floatBitsToBfloat(bits[i]);
}

/** The fp32 values of `count` elements of `source` from `offset` (a fresh array; a view for fp32). */
export function decodeKv(dtype: KvDtype, source: KvArray, offset = 0, count = source.length - offset): Float32Array {
  if (dtype === 'fp32') return (source as Float32Array).subarray(offset, offset + count);
  const out = new Float32Array(count);
  const from = source as Uint16Array;
  if (dtype === 'fp16') {
    const table = halfTable();
    for (let i = 0; i < count; i++) out[i] = table[from[offset + i]];
  } else {
    const bits = new Uint32Array(out.buffer);
    for (let i = 0; i < count; i++) bits[i] = from[offset + i] << 16;
  }
  return out;
}

/** One stored element as an fp32 value. */
export function decodeKvElement(dtype: KvDtype, source: KvArray, index: number): number {
  if (dtype === 'fp32') return source[index];
  if (dtype === 'fp16') return halfTable()[source[index]];
  scratchBits[0] = source[index] << 16;
  return scratchFloat[0];
}

const scratchFloat = new Float32Array(1);
const scratchBits = new Uint32Array(scratchFloat.buffer);

/** The value `x` takes once stored in `dtype` (for references that model the cache's rounding). */
export function roundToKv(dtype: KvDtype, values: Float32Array): Float32Array {
  if (dtype === 'fp32') return values;
  const stored = allocateKv(dtype, values.length);
  encodeKv(dtype, values, stored, 0);
  return decodeKv(dtype, stored);
}

// vLLM's fp8 KV cache as a row codec: each element stored as the FP8 code of x / scale (saturating), one fp32 scale
// per layer for all keys and one for all values (a per-tensor scale), decoded as code value × scale.
import { decodeE4M3, encodeE4M3 } from './fp8';
import { decodeE5M2, encodeE5M2 } from './e5m2';
import { toHalfBits } from './half';
import type { RowCodec } from './row-codec';

export type Fp8Format = 'e4m3' | 'e5m2';

const FORMATS = {
  e4m3: { encode: encodeE4M3, decode: decodeE4M3 },
  e5m2: { encode: encodeE5M2, decode: decodeE5M2 },
};

/** The largest |x| of `data`, as float32 (torch.abs(x).max()). */
export function absMax(data: Float32Array): number {
  let max = 0;
  for (let i = 0; i < data.length; i++) max = Math.max(max, Math.abs(data[i]));
  return max;
}

export function fp8TensorCodec(format: Fp8Format, scale: number, headDim: number): RowCodec {
  const { encode, decode } = FORMATS[format];
  // One table of code values × scale: every decode step reads the whole cache.
  const values = Float32Array.from({ length: 256 }, (_, code) => decode(code) * scale);
  // The code values themselves, for a forward pass that applies the scale (saturated codes stay finite; NaN codes never occur).
  const levels = Float32Array.from({ length: 256 }, (_, code) => (Number.isFinite(decode(code)) ? decode(code) : 0));
  const halves = Uint16Array.from(values, (v) => toHalfBits(v));
  const s = Math.fround(scale);
  return {
    name: `fp8_${format}`,
    bits: 8,
    rowBytes: headDim,
    parts: { packed: headDim, scales: 0, zeroPoints: 0, fullPrecision: 0 },
    tensorBytes: Float32Array.BYTES_PER_ELEMENT,
    encode(row, view, at) {
      for (let c = 0; c < headDim; c++) view.setUint8(at + c, encode(Math.fround(row[c] / s)));
    },
    decode(bytes, _view, at, target, to) {
      for (let c = 0; c < headDim; c++) target[to + c] = values[bytes[at + c]];
    },
    decodeHalf(bytes, _view, at, target, to) {
      for (let c = 0; c < headDim; c++) target[to + c] = halves[bytes[at + c]];
    },
    packing: {
      bits: 8,
      group: headDim,
      table: levels,
      write(bytes, _view, at, codes, codeAt, scales, zeros, paramAt) {
        for (let c = 0; c < headDim; c++) codes[codeAt + c] = bytes[at + c];
        scales[paramAt] = s;
        zeros[paramAt] = 0;
      },
    },
  };
}

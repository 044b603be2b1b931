// Group codecs shared by the quantizers: asymmetric uniform (KIVI, FlexGen), symmetric absmax int8 (q8_0), FP8 E4M3.
// Scales are rounded to their storage precision before quantizing, so dequantization uses exactly what is stored.
import { decodeE4M3 as decode, E4M3_MAX, encodeE4M3 as encode } from './fp8';
import { fromHalfBits, roundHalf, roundHalfUp, toHalfBits } from './half';

export type CodecKind = 'uniform' | 'absmax-int8' | 'e4m3';
export type ScaleStorage = 'fp16' | 'fp32';

export interface QuantScheme {
  /** Method name, for messages. */
  name: string;
  bits: number;
  codec: CodecKind;
  /**
   * 'channels': each token's key row is split into groups of `keyGroup` consecutive channels.
   * 'tokens': each channel is grouped over `keyGroup` consecutive tokens (KIVI's per-channel key quantization).
   */
  keyAxis: 'channels' | 'tokens';
  keyGroup: number;
  /** Values are always grouped per token, over `valueGroup` consecutive channels. */
  valueGroup: number;
  /** Most recent tokens per head kept in the cache's full-precision dtype (KIVI); 0 quantizes every token on arrival. */
  residual: number;
  scaleStorage: ScaleStorage;
}

/** One group's quantization parameters, as the real numbers the stored bits decode to. */
export interface GroupParams {
  scale: number;
  zero: number;
}

export interface Codec {
  readonly hasZero: boolean;
  /** The number each 8-bit code stands for: a group decodes element-wise to zero + levels[code] * scale, as `decode` does. */
  readonly levels: Float64Array;
  /** For codecs whose levels are code - offset (a graph can then decode them with one multiply-add); null for table codecs. */
  readonly codeOffset: number | null;
  encode(x: Float32Array, codes: Uint8Array): GroupParams;
  decode(codes: Uint8Array, params: GroupParams, out: Float32Array): void;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

function roundFloatUp(value: number): number {
  let rounded = Math.fround(value);
  if (rounded < value) {
    f32[0] = rounded;
    u32[0] += 1; // positive finite: the next float32 up
    rounded = f32[0];
  }
  return rounded;
}

export function storeParam(value: number, storage: ScaleStorage): number {
  return storage === 'fp16' ? toHalfBits(value) : value;
}

export function loadParam(stored: number, storage: ScaleStorage): number {
  return storage === 'fp16' ? fromHalfBits(stored) : stored;
}

function rounders(storage: ScaleStorage): { nearest(v: number): number; up(v: number): number } {
  return storage === 'fp16' ? { nearest: roundHalf, up: roundHalfUp } : { nearest: Math.fround, up: roundFloatUp };
}

function extent(x: Float32Array): { min: number; max: number; absmax: number } {
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < x.length; i++) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
  }
  return { min, max, absmax: Math.max(Math.abs(min), Math.abs(max)) };
}

function uniform(bits: number, storage: ScaleStorage): Codec {
  const levels = 2 ** bits - 1;
  const round = rounders(storage);
  return {
    hasZero: true,
    levels: Float64Array.from({ length: 256 }, (_, code) => code),
    codeOffset: 0,
    encode(x, codes) {
      const { min, max } = extent(x);
      const zero = round.nearest(min);
      const scale = max > zero ? round.up((max - zero) / levels) : 0;
      for (let i = 0; i < x.length; i++) {
        codes[i] = scale > 0 ? Math.min(levels, Math.max(0, Math.round((x[i] - zero) / scale))) : 0;
      }
      return { scale, zero };
    },
    decode(codes, p, out) {
      for (let i = 0; i < codes.length; i++) out[i] = p.zero + codes[i] * p.scale;
    },
  };
}

/** Symmetric int8 codes are stored offset by 128 (code = q + 128), so every linear codec decodes as code·scale + zero. */
export const INT8_CODE_OFFSET = 128;

function absmaxInt8(storage: ScaleStorage): Codec {
  const round = rounders(storage);
  return {
    hasZero: false,
    levels: Float64Array.from({ length: 256 }, (_, code) => code - INT8_CODE_OFFSET),
    codeOffset: INT8_CODE_OFFSET,
    encode(x, codes) {
      const scale = round.up(extent(x).absmax / 127);
      for (let i = 0; i < x.length; i++) {
        const q = scale > 0 ? Math.min(127, Math.max(-127, Math.round(x[i] / scale))) : 0;
        codes[i] = q + INT8_CODE_OFFSET;
      }
      return { scale, zero: 0 };
    },
    decode(codes, p, out) {
      for (let i = 0; i < codes.length; i++) out[i] = (codes[i] - INT8_CODE_OFFSET) * p.scale;
    },
  };
}

function e4m3(storage: ScaleStorage): Codec {
  const round = rounders(storage);
  // Local bindings: the per-element calls then skip the module export getters.
  const encodeE4M3 = encode;
  const decodeE4M3 = decode;
  return {
    hasZero: false,
    levels: Float64Array.from({ length: 256 }, (_, code) => decodeE4M3(code)),
    codeOffset: null,
    encode(x, codes) {
      const scale = round.up(extent(x).absmax / E4M3_MAX);
      for (let i = 0; i < x.length; i++) codes[i] = scale > 0 ? encodeE4M3(x[i] / scale) : 0;
      return { scale, zero: 0 };
    },
    decode(codes, p, out) {
      for (let i = 0; i < codes.length; i++) out[i] = decodeE4M3(codes[i]) * p.scale;
    },
  };
}

export function makeCodec(scheme: QuantScheme): Codec {
  if (scheme.codec === 'uniform') return uniform(scheme.bits, scheme.scaleStorage);
  if (scheme.codec === 'absmax-int8') return absmaxInt8(scheme.scaleStorage);
  return e4m3(scheme.scaleStorage);
}

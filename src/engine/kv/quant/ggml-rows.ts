// llama.cpp's KV cache types as row codecs: a head's key or value row of headDim elements becomes headDim/32
// ggml blocks, written as ggml's reference quantizers write them (float32 arithmetic step by step) and read back
// with the block decoders GGUF weights use.
//
// Layout in llama.cpp (src/llama-kv-cache.cpp): a layer's K cache is one row of n_head_kv * head_dim elements per
// cell, the heads side by side, so each head's head_dim/32 blocks are contiguous and no block spans two heads
// (llama.cpp refuses a quantized type whose block size does not divide head_dim). V is the same row per cell when
// flash attention is on, which a quantized V cache requires; only an unquantized V without flash attention is
// stored transposed. So keys and values are both quantized along the head dimension, token by token, and a row
// here holds exactly the bytes of that head's blocks in the server's cache.
import { KvlensError } from '../../errors';
import { GGML_BLOCK_FORMATS } from '../../model/ggmlQuants';
import { f16Table } from '../../model/safetensors';
import { halfBitsOfFloatBits, toHalfBits } from './half';
import type { RowCodec, RowPacking } from './row-codec';
import { halfRounder } from './round-half';

export const LLAMACPP_CACHE_TYPES = ['f16', 'bf16', 'q8_0', 'q4_0', 'q4_1', 'q5_0', 'q5_1', 'iq4_nl'] as const;
export type LlamaCppCacheType = (typeof LLAMACPP_CACHE_TYPES)[number];

const BLOCK = 32;
const fround = Math.fround;
/** ggml's lookup table of the 16 IQ4_NL levels. */
export const IQ4_NL_LEVELS = Int8Array.of(-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113);
/** ggml's GROUP_MAX_EPS: a block below it in magnitude gets scale 0. */
const GROUP_MAX_EPS = fround(1e-15);
const FLT_MAX = 3.4028234663852886e38;

interface BlockType {
  bytes: number;
  /** Bytes of the block that are codes (the rest: fp16 scale, and minimum for the _1 types). */
  codeBytes: number;
  hasMinimum: boolean;
  bits: number;
  encode(x: Float32Array, from: number, out: DataView, at: number): void;
  decode(bytes: Uint8Array, view: DataView, at: number, target: Float32Array, to: number): void;
  /** For nibble types: the block's 16 values as decode computes them (float32), and where its code bytes start. */
  levels?(view: DataView, at: number, out: Float32Array): number;
  /** For types a forward pass reads as codes: bits, the level table (null: codes are levels), and one block's scale and zero. */
  packed?: { bits: 4 | 8; table: Float32Array | null; params(view: DataView, at: number, scales: Float32Array, zeros: Float32Array, to: number): void };
}

/** IQ4_NL's levels per byte value: the low nibble's, then the high nibble's. */
const IQ4_NL_BYTE_LEVELS = Float32Array.from({ length: 512 }, (_, i) => IQ4_NL_LEVELS[i % 2 === 0 ? (i >> 1) & 0x0f : (i >> 1) >> 4]);

/** Index of the first element of largest magnitude, and that element (sign kept), as ggml's q4_0/q5_0/iq4_nl find it. */
function signedMax(x: Float32Array, from: number): { amax: number; max: number } {
  let amax = 0;
  let max = 0;
  for (let j = 0; j < BLOCK; j++) {
    const v = x[from + j];
    if (amax < Math.abs(v)) {
      amax = Math.abs(v);
      max = v;
    }
  }
  return { amax, max };
}

function extremes(x: Float32Array, from: number): { min: number; max: number } {
  let min = FLT_MAX;
  let max = -FLT_MAX;
  for (let j = 0; j < BLOCK; j++) {
    const v = x[from + j];
    if (v < min) min = v;
    if (v > max) max = v;
  }
  return { min, max };
}

const reciprocal = (d: number) => (d !== 0 ? fround(1 / d) : 0);

/** Symmetric types (q4_0, q5_0): codes trunc(x·id + offset + ½) of d = max / −offset, capped at 2·offset − 1. */
function symmetric(offset: number, codes: Uint8Array, x: Float32Array, from: number, out: DataView, at: number): void {
  const { max } = signedMax(x, from);
  const d = fround(max / -offset);
  const id = reciprocal(d);
  out.setUint16(at, toHalfBits(d), true);
  const top = 2 * offset - 1;
  for (let j = 0; j < BLOCK; j++) codes[j] = Math.min(top, Math.trunc(fround(fround(x[from + j] * id) + offset + 0.5)));
}

/**
 * Asymmetric types (q4_1, q5_1): codes trunc((x − min)·id + ½) of d = (max − min) / levels, fp16 d then fp16 min.
 * ggml caps q4_1's codes at 15 and leaves q5_1's uncapped (float rounding never takes them past 31).
 */
function asymmetric(levels: number, cap: number, codes: Uint8Array, x: Float32Array, from: number, out: DataView, at: number): void {
  const { min, max } = extremes(x, from);
  const d = fround(fround(max - min) / levels);
  const id = reciprocal(d);
  out.setUint16(at, toHalfBits(d), true);
  out.setUint16(at + 2, toHalfBits(min), true);
  for (let j = 0; j < BLOCK; j++) codes[j] = Math.min(cap, Math.trunc(fround(fround(fround(x[from + j] - min) * id) + 0.5)));
}

/** Low nibbles hold elements 0..15, high nibbles 16..31 (every 32-element ggml block packs 4-bit codes this way). */
function packNibbles(codes: Uint8Array, out: DataView, at: number): void {
  for (let j = 0; j < 16; j++) out.setUint8(at + j, (codes[j] & 0x0f) | ((codes[j + 16] & 0x0f) << 4));
}

/** Bit 4 of element j's code goes to bit j of a little-endian 32-bit word. */
function packHighBits(codes: Uint8Array, out: DataView, at: number): void {
  let qh = 0;
  for (let j = 0; j < BLOCK; j++) qh |= ((codes[j] >> 4) & 1) << j;
  out.setUint32(at, qh >>> 0, true);
}

/** C's roundf: halves away from zero. */
const roundAway = (v: number) => (v < 0 ? -Math.round(-v) : Math.round(v));

/** ggml's best_index_int8: the nearest level, the lower one on a tie, compared in float32. */
function nearestLevel(x: number): number {
  const levels = IQ4_NL_LEVELS;
  if (x <= levels[0]) return 0;
  if (x >= levels[15]) return 15;
  let lo = 0;
  let hi = 15;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (x < levels[mid]) hi = mid;
    else lo = mid;
  }
  return fround(x - levels[hi - 1]) < fround(levels[hi] - x) ? hi - 1 : hi;
}

const scratch = new Uint8Array(BLOCK);
const dequantizer = (typeId: number) => {
  const format = GGML_BLOCK_FORMATS[typeId];
  const half = f16Table();
  return (bytes: Uint8Array, view: DataView, at: number, target: Float32Array, to: number) => format.dequantizeBlock(bytes, view, at, target, to, half);
};

const BLOCK_TYPES: Record<Exclude<LlamaCppCacheType, 'f16' | 'bf16'>, BlockType> = {
  q8_0: {
    bytes: 34,
    codeBytes: 32,
    hasMinimum: false,
    bits: 8,
    encode(x, from, out, at) {
      let amax = 0;
      for (let j = 0; j < BLOCK; j++) amax = Math.max(amax, Math.abs(x[from + j]));
      const d = fround(amax / 127);
      const id = reciprocal(d);
      out.setUint16(at, toHalfBits(d), true);
      for (let j = 0; j < BLOCK; j++) out.setInt8(at + 2 + j, roundAway(fround(x[from + j] * id)));
    },
    decode: dequantizer(8),
    // Codes offset by 128 (q + 128, the byte with its sign bit flipped) so they are unsigned: zero-point −128·d.
    packed: {
      bits: 8,
      table: null,
      params(view, at, scales, zeros, to) {
        scales[to] = f16Table()[view.getUint16(at, true)];
        zeros[to] = -128 * scales[to];
      },
    },
  },
  q4_0: {
    bytes: 18,
    codeBytes: 16,
    hasMinimum: false,
    bits: 4,
    encode(x, from, out, at) {
      symmetric(8, scratch, x, from, out, at);
      packNibbles(scratch, out, at + 2);
    },
    decode: dequantizer(2),
    levels(view, at, out) {
      const d = f16Table()[view.getUint16(at, true)];
      for (let code = 0; code < 16; code++) out[code] = (code - 8) * d;
      return at + 2;
    },
    packed: {
      bits: 4,
      table: null,
      params(view, at, scales, zeros, to) {
        scales[to] = f16Table()[view.getUint16(at, true)];
        zeros[to] = -8 * scales[to];
      },
    },
  },
  q4_1: {
    bytes: 20,
    codeBytes: 16,
    hasMinimum: true,
    bits: 4,
    encode(x, from, out, at) {
      asymmetric(15, 15, scratch, x, from, out, at);
      packNibbles(scratch, out, at + 4);
    },
    decode: dequantizer(3),
    levels(view, at, out) {
      const half = f16Table();
      const d = half[view.getUint16(at, true)];
      const m = half[view.getUint16(at + 2, true)];
      for (let code = 0; code < 16; code++) out[code] = code * d + m;
      return at + 4;
    },
    packed: {
      bits: 4,
      table: null,
      params(view, at, scales, zeros, to) {
        scales[to] = f16Table()[view.getUint16(at, true)];
        zeros[to] = f16Table()[view.getUint16(at + 2, true)];
      },
    },
  },
  q5_0: {
    bytes: 22,
    codeBytes: 20,
    hasMinimum: false,
    bits: 5,
    encode(x, from, out, at) {
      symmetric(16, scratch, x, from, out, at);
      packHighBits(scratch, out, at + 2);
      packNibbles(scratch, out, at + 6);
    },
    decode: dequantizer(6),
  },
  q5_1: {
    bytes: 24,
    codeBytes: 20,
    hasMinimum: true,
    bits: 5,
    encode(x, from, out, at) {
      asymmetric(31, Infinity, scratch, x, from, out, at);
      packHighBits(scratch, out, at + 4);
      packNibbles(scratch, out, at + 8);
    },
    decode: dequantizer(7),
  },
  iq4_nl: {
    bytes: 18,
    codeBytes: 16,
    hasMinimum: false,
    bits: 4,
    // quantize_row_iq4_nl_ref: levels from d = max / −127, then the least-squares scale Σwqx / Σwq² with weights x².
    // (No scale search: that runs only when quantizing weights with an importance matrix.)
    encode(x, from, out, at) {
      const { amax, max } = signedMax(x, from);
      if (amax < GROUP_MAX_EPS) {
        // ggml leaves such a block's codes as they were; every code decodes to 0 with d = 0, so write the level nearest 0.
        out.setUint16(at, 0, true);
        scratch.fill(nearestLevel(0));
        packNibbles(scratch, out, at + 2);
        return;
      }
      const id = fround(1 / fround(max / IQ4_NL_LEVELS[0]));
      let sumqx = 0;
      let sumq2 = 0;
      for (let j = 0; j < BLOCK; j++) {
        const v = x[from + j];
        const l = nearestLevel(fround(id * v));
        scratch[j] = l;
        const q = IQ4_NL_LEVELS[l];
        const wq = fround(fround(v * v) * q);
        sumqx = fround(sumqx + fround(wq * v));
        sumq2 = fround(sumq2 + fround(wq * q));
      }
      out.setUint16(at, toHalfBits(sumq2 > 0 ? fround(sumqx / sumq2) : 0), true);
      packNibbles(scratch, out, at + 2);
    },
    decode(bytes, view, at, target, to) {
      const d = f16Table()[view.getUint16(at, true)];
      for (let j = 0; j < 16; j++) {
        const packed = bytes[at + 2 + j];
        target[to + j] = d * IQ4_NL_LEVELS[packed & 0x0f];
        target[to + j + 16] = d * IQ4_NL_LEVELS[packed >> 4];
      }
    },
    levels(view, at, out) {
      const d = f16Table()[view.getUint16(at, true)];
      for (let code = 0; code < 16; code++) out[code] = d * IQ4_NL_LEVELS[code];
      return at + 2;
    },
    packed: {
      bits: 4,
      table: IQ4_NL_BYTE_LEVELS,
      params(view, at, scales, zeros, to) {
        scales[to] = f16Table()[view.getUint16(at, true)];
        zeros[to] = 0;
      },
    },
  },
};

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** ggml_fp32_to_bf16: NaN made quiet, otherwise round to nearest even. */
function bfloatBits(value: number): number {
  f32[0] = value;
  const bits = u32[0];
  if ((bits & 0x7fffffff) > 0x7f800000) return ((bits >>> 16) | 0x40) & 0xffff;
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
}

function sixteenBit(type: 'f16' | 'bf16', headDim: number): RowCodec {
  const encode = type === 'f16' ? (v: number) => ((f32[0] = v), halfBitsOfFloatBits(u32[0])) : bfloatBits;
  const half = f16Table();
  const word = new Uint32Array(1);
  const asFloat = new Float32Array(word.buffer);
  return {
    name: type,
    bits: null,
    rowBytes: 2 * headDim,
    parts: { packed: 0, scales: 0, zeroPoints: 0, fullPrecision: 2 * headDim },
    tensorBytes: 0,
    encode(row, view, at) {
      for (let c = 0; c < headDim; c++) view.setUint16(at + 2 * c, encode(row[c]), true);
    },
    decode(bytes, _view, at, target, to) {
      for (let c = 0; c < headDim; c++) {
        const bits = bytes[at + 2 * c] | (bytes[at + 2 * c + 1] << 8);
        if (type === 'f16') target[to + c] = half[bits];
        else {
          word[0] = bits << 16;
          target[to + c] = asFloat[0];
        }
      }
    },
    ...(type === 'f16'
      ? {
          decodeHalf(bytes: Uint8Array, _view: DataView, at: number, target: Uint16Array, to: number) {
            for (let c = 0; c < headDim; c++) target[to + c] = bytes[at + 2 * c] | (bytes[at + 2 * c + 1] << 8);
          },
        }
      : {}),
  };
}

/**
 * A row of ggml blocks as element-ordered codes: q8_0's bytes with the sign bit flipped; the nibble types' codes moved
 * from ggml's order (element j in the low nibble of byte j, element j + 16 in its high nibble) to consecutive pairs.
 */
function blockPacking(block: BlockType, packed: NonNullable<BlockType['packed']>, blocks: number): RowPacking {
  const codeStart = block.bytes - block.codeBytes;
  return {
    bits: packed.bits,
    group: BLOCK,
    table: packed.table,
    write(bytes, view, at, codes, codeAt, scales, zeros, paramAt) {
      for (let b = 0; b < blocks; b++) {
        const base = at + b * block.bytes;
        const qs = base + codeStart;
        packed.params(view, base, scales, zeros, paramAt + b);
        if (packed.bits === 8) {
          const out = codeAt + b * BLOCK;
          for (let j = 0; j < BLOCK; j++) codes[out + j] = bytes[qs + j] ^ 0x80;
          continue;
        }
        const out = codeAt + b * (BLOCK / 2);
        for (let i = 0; i < 8; i++) {
          codes[out + i] = (bytes[qs + 2 * i] & 0x0f) | ((bytes[qs + 2 * i + 1] & 0x0f) << 4);
          codes[out + 8 + i] = (bytes[qs + 2 * i] >> 4) | (bytes[qs + 2 * i + 1] & 0xf0);
        }
      }
    },
  };
}

/** The codec for one llama.cpp cache type over rows of `headDim`; refuses, as llama.cpp does, a block size that does not divide it. */
export function llamaCppCodec(type: LlamaCppCacheType, headDim: number, where: string): RowCodec {
  if (type === 'f16' || type === 'bf16') return sixteenBit(type, headDim);
  const block = BLOCK_TYPES[type];
  if (headDim % BLOCK !== 0) {
    throw new KvlensError(`${type} blocks of ${BLOCK} do not divide the head size ${headDim} (llama.cpp refuses this cache type for the model too)`, where);
  }
  const blocks = headDim / BLOCK;
  const paramBytes = block.bytes - block.codeBytes;
  const levelsOf = block.levels;
  const packed = block.packed;
  const levels = new Float32Array(16);
  const halves = new Uint16Array(16);
  const roundLevels = halfRounder(levels);
  return {
    name: type,
    bits: block.bits,
    rowBytes: blocks * block.bytes,
    parts: {
      packed: blocks * block.codeBytes,
      scales: blocks * (block.hasMinimum ? paramBytes / 2 : paramBytes),
      zeroPoints: blocks * (block.hasMinimum ? paramBytes / 2 : 0),
      fullPrecision: 0,
    },
    tensorBytes: 0,
    encode(row, view, at) {
      for (let b = 0; b < blocks; b++) block.encode(row, b * BLOCK, view, at + b * block.bytes);
    },
    decode(bytes, view, at, target, to) {
      for (let b = 0; b < blocks; b++) block.decode(bytes, view, at + b * block.bytes, target, to + b * BLOCK);
    },
    ...(packed ? { packing: blockPacking(block, packed, blocks) } : {}),
    ...(levelsOf
      ? {
          // 16 values per block: round each once to fp16 and look the codes up.
          decodeHalf(bytes: Uint8Array, view: DataView, at: number, target: Uint16Array, to: number) {
            for (let b = 0; b < blocks; b++) {
              const codes = levelsOf(view, at + b * block.bytes, levels);
              roundLevels(0, 16, halves, 0);
              const out = to + b * BLOCK;
              for (let j = 0; j < 16; j++) {
                const packed = bytes[codes + j];
                target[out + j] = halves[packed & 0x0f];
                target[out + j + 16] = halves[packed >> 4];
              }
            }
          },
        }
      : {}),
  };
}

// Linear weights in com.microsoft MatMulNBits' block layout: value = (code - zero) * scale per block.
//
// ggml block formats map onto it exactly wherever the block's own arithmetic has that form:
//   Q4_0          4 bits, block 32, implicit zero 8            Q8_0, Q5_0   8 bits, block 32, implicit zero 128
//   Q4_1, Q4_K    4 bits, block 32, float zero (min / scale)   Q6_K, Q3_K   8 bits, block 16, implicit zero 128
//   Q2_K          4 bits (2-bit codes), block 16, float zero
// Q5_1 and Q5_K carry a float minimum on 5-bit codes, which neither 4 bits nor 8 bits with an integer
// zero can hold (onnxruntime refuses float zeros at 8 bits): they are requantized to symmetric 8 bits in
// blocks of 32, a documented, measured drift. Float-stored matrices become int8 (the same 8-bit form)
// or int4 on request; int4 is asymmetric (Q4_1's rule: the block's minimum and maximum are codes 0 and
// 15), which on small random fixtures kept the top-1 token where Q4_0's symmetric rule did not.
import { KvlensError } from '../../errors';
import { f16Table } from '../safetensors';
import type { StorageDtype } from '../types';
import { columnCount, requireInfo, rowCount, type WeightSource } from '../weightSource';

export type NBitsScheme = 'int8' | 'int4';

export interface NBitsMatrix {
  bits: 4 | 8;
  blockSize: number;
  /** N rows, K columns (HF Linear weight [out, in]). */
  n: number;
  k: number;
  /** [N, K / blockSize, blockSize * bits / 8] */
  packed: Uint8Array;
  /** [N * K / blockSize] */
  scales: Float32Array;
  /** Float zero points [N * K / blockSize], or null for the implicit 2^(bits-1). */
  zeroPoints: Float32Array | null;
  /** True when the codes are the file's own (no requantization). */
  exact: boolean;
}

/** How a stored tensor will sit in the graph, known from its dtype alone (for estimates). */
export interface NBitsLayout {
  bits: 4 | 8;
  blockSize: number;
  floatZeros: boolean;
  exact: boolean;
}

const NATIVE_LAYOUT: Partial<Record<StorageDtype, NBitsLayout>> = {
  Q4_0: { bits: 4, blockSize: 32, floatZeros: false, exact: true },
  Q4_1: { bits: 4, blockSize: 32, floatZeros: true, exact: true },
  Q4_K: { bits: 4, blockSize: 32, floatZeros: true, exact: true },
  Q2_K: { bits: 4, blockSize: 16, floatZeros: true, exact: true },
  Q8_0: { bits: 8, blockSize: 32, floatZeros: false, exact: true },
  Q5_0: { bits: 8, blockSize: 32, floatZeros: false, exact: true },
  Q6_K: { bits: 8, blockSize: 16, floatZeros: false, exact: true },
  Q3_K: { bits: 8, blockSize: 16, floatZeros: false, exact: true },
  Q5_1: { bits: 8, blockSize: 32, floatZeros: false, exact: false },
  Q5_K: { bits: 8, blockSize: 32, floatZeros: false, exact: false },
};

const SCHEME_LAYOUT: Record<NBitsScheme, NBitsLayout> = {
  int8: { bits: 8, blockSize: 32, floatZeros: false, exact: false },
  int4: { bits: 4, blockSize: 32, floatZeros: true, exact: false },
};

/** The layout a stored tensor gets: its ggml format's own, or `scheme` for float-stored tensors (null = keep fp32). */
export function nbitsLayout(dtype: StorageDtype, scheme: NBitsScheme | null, int4BlockSize = 32): NBitsLayout | null {
  const native = NATIVE_LAYOUT[dtype];
  if (native) return native;
  if (!scheme) return null;
  return scheme === 'int4' ? { ...SCHEME_LAYOUT.int4, blockSize: int4BlockSize } : SCHEME_LAYOUT.int8;
}

/** Bytes a [n, k] matrix takes in a layout (codes + fp32 scales + fp32 zeros). */
export function nbitsBytes(layout: NBitsLayout, n: number, k: number): number {
  const blocks = n * Math.ceil(k / layout.blockSize);
  return blocks * ((layout.blockSize * layout.bits) / 8 + 4 + (layout.floatZeros ? 4 : 0));
}

/**
 * Per sub-block affine parameters of a ggml block, read from its header: value = (code - zero) * scale.
 * `zero` is ignored where the layout's zero is implicit.
 */
type BlockParams = (bytes: Uint8Array, view: DataView, base: number, half: Float32Array, scales: Float32Array, zeros: Float32Array) => void;

function kScaleMin(bytes: Uint8Array, at: number, j: number): [number, number] {
  if (j < 4) return [bytes[at + j] & 63, bytes[at + 4 + j] & 63];
  const i = j - 4;
  return [(bytes[at + 8 + i] & 0x0f) | ((bytes[at + i] >> 2) & 0x30), (bytes[at + 8 + i] >> 4) | ((bytes[at + 4 + i] >> 2) & 0x30)];
}

/** A float zero for value = scale*q - min; a zero scale keeps the constant -min with code 0. */
function setAffine(scales: Float32Array, zeros: Float32Array, j: number, scale: number, min: number): void {
  if (scale !== 0) {
    scales[j] = scale;
    zeros[j] = min / scale;
  } else {
    scales[j] = -min;
    zeros[j] = -1;
  }
}

const BLOCK_PARAMS: Partial<Record<StorageDtype, BlockParams>> = {
  Q4_0: (_b, view, base, half, scales) => {
    scales[0] = half[view.getUint16(base, true)];
  },
  Q8_0: (_b, view, base, half, scales) => {
    scales[0] = half[view.getUint16(base, true)];
  },
  Q5_0: (_b, view, base, half, scales) => {
    scales[0] = half[view.getUint16(base, true)];
  },
  Q4_1: (_b, view, base, half, scales, zeros) => {
    setAffine(scales, zeros, 0, half[view.getUint16(base, true)], -half[view.getUint16(base + 2, true)]);
  },
  Q4_K: (bytes, view, base, half, scales, zeros) => {
    const d = half[view.getUint16(base, true)];
    const dmin = half[view.getUint16(base + 2, true)];
    for (let j = 0; j < 8; j++) {
      const [sc, m] = kScaleMin(bytes, base + 4, j);
      setAffine(scales, zeros, j, d * sc, dmin * m);
    }
  },
  Q2_K: (bytes, view, base, half, scales, zeros) => {
    const d = half[view.getUint16(base + 80, true)];
    const dmin = half[view.getUint16(base + 82, true)];
    for (let j = 0; j < 16; j++) setAffine(scales, zeros, j, d * (bytes[base + j] & 0x0f), dmin * (bytes[base + j] >> 4));
  },
  Q6_K: (_b, view, base, half, scales) => {
    const d = half[view.getUint16(base + 208, true)];
    for (let j = 0; j < 16; j++) scales[j] = d * view.getInt8(base + 192 + j);
  },
  Q3_K: (bytes, view, base, half, scales) => {
    const d = half[view.getUint16(base + 108, true)];
    for (let j = 0; j < 16; j++) {
      const low = (bytes[base + 96 + (j & 7)] >> (4 * (j >> 3))) & 0x0f;
      const high = (bytes[base + 104 + (j & 3)] >> (2 * (j >> 2))) & 0x03;
      scales[j] = d * ((low | (high << 4)) - 32);
    }
  },
};

/** Rows converted per read: bounds the fp32 scratch of a conversion to a few MB whatever the matrix. */
const ROWS_PER_CHUNK = 256;

function putCode(packed: Uint8Array, bits: 4 | 8, blockBase: number, index: number, code: number): void {
  if (bits === 8) packed[blockBase + index] = code;
  else packed[blockBase + (index >> 1)] |= index & 1 ? code << 4 : code;
}

/**
 * Converts the [N, K] matrix `name` of `source` into MatMulNBits form: ggml blocks keep their own codes
 * (read back from the dequantized values with the block's own scale and zero, which is exact), float
 * matrices are quantized with `scheme`.
 */
export function toNBits(source: WeightSource, name: string, scheme: NBitsScheme, int4BlockSize = 32): NBitsMatrix {
  const info = requireInfo(source, name);
  if (info.shape.length !== 2) throw new KvlensError(`"${name}" is not a matrix`, source.origin);
  const n = rowCount(info);
  const k = columnCount(info);
  const layout = nbitsLayout(info.dtype, scheme, int4BlockSize)!;
  const { bits, blockSize } = layout;
  const blocksPerRow = Math.ceil(k / blockSize);
  const blob = (blockSize * bits) / 8;
  const packed = new Uint8Array(n * blocksPerRow * blob);
  const scales = new Float32Array(n * blocksPerRow);
  const zeroPoints = layout.floatZeros ? new Float32Array(n * blocksPerRow) : null;
  const implicitZero = bits === 8 ? 128 : 8;
  const maxCode = (1 << bits) - 1;
  const params = layout.exact ? BLOCK_PARAMS[info.dtype] : undefined;
  const half = f16Table();
  const subPerBlock = info.block ? info.block.blockElements / blockSize : 0;
  const subScales = new Float32Array(Math.max(subPerBlock, 1));
  const subZeros = new Float32Array(Math.max(subPerBlock, 1));

  for (let r0 = 0; r0 < n; r0 += ROWS_PER_CHUNK) {
    const r1 = Math.min(n, r0 + ROWS_PER_CHUNK);
    const values = source.rows(name, r0, r1);
    if (params && info.block) {
      const raw = source.rawRows(name, r0, r1);
      const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
      const ggmlBlocks = ((r1 - r0) * k) / info.block.blockElements;
      for (let gb = 0; gb < ggmlBlocks; gb++) {
        params(raw, view, gb * info.block.blockBytes, half, subScales, subZeros);
        for (let s = 0; s < subPerBlock; s++) {
          const flatBlock = gb * subPerBlock + s; // block index within this chunk, row-major
          const out = r0 * blocksPerRow + flatBlock;
          const scale = subScales[s];
          const zero = zeroPoints ? subZeros[s] : implicitZero;
          scales[out] = scale;
          if (zeroPoints) zeroPoints[out] = zero;
          const from = flatBlock * blockSize;
          for (let i = 0; i < blockSize; i++) {
            const code = scale === 0 ? (zeroPoints ? 0 : implicitZero) : Math.round(values[from + i] / scale + zero);
            putCode(packed, bits, out * blob, i, Math.max(0, Math.min(maxCode, code)));
          }
        }
      }
      continue;
    }
    for (let row = r0; row < r1; row++) {
      for (let b = 0; b < blocksPerRow; b++) {
        const start = (row - r0) * k + b * blockSize;
        const end = Math.min((row - r0) * k + k, start + blockSize);
        const out = row * blocksPerRow + b;
        let scale: number;
        let zero = implicitZero;
        if (bits === 8) {
          let absMax = 0;
          for (let i = start; i < end; i++) absMax = Math.max(absMax, Math.abs(values[i]));
          scale = Math.fround(absMax / 127);
        } else {
          let min = Infinity;
          let max = -Infinity;
          for (let i = start; i < end; i++) {
            min = Math.min(min, values[i]);
            max = Math.max(max, values[i]);
          }
          // A constant block keeps its value as code 0 with a unit scale.
          scale = max > min ? Math.fround((max - min) / 15) : 1;
          zero = Math.fround(-min / scale);
          zeroPoints![out] = zero;
        }
        scales[out] = scale;
        for (let i = 0; i < blockSize; i++) {
          const value = start + i < end ? values[start + i] : 0;
          let code: number;
          if (bits === 8) code = scale === 0 ? implicitZero : Math.round(value / scale) + implicitZero;
          else code = Math.round(value / scale + zero);
          putCode(packed, bits, out * blob, i, Math.max(0, Math.min(maxCode, code)));
        }
      }
    }
  }
  return { bits, blockSize, n, k, packed, scales, zeroPoints, exact: layout.exact };
}

/** The fp32 matrix a MatMulNBits encoding stands for (what the graph multiplies by). */
export function dequantizeNBits(m: NBitsMatrix): Float32Array {
  const blocksPerRow = Math.ceil(m.k / m.blockSize);
  const blob = (m.blockSize * m.bits) / 8;
  const out = new Float32Array(m.n * m.k);
  const implicitZero = m.bits === 8 ? 128 : 8;
  for (let row = 0; row < m.n; row++) {
    for (let i = 0; i < m.k; i++) {
      const block = row * blocksPerRow + Math.floor(i / m.blockSize);
      const within = i % m.blockSize;
      const byte = m.packed[block * blob + (m.bits === 8 ? within : within >> 1)];
      const code = m.bits === 8 ? byte : within & 1 ? byte >> 4 : byte & 15;
      const zero = m.zeroPoints ? m.zeroPoints[block] : implicitZero;
      out[row * m.k + i] = (code - zero) * m.scales[block];
    }
  }
  return out;
}

// ggml block formats that GGUF files store weights in, and their dequantization to fp32.
// Covers the legacy 32-element blocks (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) and the 256-element k-quants
// (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K) that llama.cpp's Q*_K_S/M/L files are built from.
import { f16Table } from './safetensors';

export type GgmlBlockDtype = 'Q4_0' | 'Q4_1' | 'Q5_0' | 'Q5_1' | 'Q8_0' | 'Q2_K' | 'Q3_K' | 'Q4_K' | 'Q5_K' | 'Q6_K';

export interface GgmlBlockFormat {
  dtype: GgmlBlockDtype;
  blockElements: number;
  blockBytes: number;
  /** Writes blockElements floats for the block starting at byte `base` to target[out..]. */
  dequantizeBlock: (bytes: Uint8Array, view: DataView, base: number, target: Float32Array, out: number, half: Float32Array) => void;
}

const SUPER_BLOCK = 256;

/** Q8_0: fp16 scale, 32 int8. */
function q8_0(bytes: Uint8Array, view: DataView, base: number, target: Float32Array, out: number, half: Float32Array): void {
  const scale = half[view.getUint16(base, true)];
  for (let j = 0; j < 32; j++) target[out + j] = view.getInt8(base + 2 + j) * scale;
}

/** Q4_0: fp16 scale, 16 bytes; low nibbles are elements 0..15, high nibbles 16..31, offset 8. */
function q4_0(bytes: Uint8Array, view: DataView, base: number, target: Float32Array, out: number, half: Float32Array): void {
  const scale = half[view.getUint16(base, true)];
  for (let j = 0; j < 16; j++) {
    const packed = bytes[base + 2 + j];
    target[out + j] = ((packed & 0x0f) - 8) * scale;
    target[out + j + 16] = ((packed >> 4) - 8) * scale;
  }
}

/** Q4_1: fp16 scale and fp16 minimum, then nibbles as in Q4_0 but unsigned: x = q*d + m. */
function q4_1(bytes: Uint8Array, view: DataView, base: number, target: Float32Array, out: number, half: Float32Array): void {
  const scale = half[view.getUint16(base, true)];
  const min = half[view.getUint16(base + 2, true)];
  for (let j = 0; j < 16; j++) {
    const packed = bytes[base + 4 + j];
    target[out + j] = (packed & 0x0f) * scale + min;
    target[out + j + 16] = (packed >> 4) * scale + min;
  }
}

/** Q5_0 / Q5_1: a 32-bit word holds bit 4 of every element (bit j for element j). */
function fiveBit(highBits: number, j: number, lowNibbleByte: number): number {
  const low = j < 16 ? lowNibbleByte & 0x0f : lowNibbleByte >> 4;
  return low | (((highBits >>> j) & 1) << 4);
}

function q5_0(bytes: Uint8Array, view: DataView, base: number, target: Float32Array, out: number, half: Float32Array): void {
  const scale = half[view.getUint16(base, true)];
  const high = view.getUint32(base + 2, true);
  for (let j = 0; j < 32; j++) target[out + j] = (fiveBit(high, j, bytes[base + 6 + (j & 15)]) - 16) * scale;
}

function q5_1(bytes: Uint8Array, view: DataView, base: number, target: Float32Array, out: number, half: Float32Array): void {
  const scale = half[view.getUint16(base, true)];
  const min = half[view.getUint16(base + 2, true)];
  const high = view.getUint32(base + 4, true);
  for (let j = 0; j < 32; j++) target[out + j] = fiveBit(high, j, bytes[base + 8 + (j & 15)]) * scale + min;
}

/**
 * Q2_K (84 bytes): 16 scale bytes (low nibble scale, high nibble min, one per 16 elements), 64 bytes
 * of 2-bit values, fp16 d, fp16 dmin. Each half of the super-block reads 32 bytes four times, two bits
 * deeper each time.
 */
function q2_k(bytes: Uint8Array, view: DataView, base: number, target: Float32Array, out: number, half: Float32Array): void {
  const d = half[view.getUint16(base + 80, true)];
  const dmin = half[view.getUint16(base + 82, true)];
  for (let e = 0; e < SUPER_BLOCK; e++) {
    const sc = bytes[base + (e >> 4)];
    const shift = 2 * ((e & 127) >> 5);
    const q = (bytes[base + 16 + (e >> 7) * 32 + (e & 31)] >> shift) & 3;
    target[out + e] = d * (sc & 0x0f) * q - dmin * (sc >> 4);
  }
}

/**
 * Q3_K (110 bytes): 32-byte high-bit mask, 64 bytes of 2-bit values, 12 bytes holding sixteen 6-bit
 * signed scales (offset 32), fp16 d. A cleared mask bit subtracts 4 from the 2-bit value.
 */
function q3_k(bytes: Uint8Array, view: DataView, base: number, target: Float32Array, out: number, half: Float32Array): void {
  const d = half[view.getUint16(base + 108, true)];
  const scales = new Int8Array(16);
  for (let i = 0; i < 16; i++) {
    const low = (bytes[base + 96 + (i & 7)] >> (4 * (i >> 3))) & 0x0f;
    const high = (bytes[base + 104 + (i & 3)] >> (2 * (i >> 2))) & 0x03;
    scales[i] = (low | (high << 4)) - 32;
  }
  for (let e = 0; e < SUPER_BLOCK; e++) {
    const p = e & 31;
    const low = (bytes[base + 32 + (e >> 7) * 32 + p] >> (2 * ((e & 127) >> 5))) & 3;
    const highSet = (bytes[base + p] >> (e >> 5)) & 1;
    target[out + e] = d * scales[e >> 4] * (low - (highSet ? 0 : 4));
  }
}

/**
 * The 12-byte scale block shared by Q4_K and Q5_K: eight 6-bit scales and eight 6-bit minimums, one
 * pair per 32 elements. Pairs 0..3 sit in the low six bits of bytes 0..3 / 4..7; pairs 4..7 take
 * their low four bits from bytes 8..11 and their top two bits from the spare bits of bytes 0..7.
 */
function kScaleMin(bytes: Uint8Array, at: number, scales: Uint8Array, mins: Uint8Array): void {
  for (let j = 0; j < 4; j++) {
    scales[j] = bytes[at + j] & 63;
    mins[j] = bytes[at + 4 + j] & 63;
    scales[j + 4] = (bytes[at + 8 + j] & 0x0f) | ((bytes[at + j] >> 2) & 0x30);
    mins[j + 4] = (bytes[at + 8 + j] >> 4) | ((bytes[at + 4 + j] >> 2) & 0x30);
  }
}

const kScales = new Uint8Array(8);
const kMins = new Uint8Array(8);

/** Q4_K (144 bytes): fp16 d, fp16 dmin, 12 scale bytes, 128 bytes; 32-byte chunks hold two sub-blocks (low, then high nibbles). */
function q4_k(bytes: Uint8Array, view: DataView, base: number, target: Float32Array, out: number, half: Float32Array): void {
  const d = half[view.getUint16(base, true)];
  const dmin = half[view.getUint16(base + 2, true)];
  kScaleMin(bytes, base + 4, kScales, kMins);
  for (let e = 0; e < SUPER_BLOCK; e++) {
    const sub = e >> 5;
    const q = (bytes[base + 16 + (sub >> 1) * 32 + (e & 31)] >> (4 * (sub & 1))) & 0x0f;
    target[out + e] = d * kScales[sub] * q - dmin * kMins[sub];
  }
}

/** Q5_K (176 bytes): as Q4_K plus a 32-byte mask whose bit `sub` of byte p is bit 4 of element 32*sub + p. */
function q5_k(bytes: Uint8Array, view: DataView, base: number, target: Float32Array, out: number, half: Float32Array): void {
  const d = half[view.getUint16(base, true)];
  const dmin = half[view.getUint16(base + 2, true)];
  kScaleMin(bytes, base + 4, kScales, kMins);
  for (let e = 0; e < SUPER_BLOCK; e++) {
    const sub = e >> 5;
    const p = e & 31;
    const low = (bytes[base + 48 + (sub >> 1) * 32 + p] >> (4 * (sub & 1))) & 0x0f;
    const high = (bytes[base + 16 + p] >> sub) & 1;
    target[out + e] = d * kScales[sub] * (low | (high << 4)) - dmin * kMins[sub];
  }
}

/**
 * Q6_K (210 bytes): 128 bytes of low nibbles, 64 bytes of 2-bit high parts, 16 int8 scales (one per 16
 * elements), fp16 d. Values are offset by 32.
 */
function q6_k(bytes: Uint8Array, view: DataView, base: number, target: Float32Array, out: number, half: Float32Array): void {
  const d = half[view.getUint16(base + 208, true)];
  for (let e = 0; e < SUPER_BLOCK; e++) {
    const h = e >> 7;
    const r = e & 127;
    const low = (bytes[base + h * 64 + (r & 63)] >> (4 * (r >> 6))) & 0x0f;
    const high = (bytes[base + 128 + h * 32 + (e & 31)] >> (2 * (r >> 5))) & 3;
    target[out + e] = d * view.getInt8(base + 192 + (e >> 4)) * ((low | (high << 4)) - 32);
  }
}

/** Block formats by ggml type id. */
export const GGML_BLOCK_FORMATS: Record<number, GgmlBlockFormat> = {
  2: { dtype: 'Q4_0', blockElements: 32, blockBytes: 18, dequantizeBlock: q4_0 },
  3: { dtype: 'Q4_1', blockElements: 32, blockBytes: 20, dequantizeBlock: q4_1 },
  6: { dtype: 'Q5_0', blockElements: 32, blockBytes: 22, dequantizeBlock: q5_0 },
  7: { dtype: 'Q5_1', blockElements: 32, blockBytes: 24, dequantizeBlock: q5_1 },
  8: { dtype: 'Q8_0', blockElements: 32, blockBytes: 34, dequantizeBlock: q8_0 },
  10: { dtype: 'Q2_K', blockElements: SUPER_BLOCK, blockBytes: 84, dequantizeBlock: q2_k },
  11: { dtype: 'Q3_K', blockElements: SUPER_BLOCK, blockBytes: 110, dequantizeBlock: q3_k },
  12: { dtype: 'Q4_K', blockElements: SUPER_BLOCK, blockBytes: 144, dequantizeBlock: q4_k },
  13: { dtype: 'Q5_K', blockElements: SUPER_BLOCK, blockBytes: 176, dequantizeBlock: q5_k },
  14: { dtype: 'Q6_K', blockElements: SUPER_BLOCK, blockBytes: 210, dequantizeBlock: q6_k },
};

/** Dequantizes whole blocks: bytes.length / blockBytes blocks into target (blockElements floats each). */
export function dequantizeBlocks(format: GgmlBlockFormat, bytes: Uint8Array, target: Float32Array): void {
  const half = f16Table();
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const blocks = target.length / format.blockElements;
  for (let b = 0; b < blocks; b++) format.dequantizeBlock(bytes, view, b * format.blockBytes, target, b * format.blockElements, half);
}

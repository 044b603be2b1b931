// Reader for GGUF v2/v3 files of llama-family models: metadata to ModelConfig, tensors to fp32 under
// their Hugging Face names and layout.
import { closeSync, existsSync, fstatSync, openSync, readSync } from 'node:fs';
import { KvlensError } from '../errors';
import { checkConfigValues, type ConfigKeyNames, type ModelConfig } from './config';
import { decodeHalfInto, readExactly } from './safetensors';
import { GGML_BLOCK_FORMATS, dequantizeBlocks, type GgmlBlockFormat } from './ggmlQuants';
import type { StorageDtype, WeightMap } from './types';

const GGUF_MAGIC = 0x46554747; // "GGUF" read as little-endian u32
const DEFAULT_ALIGNMENT = 32;

/**
 * Limits on what the header may make the reader hold, far above real files (a 256k-token vocabulary with its
 * merges, scores and an embedded tokenizer.json is tens of MiB and under a million array elements; a llama or
 * qwen2 file has a few thousand tensors). Counts are also bounded by the bytes the file has left to hold them,
 * but a sparse file can be large on disk and cheap to make, so these bound memory as well.
 */
export const GGUF_LIMITS = {
  headerBytes: 256 * 2 ** 20,
  metadataEntries: 1 << 16,
  metadataArrayElements: 1 << 24,
  tensors: 1 << 16,
};

/** The fewest bytes one metadata value of a type takes in the file (a string: its u64 length). */
function minValueBytes(type: number): number {
  switch (type) {
    case ValueType.UINT8:
    case ValueType.INT8:
    case ValueType.BOOL:
      return 1;
    case ValueType.UINT16:
    case ValueType.INT16:
      return 2;
    case ValueType.UINT32:
    case ValueType.INT32:
    case ValueType.FLOAT32:
      return 4;
    case ValueType.STRING:
    case ValueType.UINT64:
    case ValueType.INT64:
    case ValueType.FLOAT64:
      return 8;
    case ValueType.ARRAY:
      return 12; // element type + count
    default:
      return 1;
  }
}

/** A metadata entry's fewest bytes: key length, type, one byte of value. */
const MIN_METADATA_ENTRY_BYTES = 8 + 4 + 1;
/** A tensor-table entry's fewest bytes: name length, dimension count, one dimension, type, offset. */
const MIN_TENSOR_INFO_BYTES = 8 + 4 + 8 + 4 + 8;

enum ValueType {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
}

export type GgufValue = number | bigint | boolean | string | GgufValue[];

/** ggml tensor types by id, for naming the unsupported ones in errors. */
const GGML_TYPE_NAMES: Record<number, string> = {
  0: 'F32', 1: 'F16', 2: 'Q4_0', 3: 'Q4_1', 6: 'Q5_0', 7: 'Q5_1', 8: 'Q8_0', 9: 'Q8_1', 10: 'Q2_K', 11: 'Q3_K',
  12: 'Q4_K', 13: 'Q5_K', 14: 'Q6_K', 15: 'Q8_K', 16: 'IQ2_XXS', 17: 'IQ2_XS', 18: 'IQ3_XXS', 19: 'IQ1_S',
  20: 'IQ4_NL', 21: 'IQ3_S', 22: 'IQ2_S', 23: 'IQ4_XS', 24: 'I8', 25: 'I16', 26: 'I32', 27: 'I64', 28: 'F64',
  29: 'IQ1_M', 30: 'BF16',
};

interface GgmlFormat {
  dtype: StorageDtype;
  blockElements: number;
  blockBytes: number;
  block?: GgmlBlockFormat;
}

export const GGML_FORMATS: Record<number, GgmlFormat> = {
  0: { dtype: 'F32', blockElements: 1, blockBytes: 4 },
  1: { dtype: 'F16', blockElements: 1, blockBytes: 2 },
  30: { dtype: 'BF16', blockElements: 1, blockBytes: 2 },
  ...Object.fromEntries(
    Object.entries(GGML_BLOCK_FORMATS).map(([id, block]) => [id, { dtype: block.dtype, blockElements: block.blockElements, blockBytes: block.blockBytes, block }]),
  ),
};

const SUPPORTED_TYPES = ['F32', 'F16', 'BF16', ...Object.values(GGML_BLOCK_FORMATS).map((f) => f.dtype)].join(', ');

export interface GgufTensorInfo {
  ggufName: string;
  /** ggml order: dims[0] is the fastest-varying (columns). */
  dims: number[];
  typeId: number;
  format: GgmlFormat;
  /** Absolute byte offset in the file. */
  position: number;
  bytes: number;
}

export interface GgufFile {
  file: string;
  version: number;
  fileSize: number;
  metadata: Map<string, GgufValue>;
  tensors: Map<string, GgufTensorInfo>;
  dataStart: number;
}

/** Buffered sequential reader over a file descriptor, so huge files are never read whole. */
class Cursor {
  private buffer = Buffer.alloc(0);
  private bufferStart = 0;
  position = 0;

  constructor(
    private readonly fd: number,
    private readonly fileSize: number,
    private readonly file: string,
  ) {}

  /** Bytes the header can still take: up to the end of the file and at most GGUF_LIMITS.headerBytes. */
  remaining(): number {
    return Math.min(this.fileSize, GGUF_LIMITS.headerBytes) - this.position;
  }

  private ensure(n: number, what: string): void {
    const offset = this.position - this.bufferStart;
    if (offset + n <= this.buffer.length) return;
    if (this.position + n > this.fileSize) {
      throw new KvlensError(`file ends at byte ${this.fileSize} while reading ${what} at byte ${this.position} (truncated or corrupt GGUF)`, this.file);
    }
    if (this.position + n > GGUF_LIMITS.headerBytes) {
      throw new KvlensError(`${what} at byte ${this.position} takes the header (metadata and tensor table) past ${GGUF_LIMITS.headerBytes / 2 ** 20} MiB: corrupt GGUF`, this.file);
    }
    const size = Math.min(Math.max(n, 1 << 20), this.fileSize - this.position);
    this.buffer = Buffer.alloc(size);
    let done = 0;
    while (done < size) {
      const got = readSync(this.fd, this.buffer, done, size - done, this.position + done);
      if (got === 0) throw new KvlensError(`file ended while reading ${what}`, this.file);
      done += got;
    }
    this.bufferStart = this.position;
  }

  /** Call before touching `this.buffer`: it may replace the buffer. */
  private take(n: number, what: string): number {
    this.ensure(n, what);
    const offset = this.position - this.bufferStart;
    this.position += n;
    return offset;
  }

  u8(what: string): number {
    const at = this.take(1, what);
    return this.buffer.readUInt8(at);
  }
  i8(what: string): number {
    const at = this.take(1, what);
    return this.buffer.readInt8(at);
  }
  u16(what: string): number {
    const at = this.take(2, what);
    return this.buffer.readUInt16LE(at);
  }
  i16(what: string): number {
    const at = this.take(2, what);
    return this.buffer.readInt16LE(at);
  }
  u32(what: string): number {
    const at = this.take(4, what);
    return this.buffer.readUInt32LE(at);
  }
  i32(what: string): number {
    const at = this.take(4, what);
    return this.buffer.readInt32LE(at);
  }
  f32(what: string): number {
    const at = this.take(4, what);
    return this.buffer.readFloatLE(at);
  }
  f64(what: string): number {
    const at = this.take(8, what);
    return this.buffer.readDoubleLE(at);
  }
  u64(what: string): bigint {
    const at = this.take(8, what);
    return this.buffer.readBigUInt64LE(at);
  }
  i64(what: string): bigint {
    const at = this.take(8, what);
    return this.buffer.readBigInt64LE(at);
  }
  /** A u64 that must fit a JS number (counts, sizes, offsets). */
  size(what: string): number {
    const value = this.u64(what);
    if (value > BigInt(this.fileSize)) throw new KvlensError(`${what} is ${value}, larger than the file (${this.fileSize} bytes): corrupt GGUF`, this.file);
    return Number(value);
  }
  string(what: string): string {
    const length = this.size(`${what} length`);
    const offset = this.take(length, what);
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(this.buffer.subarray(offset, offset + length));
    } catch {
      throw new KvlensError(`${what} is not valid UTF-8`, this.file);
    }
  }
}

/** Array elements read so far from one file's metadata, against GGUF_LIMITS.metadataArrayElements. */
interface ElementBudget {
  used: number;
}

function readValue(cursor: Cursor, type: number, what: string, file: string, budget: ElementBudget, depth = 0): GgufValue {
  switch (type) {
    case ValueType.UINT8: return cursor.u8(what);
    case ValueType.INT8: return cursor.i8(what);
    case ValueType.UINT16: return cursor.u16(what);
    case ValueType.INT16: return cursor.i16(what);
    case ValueType.UINT32: return cursor.u32(what);
    case ValueType.INT32: return cursor.i32(what);
    case ValueType.FLOAT32: return cursor.f32(what);
    case ValueType.FLOAT64: return cursor.f64(what);
    case ValueType.BOOL: return cursor.u8(what) !== 0;
    case ValueType.STRING: return cursor.string(what);
    case ValueType.UINT64: {
      const v = cursor.u64(what);
      return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
    }
    case ValueType.INT64: {
      const v = cursor.i64(what);
      return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(v) : v;
    }
    case ValueType.ARRAY: {
      if (depth > 4) throw new KvlensError(`${what} nests arrays too deeply`, file);
      const elementType = cursor.u32(`${what} element type`);
      const count = cursor.size(`${what} element count`);
      // Checked before anything is allocated: the elements must fit in what is left of the header.
      const needed = count * minValueBytes(elementType);
      if (needed > cursor.remaining()) {
        throw new KvlensError(`${what} claims ${count} elements (at least ${needed} bytes), more than the ${cursor.remaining()} bytes left for the header: corrupt GGUF`, file);
      }
      budget.used += count;
      if (budget.used > GGUF_LIMITS.metadataArrayElements) {
        throw new KvlensError(`${what} takes the metadata arrays past ${GGUF_LIMITS.metadataArrayElements} elements in all: corrupt GGUF`, file);
      }
      const values: GgufValue[] = [];
      for (let i = 0; i < count; i++) values.push(readValue(cursor, elementType, what, file, budget, depth + 1));
      return values;
    }
    default:
      throw new KvlensError(`${what} has unknown value type ${type} (corrupt GGUF)`, file);
  }
}

function elementCount(dims: number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}

/** Parses header, metadata and tensor table; reads no tensor data. */
export function openGguf(file: string): GgufFile {
  if (!existsSync(file)) throw new KvlensError('file not found', file);
  const fd = openSync(file, 'r');
  try {
    const fileSize = fstatSync(fd).size;
    const cursor = new Cursor(fd, fileSize, file);
    if (fileSize < 24) throw new KvlensError(`file is ${fileSize} bytes, too short for a GGUF header`, file);
    const magic = cursor.u32('magic');
    if (magic !== GGUF_MAGIC) throw new KvlensError('not a GGUF file (magic bytes are not "GGUF")', file);
    const version = cursor.u32('version');
    if (version !== 2 && version !== 3) throw new KvlensError(`GGUF version ${version} is not supported (supported: 2, 3)`, file);
    const tensorCount = cursor.size('tensor count');
    const kvCount = cursor.size('metadata count');
    if (tensorCount > GGUF_LIMITS.tensors) throw new KvlensError(`tensor count is ${tensorCount}, more than ${GGUF_LIMITS.tensors}: corrupt GGUF`, file);
    if (kvCount > GGUF_LIMITS.metadataEntries) throw new KvlensError(`metadata count is ${kvCount}, more than ${GGUF_LIMITS.metadataEntries}: corrupt GGUF`, file);
    const tableBytes = (count: number) => count * MIN_TENSOR_INFO_BYTES;
    if (kvCount * MIN_METADATA_ENTRY_BYTES + tableBytes(tensorCount) > cursor.remaining()) {
      throw new KvlensError(
        `metadata count ${kvCount} and tensor count ${tensorCount} need at least ${kvCount * MIN_METADATA_ENTRY_BYTES + tableBytes(tensorCount)} bytes, more than the ${cursor.remaining()} bytes left for the header: corrupt GGUF`,
        file,
      );
    }
    const metadata = new Map<string, GgufValue>();
    const budget: ElementBudget = { used: 0 };
    for (let i = 0; i < kvCount; i++) {
      const key = cursor.string(`metadata key #${i}`);
      const type = cursor.u32(`type of metadata "${key}"`);
      metadata.set(key, readValue(cursor, type, `metadata "${key}"`, file, budget));
    }
    if (tableBytes(tensorCount) > cursor.remaining()) {
      throw new KvlensError(`tensor count ${tensorCount} needs at least ${tableBytes(tensorCount)} bytes of tensor table, more than the ${cursor.remaining()} bytes left for the header: corrupt GGUF`, file);
    }
    const alignmentValue = metadata.get('general.alignment') ?? DEFAULT_ALIGNMENT;
    if (typeof alignmentValue !== 'number' || alignmentValue <= 0 || alignmentValue % 8 !== 0) {
      throw new KvlensError(`general.alignment must be a positive multiple of 8, found ${String(alignmentValue)}`, file);
    }
    const pending: Array<{ ggufName: string; dims: number[]; typeId: number; offset: number }> = [];
    for (let i = 0; i < tensorCount; i++) {
      const ggufName = cursor.string(`name of tensor #${i}`);
      const nDims = cursor.u32(`dimension count of tensor "${ggufName}"`);
      if (nDims < 1 || nDims > 4) throw new KvlensError(`tensor "${ggufName}" has ${nDims} dimensions (expected 1..4)`, file);
      const dims: number[] = [];
      for (let d = 0; d < nDims; d++) dims.push(cursor.size(`dimension ${d} of tensor "${ggufName}"`));
      const typeId = cursor.u32(`type of tensor "${ggufName}"`);
      const offset = cursor.size(`offset of tensor "${ggufName}"`);
      pending.push({ ggufName, dims, typeId, offset });
    }
    const dataStart = Math.ceil(cursor.position / alignmentValue) * alignmentValue;
    const tensors = new Map<string, GgufTensorInfo>();
    for (const { ggufName, dims, typeId, offset } of pending) {
      const format = GGML_FORMATS[typeId];
      if (!format) {
        const name = GGML_TYPE_NAMES[typeId] ?? `unknown type id ${typeId}`;
        throw new KvlensError(`tensor "${ggufName}" uses ggml type ${name}, not supported (supported: ${SUPPORTED_TYPES})`, file);
      }
      if (dims[0] % format.blockElements !== 0) {
        throw new KvlensError(`tensor "${ggufName}" row length ${dims[0]} is not a multiple of the ${format.dtype} block size ${format.blockElements}`, file);
      }
      if (offset % alignmentValue !== 0) throw new KvlensError(`tensor "${ggufName}" offset ${offset} is not aligned to ${alignmentValue}`, file);
      const bytes = (elementCount(dims) / format.blockElements) * format.blockBytes;
      const position = dataStart + offset;
      if (position + bytes > fileSize) {
        throw new KvlensError(`tensor "${ggufName}" data [${position}, ${position + bytes}) runs past the end of the file (${fileSize} bytes): truncated file`, file);
      }
      if (tensors.has(ggufName)) throw new KvlensError(`tensor "${ggufName}" appears twice`, file);
      tensors.set(ggufName, { ggufName, dims, typeId, format, position, bytes });
    }
    const ordered = [...tensors.values()].sort((a, b) => a.position - b.position);
    for (let i = 1; i < ordered.length; i++) {
      if (ordered[i].position < ordered[i - 1].position + ordered[i - 1].bytes) {
        throw new KvlensError(`tensor "${ordered[i].ggufName}" overlaps tensor "${ordered[i - 1].ggufName}"`, file);
      }
    }
    return { file, version, fileSize, metadata, tensors, dataStart };
  } finally {
    closeSync(fd);
  }
}

const SUPPORTED_GGUF_ARCHITECTURES = ['llama', 'qwen2', 'qwen3'];
/** The transformers class each GGUF architecture is (llama.cpp writes Mistral checkpoints as llama). */
const HF_ARCHITECTURE_OF: Record<string, string> = { llama: 'LlamaForCausalLM', qwen2: 'Qwen2ForCausalLM', qwen3: 'Qwen3ForCausalLM' };

function metaNumber(gguf: GgufFile, key: string, fallback?: number): number {
  const value = gguf.metadata.get(key);
  if (value === undefined) {
    if (fallback !== undefined) return fallback;
    throw new KvlensError(`missing metadata "${key}"`, gguf.file);
  }
  if (typeof value !== 'number' || !Number.isFinite(value)) throw new KvlensError(`metadata "${key}" must be a number, found ${String(value)}`, gguf.file);
  return value;
}

function metaInt(gguf: GgufFile, key: string, fallback?: number): number {
  const value = metaNumber(gguf, key, fallback);
  if (!Number.isInteger(value) || value < 1) throw new KvlensError(`metadata "${key}" must be a positive integer, found ${value}`, gguf.file);
  return value;
}

/** GGUF tensor names to Hugging Face names; unknown names map to null. */
export function hfNameFor(ggufName: string): string | null {
  const top: Record<string, string> = {
    'token_embd.weight': 'model.embed_tokens.weight',
    'output_norm.weight': 'model.norm.weight',
    'output.weight': 'lm_head.weight',
  };
  if (top[ggufName]) return top[ggufName];
  const match = /^blk\.(\d+)\.([a-z_]+)\.(weight|bias)$/.exec(ggufName);
  if (!match) return null;
  const [, layer, part, kind] = match;
  const perLayer: Record<string, string> = {
    attn_norm: 'input_layernorm',
    attn_q: 'self_attn.q_proj',
    attn_k: 'self_attn.k_proj',
    attn_v: 'self_attn.v_proj',
    attn_output: 'self_attn.o_proj',
    attn_q_norm: 'self_attn.q_norm',
    attn_k_norm: 'self_attn.k_norm',
    ffn_norm: 'post_attention_layernorm',
    ffn_gate: 'mlp.gate_proj',
    ffn_up: 'mlp.up_proj',
    ffn_down: 'mlp.down_proj',
  };
  const hf = perLayer[part];
  return hf ? `model.layers.${layer}.${hf}.${kind}` : null;
}

/** The llama3 per-frequency divisors, as llama.cpp's converter stores them in `rope_freqs.weight`. */
export function llama3RopeFactors(theta: number, headDim: number, factor: number, low: number, high: number, original: number): number[] {
  const lowWavelen = original / low;
  const highWavelen = original / high;
  const factors: number[] = [];
  for (let i = 0; i < headDim; i += 2) {
    const wavelen = (2 * Math.PI) / theta ** (-i / headDim);
    if (wavelen < highWavelen) factors.push(1);
    else if (wavelen > lowWavelen) factors.push(factor);
    else {
      const smooth = (original / wavelen - low) / (high - low);
      factors.push(1 / ((1 - smooth) / factor + smooth));
    }
  }
  return factors;
}

// llama.cpp bakes Llama 3.x rope scaling into a tensor of divisors instead of metadata, so the
// parameters are recovered by finding the llama3 settings that reproduce those divisors.
function inferLlama3Scaling(gguf: GgufFile, prefix: string, theta: number, headDim: number, divisors: Float32Array): ModelConfig['ropeScaling'] {
  if (divisors.every((d) => d === 1)) return null;
  const factor = gguf.metadata.has(`${prefix}.rope.scaling.factor`) ? metaNumber(gguf, `${prefix}.rope.scaling.factor`) : Math.max(...divisors);
  const originals = new Set<number>();
  if (gguf.metadata.has(`${prefix}.rope.scaling.original_context_length`)) originals.add(metaNumber(gguf, `${prefix}.rope.scaling.original_context_length`));
  for (let p = 4; p <= 21; p++) originals.add(2 ** p);
  // Scaling original, low and high together yields the same frequencies, so the search tries Meta's
  // published low/high (1, 4) first and only then other ratios.
  const lowHigh: Array<[number, number]> = [[1, 4], [1, 2], [1, 8], [1, 3], [1, 16]];
  for (const [low, high] of lowHigh) {
    for (const original of originals) {
      const expected = llama3RopeFactors(theta, headDim, factor, low, high, original);
      if (expected.every((e, i) => Math.abs(e - divisors[i]) <= 1e-4 * Math.max(1, Math.abs(e)))) {
        return { type: 'llama3', factor, lowFreqFactor: low, highFreqFactor: high, originalMaxPositionEmbeddings: original };
      }
    }
  }
  throw new KvlensError('rope_freqs.weight does not match any llama3 rope scaling (factor/low/high/original context): unsupported rope scaling', gguf.file);
}

/** Builds the engine config from GGUF metadata (reads only the tiny rope_freqs tensor, if present). */
export function ggufConfig(gguf: GgufFile): ModelConfig {
  const arch = gguf.metadata.get('general.architecture');
  if (typeof arch !== 'string') throw new KvlensError('missing metadata "general.architecture"', gguf.file);
  if (!SUPPORTED_GGUF_ARCHITECTURES.includes(arch)) {
    throw new KvlensError(`unsupported GGUF architecture ${JSON.stringify(arch)} (supported: ${SUPPORTED_GGUF_ARCHITECTURES.join(', ')})`, gguf.file);
  }
  const hiddenSize = metaInt(gguf, `${arch}.embedding_length`);
  const numHeads = metaInt(gguf, `${arch}.attention.head_count`);
  const numKvHeads = metaInt(gguf, `${arch}.attention.head_count_kv`, numHeads);
  if (numHeads % numKvHeads !== 0) {
    throw new KvlensError(`${arch}.attention.head_count (${numHeads}) must be a multiple of head_count_kv (${numKvHeads})`, gguf.file);
  }
  const headDim = metaInt(gguf, `${arch}.attention.key_length`, hiddenSize / numHeads);
  if (!Number.isInteger(headDim) || headDim % 2 !== 0) throw new KvlensError(`head dimension ${headDim} must be an even integer`, gguf.file);
  const ropeDims = metaInt(gguf, `${arch}.rope.dimension_count`, headDim);
  if (ropeDims !== headDim) throw new KvlensError(`partial rotary embeddings (rope.dimension_count ${ropeDims} < head dim ${headDim}) are not supported`, gguf.file);
  const scalingType = gguf.metadata.get(`${arch}.rope.scaling.type`);
  if (scalingType !== undefined && scalingType !== 'none') {
    throw new KvlensError(`rope scaling type ${JSON.stringify(scalingType)} is not supported (supported: none, llama3 via rope_freqs)`, gguf.file);
  }
  const embedding = gguf.tensors.get('token_embd.weight');
  if (!embedding) throw new KvlensError('missing tensor "token_embd.weight"', gguf.file);
  const vocabSize = metaInt(gguf, `${arch}.vocab_size`, embedding.dims[1]);
  const ropeTheta = metaNumber(gguf, `${arch}.rope.freq_base`, 10000);
  const ropeFreqs = gguf.tensors.get('rope_freqs.weight');
  const bos = gguf.metadata.get('tokenizer.ggml.bos_token_id');
  const eos = gguf.metadata.get('tokenizer.ggml.eos_token_id');
  const fileType = gguf.metadata.get('general.file_type');
  // Checked before rope_freqs is read, which is sized by the head dimension and decoded with the RoPE base.
  const config = checkConfigValues({
    architecture: arch as ModelConfig['architecture'],
    hfArchitecture: HF_ARCHITECTURE_OF[arch],
    hiddenSize,
    intermediateSize: metaInt(gguf, `${arch}.feed_forward_length`),
    numLayers: metaInt(gguf, `${arch}.block_count`),
    numHeads,
    numKvHeads,
    headDim,
    vocabSize,
    rmsNormEps: metaNumber(gguf, `${arch}.attention.layer_norm_rms_epsilon`, 1e-5),
    ropeTheta,
    ropeScaling: null,
    tieWordEmbeddings: !gguf.tensors.has('output.weight'),
    attentionBias: arch === 'qwen2' || gguf.tensors.has('blk.0.attn_q.bias'),
    ...(arch === 'qwen3' ? { qkNorm: true } : {}),
    maxPositionEmbeddings: metaInt(gguf, `${arch}.context_length`, 4096),
    bosTokenId: typeof bos === 'number' ? bos : null,
    eosTokenIds: typeof eos === 'number' ? [eos] : [],
    torchDtype: typeof fileType === 'number' ? `gguf-file-type-${fileType}` : null,
  }, gguf.file, ggufConfigKeys(arch));
  if (ropeFreqs) {
    // Checked by its table entry, before anything is read or decoded: one divisor per pair of head dimensions.
    const entries = elementCount(ropeFreqs.dims);
    if (ropeFreqs.dims.length !== 1 || entries !== headDim / 2) {
      throw new KvlensError(`rope_freqs.weight has shape [${ropeFreqs.dims.join(', ')}] (${entries} entries), expected [${headDim / 2}] (head dim ${headDim})`, gguf.file);
    }
    const divisors = readGgufTensorRaw(gguf, ropeFreqs);
    config.ropeScaling = checkConfigValues({ ...config, ropeScaling: inferLlama3Scaling(gguf, arch, ropeTheta, headDim, divisors) }, gguf.file, ggufConfigKeys(arch)).ropeScaling;
  }
  return config;
}

/** The GGUF metadata keys behind each checked config value. */
export function ggufConfigKeys(arch: string): ConfigKeyNames {
  return {
    numLayers: `${arch}.block_count`,
    hiddenSize: `${arch}.embedding_length`,
    intermediateSize: `${arch}.feed_forward_length`,
    numHeads: `${arch}.attention.head_count`,
    numKvHeads: `${arch}.attention.head_count_kv`,
    headDim: `${arch}.attention.key_length`,
    vocabSize: `${arch}.vocab_size`,
    maxPositionEmbeddings: `${arch}.context_length`,
    rmsNormEps: `${arch}.attention.layer_norm_rms_epsilon`,
    ropeTheta: `${arch}.rope.freq_base`,
  };
}

export interface GgufHfTensor {
  info: GgufTensorInfo;
  /** Hugging Face shape (ggml dims reversed). */
  shape: number[];
}

/** GGUF tensors under Hugging Face names; `unmapped` lists GGUF names with no HF counterpart. */
export function ggufHfTensors(gguf: GgufFile): { tensors: Map<string, GgufHfTensor>; unmapped: string[] } {
  const tensors = new Map<string, GgufHfTensor>();
  const unmapped: string[] = [];
  for (const info of gguf.tensors.values()) {
    if (info.ggufName === 'rope_freqs.weight') continue;
    const name = hfNameFor(info.ggufName);
    if (!name) {
      unmapped.push(info.ggufName);
      continue;
    }
    tensors.set(name, { info, shape: [...info.dims].reverse() });
  }
  return { tensors, unmapped };
}

function readGgufTensorRaw(gguf: GgufFile, info: GgufTensorInfo): Float32Array {
  const fd = openSync(gguf.file, 'r');
  try {
    return readTensorWithFd(fd, gguf, info);
  } finally {
    closeSync(fd);
  }
}

function readTensorWithFd(fd: number, gguf: GgufFile, info: GgufTensorInfo): Float32Array {
  const data = new Float32Array(elementCount(info.dims));
  const target = info.format.dtype === 'F32' ? new Uint8Array(data.buffer) : new Uint8Array(info.bytes);
  readExactly(fd, target, info.position, gguf.file, `tensor "${info.ggufName}"`);
  if (info.format.dtype === 'F16' || info.format.dtype === 'BF16') decodeHalfInto(info.format.dtype, target, data);
  else if (info.format.block) dequantizeBlocks(info.format.block, target, data);
  return data;
}

/**
 * Undoes llama.cpp's q/k row permutation. Its converter reorders each head's rows from HF's
 * rotate-half layout (first half of the head, then second half) to interleaved pairs:
 * GGUF row 2j+i of a head holds HF row i*(headDim/2)+j.
 */
export function unpermuteRows(data: Float32Array, rows: number, cols: number, heads: number): Float32Array {
  const headRows = rows / heads;
  const half = headRows / 2;
  const out = new Float32Array(data.length);
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < 2; i++) {
      for (let j = 0; j < half; j++) {
        const from = (h * headRows + 2 * j + i) * cols;
        const to = (h * headRows + i * half + j) * cols;
        out.set(data.subarray(from, from + cols), to);
      }
    }
  }
  return out;
}

/** Reads the named HF tensors in fp32, HF layout (q/k un-permuted for llama). */
export function readGgufTensors(gguf: GgufFile, config: ModelConfig, names: Iterable<string>): WeightMap {
  const { tensors } = ggufHfTensors(gguf);
  const weights: WeightMap = new Map();
  const fd = openSync(gguf.file, 'r');
  try {
    for (const name of names) {
      const entry = tensors.get(name);
      if (!entry) throw new KvlensError(`missing tensor for "${name}"`, gguf.file);
      let data = readTensorWithFd(fd, gguf, entry.info);
      if (config.architecture === 'llama') {
        const qk = /self_attn\.(q|k)_proj\.(weight|bias)$/.exec(name);
        if (qk) {
          const heads = qk[1] === 'q' ? config.numHeads : config.numKvHeads;
          const rows = entry.shape[0];
          data = unpermuteRows(data, rows, data.length / rows, heads);
        }
      }
      weights.set(name, { shape: entry.shape, data, sourceDtype: entry.info.format.dtype });
    }
  } finally {
    closeSync(fd);
  }
  return weights;
}

// Reader for Hugging Face .safetensors checkpoints (single file or sharded with an index).
// Layout: u64 little-endian header length N, N bytes of JSON header, then the tensor data buffer.
import { closeSync, existsSync, fstatSync, openSync, readFileSync, readSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { KvlensError } from '../errors';
import { halfTable } from '../kv/quant/half';
import type { StorageDtype, Tensor, WeightMap } from './types';

export const SAFETENSORS_DTYPE_BYTES: Record<string, number> = { F32: 4, F16: 2, BF16: 2 };
// Every dtype the format defines, so an unsupported-but-valid dtype is told apart from garbage.
const KNOWN_OTHER_DTYPES = new Set(['F64', 'I64', 'I32', 'I16', 'I8', 'U64', 'U32', 'U16', 'U8', 'BOOL', 'F8_E4M3', 'F8_E5M2', 'F8_E8M0', 'F4', 'F6_E2M3', 'F6_E3M2', 'C64']);
// The reference implementation refuses headers above 100 MB; a larger length means a corrupt or foreign file.
const MAX_HEADER_BYTES = 100_000_000;

export interface SafetensorsEntry {
  name: string;
  dtype: StorageDtype;
  shape: number[];
  /** Byte range inside the data buffer (relative to its start). */
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  file: string;
  fileSize: number;
  /** Absolute offset of the data buffer in the file. */
  dataStart: number;
  tensors: Map<string, SafetensorsEntry>;
  metadata: Record<string, string>;
}

function elementCount(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

const MAX_READ_BYTES = 1 << 30;

export function readExactly(fd: number, target: Uint8Array, position: number, file: string, what: string): void {
  let done = 0;
  while (done < target.length) {
    // One read(2) moves at most ~2 GiB; big embeddings exceed that, so read in bounded pieces.
    const got = readSync(fd, target, done, Math.min(target.length - done, MAX_READ_BYTES), position + done);
    if (got === 0) throw new KvlensError(`file ended while reading ${what} (truncated file)`, file);
    done += got;
  }
}

function parseHeaderJson(json: unknown, file: string, dataBytes: number, dataStart: number, fileSize: number): SafetensorsHeader {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new KvlensError('safetensors header must be a JSON object', file);
  }
  const tensors = new Map<string, SafetensorsEntry>();
  let metadata: Record<string, string> = {};
  for (const [name, rawEntry] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof rawEntry === 'object' && rawEntry !== null && !Array.isArray(rawEntry)) metadata = rawEntry as Record<string, string>;
      continue;
    }
    if (typeof rawEntry !== 'object' || rawEntry === null) throw new KvlensError(`tensor "${name}" has no header entry object`, file);
    const entry = rawEntry as Record<string, unknown>;
    const dtype = entry.dtype;
    if (typeof dtype !== 'string') throw new KvlensError(`tensor "${name}" has no dtype`, file);
    if (!(dtype in SAFETENSORS_DTYPE_BYTES)) {
      const kind = KNOWN_OTHER_DTYPES.has(dtype) ? 'unsupported' : 'unknown';
      throw new KvlensError(`tensor "${name}" has ${kind} dtype ${JSON.stringify(dtype)} (supported: F32, F16, BF16)`, file);
    }
    const shape = entry.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new KvlensError(`tensor "${name}" has an invalid shape ${JSON.stringify(shape)}`, file);
    }
    const offsets = entry.data_offsets;
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0) || offsets[0] > offsets[1]) {
      throw new KvlensError(`tensor "${name}" has invalid data_offsets ${JSON.stringify(offsets)}`, file);
    }
    const [begin, end] = offsets as [number, number];
    const expectedBytes = elementCount(shape as number[]) * SAFETENSORS_DTYPE_BYTES[dtype];
    if (end - begin !== expectedBytes) {
      throw new KvlensError(
        `tensor "${name}" data_offsets [${begin}, ${end}] span ${end - begin} bytes but shape ${JSON.stringify(shape)} x ${dtype} needs ${expectedBytes}`,
        file,
      );
    }
    if (end > dataBytes) {
      throw new KvlensError(
        `tensor "${name}" data_offsets [${begin}, ${end}] run past the end of the data (${dataBytes} bytes after the header): offsets out of range or file truncated`,
        file,
      );
    }
    tensors.set(name, { name, dtype: dtype as StorageDtype, shape: shape as number[], begin, end });
  }
  const ordered = [...tensors.values()].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let covered = 0;
  for (let i = 0; i < ordered.length; i++) {
    const entry = ordered[i];
    if (entry.begin < covered) {
      throw new KvlensError(`tensor "${entry.name}" data_offsets [${entry.begin}, ${entry.end}] overlap tensor "${ordered[i - 1].name}"`, file);
    }
    if (entry.begin > covered) {
      throw new KvlensError(`data buffer has a hole at bytes [${covered}, ${entry.begin}) before tensor "${entry.name}"`, file);
    }
    covered = entry.end;
  }
  if (covered !== dataBytes) {
    throw new KvlensError(`data buffer holds ${dataBytes} bytes but the tensors cover ${covered} (trailing garbage or wrong offsets)`, file);
  }
  return { file, fileSize, dataStart, tensors, metadata };
}

function readHeaderFromFd(fd: number, file: string): SafetensorsHeader {
  const fileSize = fstatSync(fd).size;
  if (fileSize < 8) throw new KvlensError(`file is ${fileSize} bytes, too short for a safetensors header (truncated file)`, file);
  const lengthBytes = Buffer.alloc(8);
  readExactly(fd, lengthBytes, 0, file, 'the header length');
  const headerLength = lengthBytes.readBigUInt64LE(0);
  if (headerLength > BigInt(fileSize - 8)) {
    throw new KvlensError(`header length ${headerLength} runs past the end of the file (${fileSize} bytes): truncated or not a safetensors file`, file);
  }
  if (headerLength > BigInt(MAX_HEADER_BYTES)) throw new KvlensError(`header length ${headerLength} exceeds ${MAX_HEADER_BYTES} bytes`, file);
  const length = Number(headerLength);
  const headerBytes = Buffer.alloc(length);
  readExactly(fd, headerBytes, 8, file, 'the header');
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(headerBytes));
  } catch (error) {
    throw new KvlensError(`invalid JSON header (${(error as Error).message})`, file);
  }
  const dataStart = 8 + length;
  return parseHeaderJson(json, file, fileSize - dataStart, dataStart, fileSize);
}

/** Parses and validates a file's header without reading tensor data. */
export function readSafetensorsHeader(file: string): SafetensorsHeader {
  if (!existsSync(file)) throw new KvlensError('file not found', file);
  const fd = openSync(file, 'r');
  try {
    return readHeaderFromFd(fd, file);
  } finally {
    closeSync(fd);
  }
}

let halfFloats: Float32Array | null = null;

/** half.ts's table of every fp16 value in fp32 (each is exact there): the weight decoders write fp32 and read half the bytes. */
export function f16Table(): Float32Array {
  if (!halfFloats) halfFloats = Float32Array.from(halfTable());
  return halfFloats;
}

/** Decodes little-endian F16/BF16 words into fp32. */
export function decodeHalfInto(dtype: 'F16' | 'BF16', source: Uint8Array, target: Float32Array): void {
  const count = target.length;
  if (dtype === 'BF16') {
    // bf16 is the top half of an fp32: shift the word into the high 16 bits.
    const bits = new Uint32Array(target.buffer, target.byteOffset, count);
    for (let i = 0; i < count; i++) bits[i] = (source[2 * i] | (source[2 * i + 1] << 8)) << 16;
    return;
  }
  const table = f16Table();
  for (let i = 0; i < count; i++) target[i] = table[source[2 * i] | (source[2 * i + 1] << 8)];
}

const CHUNK_BYTES = 16 * 1024 * 1024;

/**
 * Reads the named tensors (all if `names` is omitted) of one file into fp32, each byte read once.
 * F32 data is read straight into its Float32Array; half data goes through a bounded scratch chunk,
 * so the whole file is never held in memory next to the decoded weights.
 */
export function readSafetensorsTensors(header: SafetensorsHeader, names?: Iterable<string>, into: WeightMap = new Map()): WeightMap {
  const wanted = names ? [...names] : [...header.tensors.keys()];
  const entries = wanted.map((name) => {
    const entry = header.tensors.get(name);
    if (!entry) throw new KvlensError(`missing tensor "${name}"`, header.file);
    return entry;
  });
  entries.sort((a, b) => a.begin - b.begin);
  const fd = openSync(header.file, 'r');
  try {
    const size = fstatSync(fd).size;
    if (size !== header.fileSize) throw new KvlensError(`file changed size while loading (${header.fileSize} -> ${size} bytes)`, header.file);
    let scratch: Uint8Array | null = null;
    for (const entry of entries) {
      const count = elementCount(entry.shape);
      const data = new Float32Array(count);
      const position = header.dataStart + entry.begin;
      const what = `tensor "${entry.name}"`;
      if (entry.dtype === 'F32') {
        // safetensors stores little-endian, as every platform Node ships on for this engine (x64, arm64).
        readExactly(fd, new Uint8Array(data.buffer), position, header.file, what);
      } else {
        const elementsPerChunk = CHUNK_BYTES / 2;
        for (let start = 0; start < count; start += elementsPerChunk) {
          const n = Math.min(elementsPerChunk, count - start);
          if (!scratch || scratch.length < n * 2) scratch = new Uint8Array(Math.min(CHUNK_BYTES, count * 2));
          const bytes = scratch.subarray(0, n * 2);
          readExactly(fd, bytes, position + start * 2, header.file, what);
          decodeHalfInto(entry.dtype as 'F16' | 'BF16', bytes, data.subarray(start, start + n));
        }
      }
      const tensor: Tensor = { shape: [...entry.shape], data, sourceDtype: entry.dtype };
      into.set(entry.name, tensor);
    }
  } finally {
    closeSync(fd);
  }
  return into;
}

export const SAFETENSORS_INDEX = 'model.safetensors.index.json';
export const SAFETENSORS_SINGLE = 'model.safetensors';

export interface SafetensorsCheckpoint {
  /** Headers of every file, in file order. */
  headers: SafetensorsHeader[];
  /** Which header holds each tensor. */
  tensorFile: Map<string, SafetensorsHeader>;
}

function readIndex(indexFile: string): Map<string, string> {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(indexFile, 'utf8'));
  } catch (error) {
    throw new KvlensError(`not valid JSON (${(error as Error).message})`, indexFile);
  }
  const weightMap = (json as { weight_map?: unknown } | null)?.weight_map;
  if (typeof weightMap !== 'object' || weightMap === null || Array.isArray(weightMap)) {
    throw new KvlensError('index has no "weight_map" object', indexFile);
  }
  const result = new Map<string, string>();
  for (const [name, shard] of Object.entries(weightMap as Record<string, unknown>)) {
    if (typeof shard !== 'string' || shard.includes('/') || shard.includes('\\')) {
      throw new KvlensError(`weight_map entry for "${name}" must be a shard file name, found ${JSON.stringify(shard)}`, indexFile);
    }
    result.set(name, shard);
  }
  return result;
}

/**
 * Finds and validates the headers of a model folder's weights: model.safetensors, or the shards
 * listed by model.safetensors.index.json. Reads no tensor data.
 */
export function openSafetensorsCheckpoint(modelDir: string): SafetensorsCheckpoint {
  const indexFile = join(modelDir, SAFETENSORS_INDEX);
  const singleFile = join(modelDir, SAFETENSORS_SINGLE);
  const tensorFile = new Map<string, SafetensorsHeader>();
  const headers: SafetensorsHeader[] = [];
  if (existsSync(indexFile)) {
    const weightMap = readIndex(indexFile);
    const shardNames = [...new Set(weightMap.values())].sort();
    const byShard = new Map<string, SafetensorsHeader>();
    for (const shard of shardNames) {
      const shardFile = join(dirname(indexFile), shard);
      if (!existsSync(shardFile)) throw new KvlensError(`index points to shard "${shard}", which does not exist`, indexFile);
      const header = readSafetensorsHeader(shardFile);
      byShard.set(shard, header);
      headers.push(header);
    }
    for (const [name, shard] of weightMap) {
      const header = byShard.get(shard)!;
      if (!header.tensors.has(name)) throw new KvlensError(`index places tensor "${name}" in this shard, but the shard does not hold it`, header.file);
      tensorFile.set(name, header);
    }
    for (const header of headers) {
      for (const name of header.tensors.keys()) {
        if (tensorFile.get(name) !== header) {
          throw new KvlensError(`shard holds tensor "${name}", which the index places elsewhere or omits`, header.file);
        }
      }
    }
    return { headers, tensorFile };
  }
  if (!existsSync(singleFile)) {
    throw new KvlensError(`no ${SAFETENSORS_SINGLE} or ${SAFETENSORS_INDEX} in the model folder`, modelDir);
  }
  const header = readSafetensorsHeader(singleFile);
  headers.push(header);
  for (const name of header.tensors.keys()) tensorFile.set(name, header);
  return { headers, tensorFile };
}

/** Reads the named tensors from a checkpoint, one pass per file. */
export function readCheckpointTensors(checkpoint: SafetensorsCheckpoint, names: Iterable<string>): WeightMap {
  const perFile = new Map<SafetensorsHeader, string[]>();
  for (const name of names) {
    const header = checkpoint.tensorFile.get(name);
    if (!header) throw new KvlensError(`missing tensor "${name}"`, checkpoint.headers[0]?.file);
    const list = perFile.get(header) ?? [];
    list.push(name);
    perFile.set(header, list);
  }
  const weights: WeightMap = new Map();
  for (const header of checkpoint.headers) {
    const list = perFile.get(header);
    if (list) readSafetensorsTensors(header, list, weights);
  }
  return weights;
}

// Where a graph's weights go while it is built: inline in the ModelProto (small models), or streamed one
// tensor at a time into an ONNX external-data file that onnxruntime memory-maps. A weights file made for
// a model file and a set of weight options is kept in a cache folder and reused by the next start, which
// then reads no weight at all.
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { tensorProto, type MessageWriter, type OnnxDataTypeCode } from './protobuf';

export const EXTERNAL_DATA_FILE = 'weights.bin';
const INDEX_FILE = 'weights.json';
/** Large tensors start on a page so onnxruntime can memory-map them instead of copying them. */
const PAGE = 4096;
/** Small ones (norms, biases) are only kept aligned for vector loads: a page each would waste more than they hold. */
const SMALL_TENSOR_BYTES = 65536;
const SMALL_ALIGNMENT = 64;

export interface InitializerSink {
  /** Adds an initializer; `produce` runs only when the bytes are not already stored. */
  add(name: string, type: OnnxDataTypeCode, dims: number[], produce: () => Uint8Array | ArrayBufferView): void;
  readonly tensors: MessageWriter[];
  /** Bytes of every initializer added (stored or reused). */
  readonly byteLength: number;
  /** Completes the weights file (if any); returns its folder, or null when everything is inline. */
  finish(): string | null;
}

function asBytes(data: Uint8Array | ArrayBufferView): Uint8Array {
  return data instanceof Uint8Array ? data : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

export class InlineSink implements InitializerSink {
  readonly tensors: MessageWriter[] = [];
  byteLength = 0;

  add(name: string, type: OnnxDataTypeCode, dims: number[], produce: () => Uint8Array | ArrayBufferView): void {
    const bytes = asBytes(produce());
    this.byteLength += bytes.length;
    this.tensors.push(tensorProto(name, type, dims, bytes));
  }

  finish(): null {
    return null;
  }
}

interface IndexEntry {
  name: string;
  type: number;
  dims: number[];
  offset: number;
  length: number;
}

/**
 * Streams large initializers into `dir/weights.bin`. When `dir` already holds a complete weights file
 * (its index lists every tensor with the same type and shape), nothing is produced or written.
 */
export class ExternalFileSink implements InitializerSink {
  readonly tensors: MessageWriter[] = [];
  byteLength = 0;
  private readonly reused: Map<string, IndexEntry> | null;
  private readonly written: IndexEntry[] = [];
  private fd: number | null = null;
  private offset = 0;
  private readonly partial: string;

  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true });
    this.reused = readIndex(dir);
    this.partial = join(dir, `${EXTERNAL_DATA_FILE}.${process.pid}.partial`);
  }

  /** True when this sink is reading a weights file a previous start wrote. */
  get reusing(): boolean {
    return this.reused !== null;
  }

  add(name: string, type: OnnxDataTypeCode, dims: number[], produce: () => Uint8Array | ArrayBufferView): void {
    const known = this.reused?.get(name);
    if (known && known.type === type && known.dims.length === dims.length && known.dims.every((d, i) => d === dims[i])) {
      this.byteLength += known.length;
      this.tensors.push(tensorProto(name, type, dims, new Uint8Array(0), { file: EXTERNAL_DATA_FILE, offset: known.offset, length: known.length }));
      return;
    }
    if (this.reused) throw new StaleCacheError(`${name} is not in the cached weights file`);
    const bytes = asBytes(produce());
    this.byteLength += bytes.length;
    if (this.fd === null) this.fd = openSync(this.partial, 'w');
    const alignment = bytes.length >= SMALL_TENSOR_BYTES ? PAGE : SMALL_ALIGNMENT;
    const padding = (alignment - (this.offset % alignment)) % alignment;
    if (padding) writeSync(this.fd, new Uint8Array(padding));
    this.offset += padding;
    let done = 0;
    while (done < bytes.length) done += writeSync(this.fd, bytes, done, Math.min(bytes.length - done, 1 << 30));
    this.tensors.push(tensorProto(name, type, dims, new Uint8Array(0), { file: EXTERNAL_DATA_FILE, offset: this.offset, length: bytes.length }));
    this.written.push({ name, type, dims, offset: this.offset, length: bytes.length });
    this.offset += bytes.length;
  }

  finish(): string {
    if (this.reused) return this.dir;
    if (this.fd === null) this.fd = openSync(this.partial, 'w');
    closeSync(this.fd);
    this.fd = null;
    // The data first, then the index that vouches for it: a process killed in between leaves no index,
    // so the next start rebuilds instead of trusting a torn file.
    renameSync(this.partial, join(this.dir, EXTERNAL_DATA_FILE));
    const index = join(this.dir, INDEX_FILE);
    writeFileSync(`${index}.${process.pid}.partial`, JSON.stringify({ tensors: this.written }));
    renameSync(`${index}.${process.pid}.partial`, index);
    return this.dir;
  }

  /** Removes a half-written file after a failed build. */
  abandon(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
    rmSync(this.partial, { force: true });
  }
}

/** A cached weights file that does not match the graph being built (a format change): rebuild it. */
export class StaleCacheError extends Error {}

function readIndex(dir: string): Map<string, IndexEntry> | null {
  const index = join(dir, INDEX_FILE);
  if (!existsSync(index) || !existsSync(join(dir, EXTERNAL_DATA_FILE))) return null;
  try {
    const parsed = JSON.parse(readFileSync(index, 'utf8')) as { tensors: IndexEntry[] };
    return new Map(parsed.tensors.map((entry) => [entry.name, entry]));
  } catch {
    return null;
  }
}

/** Drops a cached weights folder (after StaleCacheError). */
export function clearWeightCache(dir: string): void {
  rmSync(join(dir, INDEX_FILE), { force: true });
  rmSync(join(dir, EXTERNAL_DATA_FILE), { force: true });
}

/** `KVLENS_CACHE_DIR`, else `$XDG_CACHE_HOME/kvlens`, else `~/.cache/kvlens`. */
export function kvlensCacheDir(): string {
  if (process.env.KVLENS_CACHE_DIR) return process.env.KVLENS_CACHE_DIR;
  const base = process.env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return join(base, 'kvlens');
}

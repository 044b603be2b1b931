// A checkpoint's tensors as stored, read a row range at a time: nothing is upcast or kept until a
// consumer asks, so a graph can be built from a 5 GB file without ever holding it whole in fp32.
import { closeSync, openSync } from 'node:fs';
import { KvlensError } from '../errors';
import type { ModelConfig } from './config';
import { dequantizeBlocks, type GgmlBlockFormat } from './ggmlQuants';
import { ggufHfTensors, type GgufFile } from './gguf';
import { decodeHalfInto, readExactly, type SafetensorsCheckpoint } from './safetensors';
import type { StorageDtype, WeightMap } from './types';

export interface StoredTensorInfo {
  /** Hugging Face shape: [rows, columns] for matrices, [n] for vectors. */
  shape: number[];
  dtype: StorageDtype;
  /** Bytes of one row as stored (a row of a ggml tensor is whole blocks). */
  rowBytes: number;
  /** The ggml block layout, for block-quantized tensors. */
  block: GgmlBlockFormat | null;
}

export interface WeightSource {
  /** The file (or 'weights' for in-memory maps) errors name. */
  readonly origin: string;
  readonly names: readonly string[];
  info(name: string): StoredTensorInfo | undefined;
  /** Rows [start, end) as stored, in Hugging Face row order (llama.cpp's q/k permutation undone). */
  rawRows(name: string, start: number, end: number): Uint8Array;
  /** Rows [start, end) in fp32. */
  rows(name: string, start: number, end: number): Float32Array;
  /** Releases open files (file sources reopen them on the next read). */
  close?(): void;
}

const BYTES_PER_ELEMENT: Partial<Record<StorageDtype, number>> = { F32: 4, F16: 2, BF16: 2 };

export function rowCount(info: StoredTensorInfo): number {
  return info.shape.length === 1 ? 1 : info.shape[0];
}

export function columnCount(info: StoredTensorInfo): number {
  return info.shape[info.shape.length - 1];
}

/** Decodes stored rows (any supported dtype) to fp32. */
export function decodeRows(info: StoredTensorInfo, raw: Uint8Array, rows: number): Float32Array {
  const out = new Float32Array(rows * columnCount(info));
  if (info.dtype === 'F32') out.set(new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength)));
  else if (info.dtype === 'F16' || info.dtype === 'BF16') decodeHalfInto(info.dtype, raw, out);
  else if (info.block) dequantizeBlocks(info.block, raw, out);
  else throw new KvlensError(`cannot decode storage type ${info.dtype}`, 'weights');
  return out;
}

/** Whole tensor in fp32. */
export function readFloat32(source: WeightSource, name: string): Float32Array {
  const info = requireInfo(source, name);
  return source.rows(name, 0, rowCount(info));
}

export function requireInfo(source: WeightSource, name: string): StoredTensorInfo {
  const info = source.info(name);
  if (!info) throw new KvlensError(`missing tensor "${name}"`, source.origin);
  return info;
}

/** Every tensor upcast to fp32: the reference forward's input (and small models' tests). */
export function readAllFloat32(source: WeightSource): WeightMap {
  const weights: WeightMap = new Map();
  for (const name of source.names) {
    const info = requireInfo(source, name);
    weights.set(name, { shape: [...info.shape], data: readFloat32(source, name), sourceDtype: info.dtype });
  }
  return weights;
}

/** An fp32 WeightMap seen as a source (tests and the reference path build these). */
export function weightMapSource(weights: WeightMap): WeightSource {
  const infos = new Map<string, StoredTensorInfo>();
  for (const [name, tensor] of weights) {
    infos.set(name, { shape: tensor.shape, dtype: 'F32', rowBytes: 4 * tensor.shape[tensor.shape.length - 1], block: null });
  }
  const range = (name: string, start: number, end: number): Float32Array => {
    const tensor = weights.get(name);
    if (!tensor) throw new KvlensError(`missing tensor "${name}"`, 'weights');
    const columns = tensor.shape[tensor.shape.length - 1];
    return tensor.data.subarray(start * columns, end * columns);
  };
  return {
    origin: 'weights',
    names: [...weights.keys()],
    info: (name) => infos.get(name),
    rows: range,
    rawRows: (name, start, end) => {
      const data = range(name, start, end);
      return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    },
  };
}

/**
 * Reads row ranges from files through one descriptor per file, opened on first use and kept open
 * until `close`. `locate` gives a tensor's file and the absolute offset of each of its stored rows.
 */
abstract class FileRowSource implements WeightSource {
  private readonly fds = new Map<string, number>();
  abstract readonly origin: string;
  abstract readonly names: readonly string[];
  abstract info(name: string): StoredTensorInfo | undefined;
  protected abstract locate(name: string): { file: string; position: number };
  /** The stored row that holds Hugging Face row `row` (identity except for permuted GGUF q/k). */
  protected storedRow(_name: string, row: number): number {
    return row;
  }

  private fd(file: string): number {
    let fd = this.fds.get(file);
    if (fd === undefined) {
      fd = openSync(file, 'r');
      this.fds.set(file, fd);
    }
    return fd;
  }

  rawRows(name: string, start: number, end: number): Uint8Array {
    const info = requireInfo(this, name);
    const rows = rowCount(info);
    if (!(start >= 0 && end <= rows && start <= end)) throw new KvlensError(`rows [${start}, ${end}) out of range for "${name}" (${rows} rows)`, this.origin);
    const { file, position } = this.locate(name);
    const out = new Uint8Array((end - start) * info.rowBytes);
    const fd = this.fd(file);
    // Consecutive stored rows are read in one call; only permuted q/k rows are read one by one.
    let row = start;
    while (row < end) {
      const first = this.storedRow(name, row);
      let run = 1;
      while (row + run < end && this.storedRow(name, row + run) === first + run) run++;
      readExactly(fd, out.subarray((row - start) * info.rowBytes, (row - start + run) * info.rowBytes), position + first * info.rowBytes, file, `tensor "${name}"`);
      row += run;
    }
    return out;
  }

  rows(name: string, start: number, end: number): Float32Array {
    return decodeRows(requireInfo(this, name), this.rawRows(name, start, end), end - start);
  }

  close(): void {
    for (const fd of this.fds.values()) closeSync(fd);
    this.fds.clear();
  }
}

/** GGUF tensors under their Hugging Face names. */
export class GgufWeightSource extends FileRowSource {
  readonly origin: string;
  readonly names: readonly string[];
  private readonly infos = new Map<string, StoredTensorInfo & { position: number; permutedHeads: number }>();

  constructor(private readonly gguf: GgufFile, config: ModelConfig, names: Iterable<string>) {
    super();
    this.origin = gguf.file;
    const { tensors } = ggufHfTensors(gguf);
    const wanted = [...names];
    for (const name of wanted) {
      const entry = tensors.get(name);
      if (!entry) throw new KvlensError(`missing tensor for "${name}"`, gguf.file);
      const { format } = entry.info;
      const columns = entry.shape[entry.shape.length - 1];
      // llama.cpp's converter interleaves the two rotary halves of each q/k head (see unpermuteRows).
      const qk = config.architecture === 'llama' ? /self_attn\.(q|k)_proj\.(weight|bias)$/.exec(name) : null;
      this.infos.set(name, {
        shape: entry.shape,
        dtype: format.dtype,
        rowBytes: (columns / format.blockElements) * format.blockBytes,
        block: format.block ?? null,
        position: entry.info.position,
        permutedHeads: qk ? (qk[1] === 'q' ? config.numHeads : config.numKvHeads) : 0,
      });
    }
    this.names = wanted;
  }

  info(name: string): StoredTensorInfo | undefined {
    return this.infos.get(name);
  }

  protected locate(name: string): { file: string; position: number } {
    return { file: this.gguf.file, position: this.infos.get(name)!.position };
  }

  protected override storedRow(name: string, row: number): number {
    const info = this.infos.get(name)!;
    if (!info.permutedHeads) return row;
    // A q/k bias is one "row" of length rows: it is permuted along its columns instead (see rows()).
    if (info.shape.length === 1) return row;
    const headRows = info.shape[0] / info.permutedHeads;
    const half = headRows / 2;
    const head = Math.floor(row / headRows);
    const within = row % headRows;
    return head * headRows + 2 * (within % half) + Math.floor(within / half);
  }

  override rows(name: string, start: number, end: number): Float32Array {
    const data = super.rows(name, start, end);
    const info = this.infos.get(name)!;
    if (!info.permutedHeads || info.shape.length !== 1) return data;
    const out = new Float32Array(data.length);
    const headRows = data.length / info.permutedHeads;
    const half = headRows / 2;
    for (let i = 0; i < data.length; i++) {
      const head = Math.floor(i / headRows);
      const within = i % headRows;
      out[i] = data[head * headRows + 2 * (within % half) + Math.floor(within / half)];
    }
    return out;
  }
}

/** Safetensors tensors (single file or shards). */
export class SafetensorsWeightSource extends FileRowSource {
  readonly origin: string;
  readonly names: readonly string[];
  private readonly infos = new Map<string, StoredTensorInfo & { file: string; position: number }>();

  constructor(checkpoint: SafetensorsCheckpoint, names: Iterable<string>) {
    super();
    this.origin = checkpoint.headers[0]?.file ?? 'safetensors';
    const wanted = [...names];
    for (const name of wanted) {
      const header = checkpoint.tensorFile.get(name);
      const entry = header?.tensors.get(name);
      if (!header || !entry) throw new KvlensError(`missing tensor "${name}"`, this.origin);
      const bytes = BYTES_PER_ELEMENT[entry.dtype];
      if (!bytes) throw new KvlensError(`tensor "${name}" has dtype ${entry.dtype}, not supported`, header.file);
      this.infos.set(name, {
        shape: [...entry.shape],
        dtype: entry.dtype,
        rowBytes: bytes * entry.shape[entry.shape.length - 1],
        block: null,
        file: header.file,
        position: header.dataStart + entry.begin,
      });
    }
    this.names = wanted;
  }

  info(name: string): StoredTensorInfo | undefined {
    return this.infos.get(name);
  }

  protected locate(name: string): { file: string; position: number } {
    const info = this.infos.get(name)!;
    return { file: info.file, position: info.position };
  }
}

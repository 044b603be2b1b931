// Rows of a Parquet file (as kvpress' datasets and other Hugging Face datasets are published) as plain objects,
// read with hyparquet (pure JavaScript; snappy built in, the codec Hugging Face writes by default). Integers
// that Parquet stores as int64 come back as numbers, so a row reads the same as its JSONL form.
import { readFileSync } from 'node:fs';
import { parquetMetadata, parquetReadObjects } from 'hyparquet';
import { KvlensError } from '../errors';
import type { Row } from './rowReader';

/** int64 cells arrive as bigint: numbers when they fit a double exactly, otherwise a clear refusal. */
function plain(value: unknown, file: string, where: () => string): unknown {
  if (typeof value === 'bigint') {
    if (value > BigInt(Number.MAX_SAFE_INTEGER) || value < BigInt(Number.MIN_SAFE_INTEGER)) {
      throw new KvlensError(`${where()}: the integer ${value} does not fit a double`, file);
    }
    return Number(value);
  }
  if (Array.isArray(value)) return value.map((v) => plain(v, file, where));
  if (value !== null && typeof value === 'object' && !(value instanceof Uint8Array) && !(value instanceof Date)) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v, file, where)]));
  }
  return value;
}

/** The first `limit` rows (all without one), each with its 1-based row number. */
export async function readParquetRows(file: string, limit?: number): Promise<{ value: Row; number: number }[]> {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (error) {
    throw new KvlensError(`cannot read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`, file);
  }
  let rows: Record<string, unknown>[];
  try {
    const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
    const metadata = parquetMetadata(buffer);
    rows = await parquetReadObjects({ file: buffer, metadata, rowEnd: limit === undefined ? undefined : Math.min(limit, Number(metadata.num_rows)) });
  } catch (error) {
    throw new KvlensError(`cannot read as Parquet (${(error as Error).message})`, file);
  }
  return rows.map((row, i) => ({ value: plain(row, file, () => `row ${i + 1}`) as Row, number: i + 1 }));
}

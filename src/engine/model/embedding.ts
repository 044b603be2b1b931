// The token embedding table, kept as stored (fp16, bf16 or ggml blocks: the file's own bytes) and decoded
// one looked-up row at a time. The graph receives the rows, so the table is never upcast. A table in a file
// is not held at all: each lookup reads its rows from the file (the OS page cache keeps the hot ones), as
// llama.cpp's memory-mapped table does; only in-memory weight maps keep their table resident.
import { KvlensError } from '../errors';
import { columnCount, decodeRows, requireInfo, rowCount, type StoredTensorInfo, type WeightSource } from './weightSource';

export class EmbeddingTable {
  private readonly info: StoredTensorInfo;
  /** The whole table, for sources that are not files; null when rows are read from the file per lookup. */
  private readonly resident: Uint8Array | null;
  readonly rows: number;
  readonly hidden: number;

  constructor(
    private readonly source: WeightSource,
    options: { resident: boolean },
    private readonly name = 'model.embed_tokens.weight',
  ) {
    this.info = requireInfo(source, name);
    this.rows = rowCount(this.info);
    this.hidden = columnCount(this.info);
    this.resident = options.resident ? source.rawRows(name, 0, this.rows) : null;
  }

  /** Bytes held in memory (0 when rows are read from the file). */
  get byteLength(): number {
    return this.resident?.byteLength ?? 0;
  }

  /** [tokens.length, hidden] fp32 rows. */
  lookup(tokens: ArrayLike<number>): Float32Array {
    const out = new Float32Array(tokens.length * this.hidden);
    const rowBytes = this.info.rowBytes;
    for (let t = 0; t < tokens.length; t++) {
      const id = tokens[t];
      if (!(Number.isInteger(id) && id >= 0 && id < this.rows)) throw new KvlensError(`token id ${id} is outside the vocabulary (0..${this.rows - 1})`, 'embedding');
      const stored = this.resident ? this.resident.subarray(id * rowBytes, (id + 1) * rowBytes) : this.source.rawRows(this.name, id, id + 1);
      out.set(decodeRows(this.info, stored, 1), t * this.hidden);
    }
    return out;
  }

  /** Releases the file descriptors of a file-backed table (a later lookup opens them again). */
  close(): void {
    if (!this.resident) this.source.close?.();
  }
}

// The token embedding table, held as stored (fp16, bf16 or ggml blocks: the file's own bytes) and
// decoded one looked-up row at a time. The graph receives the rows, so the table is never upcast: a
// 151k x 896 table is 76 MB in Q4_0 here instead of 545 MB in fp32.
import { KvlensError } from '../errors';
import { columnCount, decodeRows, requireInfo, rowCount, type StoredTensorInfo, type WeightSource } from './weightSource';

export class EmbeddingTable {
  private readonly info: StoredTensorInfo;
  private readonly stored: Uint8Array;
  readonly rows: number;
  readonly hidden: number;

  constructor(source: WeightSource, name = 'model.embed_tokens.weight') {
    this.info = requireInfo(source, name);
    this.rows = rowCount(this.info);
    this.hidden = columnCount(this.info);
    this.stored = source.rawRows(name, 0, this.rows);
  }

  /** Bytes held. */
  get byteLength(): number {
    return this.stored.byteLength;
  }

  /** [tokens.length, hidden] fp32 rows. */
  lookup(tokens: ArrayLike<number>): Float32Array {
    const out = new Float32Array(tokens.length * this.hidden);
    const rowBytes = this.info.rowBytes;
    for (let t = 0; t < tokens.length; t++) {
      const id = tokens[t];
      if (!(Number.isInteger(id) && id >= 0 && id < this.rows)) throw new KvlensError(`token id ${id} is outside the vocabulary (0..${this.rows - 1})`, 'embedding');
      out.set(decodeRows(this.info, this.stored.subarray(id * rowBytes, (id + 1) * rowBytes), 1), t * this.hidden);
    }
    return out;
  }
}

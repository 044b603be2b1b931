// A full-precision cache whose KV heads hold different numbers of tokens (Ada-KV's per-head budgets), stored
// per head so no head pays for another head's tokens. Attention gets a padded view built at each step.
import { kvView, type LayerKV } from './cache';
import { allocateKv, encodeKv, type KvArray, type KvDtype } from './kv-dtype';
import { type CacheBytes, type MethodCache, ZERO_BYTES } from './method';

/** One KV head's tokens: [count, headDim] keys and values (in the cache's dtype), and their original positions. */
class HeadStore {
  keys: KvArray;
  values: KvArray;
  positions: Int32Array;
  count = 0;

  constructor(
    private readonly headDim: number,
    capacity: number,
    private readonly dtype: KvDtype,
  ) {
    this.keys = allocateKv(dtype, Math.max(1, capacity) * headDim);
    this.values = allocateKv(dtype, Math.max(1, capacity) * headDim);
    this.positions = new Int32Array(Math.max(1, capacity));
  }

  /** Appends one token given as stored patterns of the cache's dtype (`encoded`) or as fp32 values. */
  push(keys: KvArray, values: KvArray, position: number, encoded = false): void {
    if (this.count === this.positions.length) {
      // decode appends one token per step: grow geometrically, not every step
      const capacity = Math.ceil(this.positions.length * 1.25) + 16;
      const grow = <T extends KvArray | Int32Array>(old: T, make: (n: number) => T, width: number): T => {
        const next = make(capacity * width);
        next.set(old.subarray(0, this.count * width) as never);
        return next;
      };
      this.keys = grow(this.keys, (n) => allocateKv(this.dtype, n), this.headDim);
      this.values = grow(this.values, (n) => allocateKv(this.dtype, n), this.headDim);
      this.positions = grow(this.positions, (n) => new Int32Array(n), 1);
    }
    if (encoded || this.dtype === 'fp32') {
      this.keys.set(keys as never, this.count * this.headDim);
      this.values.set(values as never, this.count * this.headDim);
    } else {
      encodeKv(this.dtype, keys as Float32Array, this.keys, this.count * this.headDim);
      encodeKv(this.dtype, values as Float32Array, this.values, this.count * this.headDim);
    }
    this.positions[this.count] = position;
    this.count++;
  }
}

export class RaggedMethodCache implements MethodCache {
  readonly bits = null;
  private readonly heads: HeadStore[][];
  private readonly headDim: number;
  private readonly dtype: KvDtype;

  /** Copies, per layer and KV head, the slots listed in `keep[layer][head]` out of the prefill `views` (in their dtype). */
  constructor(views: LayerKV[], keep: number[][][]) {
    this.headDim = views[0].headDim;
    this.dtype = views[0].stored?.dtype ?? 'fp32';
    const d = this.headDim;
    this.heads = views.map((view, l) =>
      keep[l].map((slots, h) => {
        const store = new HeadStore(d, slots.length, this.dtype);
        const keys: KvArray = view.stored ? view.stored.keys : view.keys;
        const values: KvArray = view.stored ? view.stored.values : view.values;
        for (const slot of slots) {
          const at = (slot * view.numKvHeads + h) * d;
          store.push(keys.subarray(at, at + d), values.subarray(at, at + d), view.positions[slot * view.numKvHeads + h], true);
        }
        return store;
      }),
    );
  }

  views(): LayerKV[] {
    const d = this.headDim;
    return this.heads.map((heads) => {
      const numKvHeads = heads.length;
      const length = Math.max(...heads.map((head) => head.count));
      const keys = allocateKv(this.dtype, length * numKvHeads * d);
      const values = allocateKv(this.dtype, length * numKvHeads * d);
      const positions = new Int32Array(length * numKvHeads).fill(-1);
      const valid = new Uint8Array(length * numKvHeads);
      // Plain index loops: a subarray per row costs more than the copy itself at head sizes of 32-128.
      for (let h = 0; h < numKvHeads; h++) {
        const head = heads[h];
        const headKeys = head.keys;
        const headValues = head.values;
        for (let s = 0; s < head.count; s++) {
          const to = (s * numKvHeads + h) * d;
          const from = s * d;
          for (let c = 0; c < d; c++) {
            keys[to + c] = headKeys[from + c];
            values[to + c] = headValues[from + c];
          }
          positions[s * numKvHeads + h] = head.positions[s];
          valid[s * numKvHeads + h] = 1;
        }
      }
      return kvView({ numKvHeads, headDim: d, length, valid, positions }, this.dtype, keys, values);
    });
  }

  append(layer: number, keys: Float32Array, values: Float32Array, positions: ArrayLike<number>): void {
    const heads = this.heads[layer];
    const d = this.headDim;
    const row = heads.length * d;
    if (keys.length !== positions.length * row || values.length !== positions.length * row) {
      throw new Error(`append: expected ${positions.length * row} key/value elements for ${positions.length} tokens, got ${keys.length}/${values.length}`);
    }
    for (let t = 0; t < positions.length; t++) {
      heads.forEach((head, h) => {
        const at = t * row + h * d;
        head.push(keys.subarray(at, at + d), values.subarray(at, at + d), positions[t]);
      });
    }
  }

  tokensPerHead(): number[][] {
    return this.heads.map((heads) => heads.map((head) => head.count));
  }

  /** Only the tokens each head holds: no padding, and no validity mask (each head keeps its own positions). */
  bytes(): CacheBytes {
    const b = { ...ZERO_BYTES };
    for (const heads of this.heads) {
      for (const head of heads) {
        b.fullPrecision += 2 * head.count * this.headDim * head.keys.BYTES_PER_ELEMENT;
        b.positions += head.count * Int32Array.BYTES_PER_ELEMENT;
      }
    }
    b.held = b.fullPrecision + b.positions;
    b.active = b.held;
    return b;
  }

  quantizedElements(): number {
    return 0;
  }
}

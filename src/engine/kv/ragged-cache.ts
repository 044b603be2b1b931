// A full-precision cache whose KV heads hold different numbers of tokens (Ada-KV's per-head budgets), stored
// per head so no head pays for another head's tokens. Attention gets a padded view built at each step.
import type { LayerKV } from './cache';
import { type CacheBytes, type MethodCache, ZERO_BYTES } from './method';

/** One KV head's tokens: [count, headDim] keys and values, and their original positions. */
class HeadStore {
  keys: Float32Array;
  values: Float32Array;
  positions: Int32Array;
  count = 0;

  constructor(
    private readonly headDim: number,
    capacity: number,
  ) {
    this.keys = new Float32Array(Math.max(1, capacity) * headDim);
    this.values = new Float32Array(Math.max(1, capacity) * headDim);
    this.positions = new Int32Array(Math.max(1, capacity));
  }

  push(keys: Float32Array, values: Float32Array, position: number): void {
    if (this.count === this.positions.length) {
      // decode appends one token per step: grow geometrically, not every step
      const capacity = Math.ceil(this.positions.length * 1.25) + 16;
      const grow = <T extends Float32Array | Int32Array>(old: T, make: (n: number) => T, width: number): T => {
        const next = make(capacity * width);
        next.set(old.subarray(0, this.count * width));
        return next;
      };
      this.keys = grow(this.keys, (n) => new Float32Array(n), this.headDim);
      this.values = grow(this.values, (n) => new Float32Array(n), this.headDim);
      this.positions = grow(this.positions, (n) => new Int32Array(n), 1);
    }
    this.keys.set(keys, this.count * this.headDim);
    this.values.set(values, this.count * this.headDim);
    this.positions[this.count] = position;
    this.count++;
  }
}

export class RaggedMethodCache implements MethodCache {
  readonly bits = null;
  private readonly heads: HeadStore[][];
  private readonly headDim: number;

  /** Copies, per layer and KV head, the slots listed in `keep[layer][head]` out of the prefill `views`. */
  constructor(views: LayerKV[], keep: number[][][]) {
    this.headDim = views[0].headDim;
    const d = this.headDim;
    this.heads = views.map((view, l) =>
      keep[l].map((slots, h) => {
        const store = new HeadStore(d, slots.length);
        for (const slot of slots) {
          const at = (slot * view.numKvHeads + h) * d;
          store.push(view.keys.subarray(at, at + d), view.values.subarray(at, at + d), view.positions[slot * view.numKvHeads + h]);
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
      const keys = new Float32Array(length * numKvHeads * d);
      const values = new Float32Array(length * numKvHeads * d);
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
      return { numKvHeads, headDim: d, length, keys, values, valid, positions };
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
        b.fullPrecision += 2 * head.count * this.headDim * Float32Array.BYTES_PER_ELEMENT;
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

// The attention-ready cache layout shared by the forward pass and every compression method.
// Token-major slots ([slot, kvHead, headDim]) so appending is a copy at the end and eviction is a compaction.
import { allocateKv, decodeKv, encodeKv, type KvArray, type KvDtype } from './kv-dtype';

/**
 * One layer's cache as attention reads it. Each slot holds, per KV head, one key/value. With per-head
 * eviction heads keep different tokens, so a slot may hold a token for one head and nothing for another:
 * `valid` says which (null means every slot is valid for every head).
 */
export interface LayerKV {
  numKvHeads: number;
  headDim: number;
  /** Slots in use. */
  length: number;
  /** [length, numKvHeads, headDim] keys, RoPE already applied (as transformers caches them). */
  keys: Float32Array;
  /** [length, numKvHeads, headDim] values. */
  values: Float32Array;
  /** [length, numKvHeads]: 1 where the slot holds a token for that head. */
  valid: Uint8Array | null;
  /** [length, numKvHeads]: original position of the token in each slot, -1 where invalid. */
  positions: Int32Array;
  /**
   * Present when the cache holds 16-bit keys and values: their raw patterns ([length, numKvHeads, headDim]),
   * which a forward pass can read without decoding. `keys`/`values` then decode on first access.
   */
  stored?: { dtype: 'fp16' | 'bf16'; keys: Uint16Array; values: Uint16Array };
  /**
   * Present when a quantized store can be read as it is held: its first `tokens` slots as packed codes with
   * their group parameters, the remaining slots as a dense residual. `keys`/`values` then dequantize on first access.
   */
  quantized?: QuantizedPast;
}

/**
 * One tensor (keys or values) of a layer's quantized slots, every KV head's codes back to back. The reader supplies the
 * buffers (`write`), so a decode step that reads the store allocates nothing per call.
 */
export interface PackedKvCodes {
  /** Bytes of codes, `bits` wide, little-endian within a byte, head after head. */
  codeBytes: number;
  /** Group parameters (scales, and as many zero-points), all heads. */
  paramCount: number;
  /**
   * [kvH, A, B, C] with A·B·C = tokens·headDim, row-major over each head's [tokens, headDim]:
   * per-token groups are [tokens, groups, width], groups along tokens (KIVI keys) [chunks, width, headDim].
   */
  shape: [number, number, number, number];
  /** Shape of the group parameters: decoded element = level · scale + zero, broadcast from it (1 on the grouped axis). */
  paramShape: [number, number, number, number];
  /** Copies the codes into codes[0, codeBytes) and the parameters as fp32 into scales/zeros[0, paramCount). */
  write(codes: Uint8Array, scales: Float32Array, zeros: Float32Array): void;
}

export interface QuantizedPast {
  bits: number;
  codesPerByte: number;
  /**
   * [256, codesPerByte] levels of the codes in each byte value (lowest bits first), for table codecs (fp8); null when
   * each code is its own level (the codec's offset folded into the zero-points).
   */
  table: Float32Array | null;
  /** Keys grouped along tokens (KIVI: shape [kvH, chunks, width, headDim]) rather than per token. */
  keysPerChannel: boolean;
  /** Slots [0, tokens) are quantized, for every head alike. */
  tokens: number;
  keys: PackedKvCodes;
  values: PackedKvCodes;
  /** Slots [tokens, length) in the cache's full-precision dtype. */
  residual: LayerKV;
}

/** Bytes of a view's keys and values as the cache holds them (16-bit patterns when it holds those). */
export function storedKvBytes(kv: LayerKV): number {
  return kv.stored ? kv.stored.keys.byteLength + kv.stored.values.byteLength : kv.keys.byteLength + kv.values.byteLength;
}

/**
 * A LayerKV over keys/values stored in `dtype`. A 16-bit view carries the raw patterns in `stored` (a forward
 * pass can feed them as they are) and decodes `keys`/`values` only when they are read.
 */
export function kvView(base: Omit<LayerKV, 'keys' | 'values' | 'stored'>, dtype: KvDtype, keys: KvArray, values: KvArray): LayerKV {
  if (dtype === 'fp32') return { ...base, keys: keys as Float32Array, values: values as Float32Array };
  const stored = { dtype, keys: keys as Uint16Array, values: values as Uint16Array };
  let decodedKeys: Float32Array | null = null;
  let decodedValues: Float32Array | null = null;
  return {
    ...base,
    stored,
    get keys(): Float32Array {
      return (decodedKeys ??= decodeKv(dtype, stored.keys));
    },
    get values(): Float32Array {
      return (decodedValues ??= decodeKv(dtype, stored.values));
    },
  };
}

/** A growable full-precision cache for one layer (the `full` baseline, and prefill's output), in fp16, bf16 or fp32. */
export class DenseLayerCache {
  private keyBuffer: KvArray;
  private valueBuffer: KvArray;
  private positionBuffer: Int32Array;
  private validBuffer: Uint8Array | null = null;
  length = 0;

  constructor(
    readonly numKvHeads: number,
    readonly headDim: number,
    initialCapacity = 256,
    readonly dtype: KvDtype = 'fp32',
  ) {
    const capacity = Math.max(1, initialCapacity);
    this.keyBuffer = allocateKv(dtype, capacity * numKvHeads * headDim);
    this.valueBuffer = allocateKv(dtype, capacity * numKvHeads * headDim);
    this.positionBuffer = new Int32Array(capacity * numKvHeads);
  }

  get capacity(): number {
    return this.positionBuffer.length / this.numKvHeads;
  }

  private reserve(slots: number): void {
    if (slots <= this.capacity) return;
    // Grow geometrically so a long decode reallocates O(log n) times, not every step.
    const capacity = Math.max(slots, Math.ceil(this.capacity * 1.5), 256);
    const row = this.numKvHeads * this.headDim;
    const grow = <T extends KvArray | Int32Array | Uint8Array>(old: T, width: number, make: (n: number) => T): T => {
      const next = make(capacity * width);
      next.set(old.subarray(0, this.length * width) as never);
      return next;
    };
    this.keyBuffer = grow(this.keyBuffer, row, (n) => allocateKv(this.dtype, n));
    this.valueBuffer = grow(this.valueBuffer, row, (n) => allocateKv(this.dtype, n));
    this.positionBuffer = grow(this.positionBuffer, this.numKvHeads, (n) => new Int32Array(n));
    if (this.validBuffer) this.validBuffer = grow(this.validBuffer, this.numKvHeads, (n) => new Uint8Array(n));
  }

  /** Appends q tokens given token-major [q, numKvHeads, headDim] fp32 keys/values and their positions. */
  append(keys: Float32Array, values: Float32Array, positions: ArrayLike<number>): void {
    this.appendRows(keys, values, positions, (from, to, at) => encodeKv(this.dtype, from, to, at));
  }

  /** Like append, with keys/values already in this cache's dtype (patterns copied, never decoded and re-rounded). */
  appendStored(keys: KvArray, values: KvArray, positions: ArrayLike<number>): void {
    if (keys.BYTES_PER_ELEMENT !== this.keyBuffer.BYTES_PER_ELEMENT || values.BYTES_PER_ELEMENT !== this.keyBuffer.BYTES_PER_ELEMENT) {
      throw new Error(`appendStored: keys/values are not stored as ${this.dtype}`);
    }
    this.appendRows(keys, values, positions, (from, to, at) => to.set(from as never, at));
  }

  private appendRows<T extends KvArray>(keys: T, values: T, positions: ArrayLike<number>, write: (from: T, to: KvArray, at: number) => void): void {
    const q = positions.length;
    const row = this.numKvHeads * this.headDim;
    if (keys.length !== q * row || values.length !== q * row) {
      throw new Error(`append: expected ${q * row} key/value elements for ${q} tokens, got ${keys.length}/${values.length}`);
    }
    this.reserve(this.length + q);
    write(keys, this.keyBuffer, this.length * row);
    write(values, this.valueBuffer, this.length * row);
    for (let t = 0; t < q; t++) {
      for (let h = 0; h < this.numKvHeads; h++) this.positionBuffer[(this.length + t) * this.numKvHeads + h] = positions[t];
      if (this.validBuffer) this.validBuffer.fill(1, (this.length + t) * this.numKvHeads, (this.length + t + 1) * this.numKvHeads);
    }
    this.length += q;
  }

  /**
   * Keeps, per head, only the slots listed (ascending or not) and compacts. `keepPerHead[h]` are slot indices.
   * Heads may keep different counts; shorter heads leave invalid slots at the end.
   */
  retain(keepPerHead: ArrayLike<number>[]): void {
    if (keepPerHead.length !== this.numKvHeads) throw new Error(`retain: expected ${this.numKvHeads} heads, got ${keepPerHead.length}`);
    const slots = Math.max(0, ...Array.from(keepPerHead, (k) => k.length));
    const d = this.headDim;
    const heads = this.numKvHeads;
    const keys = allocateKv(this.dtype, Math.max(slots, 1) * heads * d);
    const values = allocateKv(this.dtype, Math.max(slots, 1) * heads * d);
    const positions = new Int32Array(Math.max(slots, 1) * heads).fill(-1);
    const uniform = keepPerHead.every((k) => k.length === slots);
    const valid = uniform ? null : new Uint8Array(Math.max(slots, 1) * heads);
    for (let h = 0; h < heads; h++) {
      const keep = Array.from(keepPerHead[h]).sort((a, b) => a - b);
      for (let i = 0; i < keep.length; i++) {
        const src = keep[i];
        if (src < 0 || src >= this.length) throw new Error(`retain: slot ${src} out of range 0..${this.length - 1}`);
        if (this.validBuffer && !this.validBuffer[src * heads + h]) throw new Error(`retain: slot ${src} is empty for head ${h}`);
        keys.set(this.keyBuffer.subarray((src * heads + h) * d, (src * heads + h + 1) * d) as never, (i * heads + h) * d);
        values.set(this.valueBuffer.subarray((src * heads + h) * d, (src * heads + h + 1) * d) as never, (i * heads + h) * d);
        positions[i * heads + h] = this.positionBuffer[src * heads + h];
        if (valid) valid[i * heads + h] = 1;
      }
    }
    this.keyBuffer = keys;
    this.valueBuffer = values;
    this.positionBuffer = positions;
    this.validBuffer = valid;
    this.length = slots;
  }

  /**
   * Removes one slot per head (`slots[h]`), shifting that head's later slots down by one, without reallocating:
   * decode-time eviction (StreamingLLM, H2O, TOVA) calls this every step. Requires every head to hold every slot.
   */
  removePerHead(slots: ArrayLike<number>): void {
    const heads = this.numKvHeads;
    const d = this.headDim;
    if (slots.length !== heads) throw new Error(`removePerHead: expected ${heads} slots, got ${slots.length}`);
    if (this.validBuffer) throw new Error('removePerHead: heads hold different slots; use retain');
    for (let h = 0; h < heads; h++) {
      if (slots[h] < 0 || slots[h] >= this.length) throw new Error(`removePerHead: slot ${slots[h]} out of range 0..${this.length - 1}`);
    }
    const row = heads * d;
    const same = Array.from(slots).every((s) => s === slots[0]);
    if (same) {
      const from = slots[0];
      this.keyBuffer.copyWithin(from * row, (from + 1) * row, this.length * row);
      this.valueBuffer.copyWithin(from * row, (from + 1) * row, this.length * row);
      this.positionBuffer.copyWithin(from * heads, (from + 1) * heads, this.length * heads);
    } else {
      for (let h = 0; h < heads; h++) {
        for (let s = slots[h]; s < this.length - 1; s++) {
          const to = (s * heads + h) * d;
          const from = to + row;
          this.keyBuffer.copyWithin(to, from, from + d);
          this.valueBuffer.copyWithin(to, from, from + d);
          this.positionBuffer[s * heads + h] = this.positionBuffer[(s + 1) * heads + h];
        }
      }
    }
    this.length--;
  }

  view(): LayerKV {
    const row = this.numKvHeads * this.headDim;
    const elements = this.length * row;
    const base = {
      numKvHeads: this.numKvHeads,
      headDim: this.headDim,
      length: this.length,
      valid: this.validBuffer ? this.validBuffer.subarray(0, this.length * this.numKvHeads) : null,
      positions: this.positionBuffer.subarray(0, this.length * this.numKvHeads),
    };
    return kvView(base, this.dtype, this.keyBuffer.subarray(0, elements), this.valueBuffer.subarray(0, elements));
  }

  /** Tokens held per head (valid slots). */
  tokensPerHead(): number[] {
    const counts = new Array<number>(this.numKvHeads).fill(0);
    for (let s = 0; s < this.length; s++) {
      for (let h = 0; h < this.numKvHeads; h++) {
        if (!this.validBuffer || this.validBuffer[s * this.numKvHeads + h]) counts[h]++;
      }
    }
    return counts;
  }

  /** Bytes of the arrays this cache holds for its slots in use (keys, values, positions, validity). */
  bytes(): number {
    const row = this.numKvHeads * this.headDim;
    return (
      2 * this.length * row * this.keyBuffer.BYTES_PER_ELEMENT +
      this.length * this.numKvHeads * Int32Array.BYTES_PER_ELEMENT +
      (this.validBuffer ? this.length * this.numKvHeads : 0)
    );
  }

  clone(): DenseLayerCache {
    const copy = new DenseLayerCache(this.numKvHeads, this.headDim, Math.max(this.length, 1), this.dtype);
    const v = this.view();
    const elements = this.length * this.numKvHeads * this.headDim;
    copy.keyBuffer.set(this.keyBuffer.subarray(0, elements) as never);
    copy.valueBuffer.set(this.valueBuffer.subarray(0, elements) as never);
    copy.positionBuffer.set(v.positions);
    if (v.valid) copy.validBuffer = new Uint8Array(copy.capacity * this.numKvHeads).fill(0);
    if (v.valid && copy.validBuffer) copy.validBuffer.set(v.valid);
    copy.length = this.length;
    return copy;
  }
}

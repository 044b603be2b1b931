// A quantized KV cache: per KV head, bit-packed codes with their scales/zero-points, plus an fp32 residual of recent tokens.
// Attention reads a dequantized copy kept in step with the store (a fused kernel would read the codes directly), so it is not counted as held.
import type { LayerAttention } from '../../model/types';
import type { DenseLayerCache, LayerKV } from '../cache';
import type { LayerDecodeEviction } from '../definition';
import { type CacheBytes, type MethodCache, ZERO_BYTES, addBytes } from '../method';
import { BitStream, ParamList } from './bits';
import { type Codec, type QuantScheme, loadParam, makeCodec, storeParam } from './scheme';

/** Groups in one token's row of `d` channels; fp8's group is the whole row (Infinity). */
function groupsPerRow(d: number, group: number): number {
  return Math.ceil(d / Math.min(group, d));
}

/** Codes, scales and zero-points of one tensor (keys or values) of one head. */
class GroupStore {
  readonly codes: BitStream;
  readonly scales: ParamList;
  readonly zeros: ParamList | null;
  private scratch = new Uint8Array(0);

  constructor(
    private readonly codec: Codec,
    private readonly scheme: QuantScheme,
  ) {
    this.codes = new BitStream(scheme.bits);
    this.scales = new ParamList(scheme.scaleStorage);
    this.zeros = codec.hasZero ? new ParamList(scheme.scaleStorage) : null;
  }

  /** Quantizes one group, stores it, and returns the dequantized values read back from the store into `out`. */
  roundTrip(group: Float32Array, out: Float32Array): void {
    if (this.scratch.length < group.length) this.scratch = new Uint8Array(group.length);
    const codes = this.scratch.subarray(0, group.length);
    const params = this.codec.encode(group, codes);
    const start = this.codes.write(codes);
    const index = this.scales.push(storeParam(params.scale, this.scheme.scaleStorage));
    if (this.zeros) this.zeros.push(storeParam(params.zero, this.scheme.scaleStorage));
    this.codes.read(start, codes);
    const stored = {
      scale: loadParam(this.scales.get(index), this.scheme.scaleStorage),
      zero: this.zeros ? loadParam(this.zeros.get(index), this.scheme.scaleStorage) : 0,
    };
    this.codec.decode(codes, stored, out);
  }

  /** Dequantizes the stored group `group`, whose `out.length` codes start at code `firstCode`. */
  readGroup(group: number, firstCode: number, out: Float32Array): void {
    if (this.scratch.length < out.length) this.scratch = new Uint8Array(out.length);
    const codes = this.scratch.subarray(0, out.length);
    this.codes.read(firstCode * this.scheme.bits, codes);
    const stored = {
      scale: loadParam(this.scales.get(group), this.scheme.scaleStorage),
      zero: this.zeros ? loadParam(this.zeros.get(group), this.scheme.scaleStorage) : 0,
    };
    this.codec.decode(codes, stored, out);
  }

  /** Removes one token stored as `groups` consecutive groups of `codes` codes in all (per-token layouts only). */
  removeToken(token: number, groups: number, codes: number): void {
    this.codes.removeCodes(token * codes, codes);
    this.scales.remove(token * groups, groups);
    this.zeros?.remove(token * groups, groups);
  }
}

/** Growable fp32 rows, oldest first (the residual window). Dropping from the front only moves a start index. */
export class RowQueue {
  private buffer: Float32Array;
  private front = 0;
  count = 0;

  constructor(private readonly width: number) {
    this.buffer = new Float32Array(64 * width);
  }

  push(row: Float32Array): void {
    if ((this.front + this.count + 1) * this.width > this.buffer.length) {
      // Reclaim the dropped front in place when that is enough room; otherwise grow.
      if ((this.count + 1) * this.width * 2 <= this.buffer.length) {
        this.buffer.copyWithin(0, this.front * this.width, (this.front + this.count) * this.width);
      } else {
        const next = new Float32Array(2 * (this.count + 1) * this.width);
        next.set(this.used());
        this.buffer = next;
      }
      this.front = 0;
    }
    this.buffer.set(row, (this.front + this.count) * this.width);
    this.count++;
  }

  row(i: number): Float32Array {
    return this.buffer.subarray((this.front + i) * this.width, (this.front + i + 1) * this.width);
  }

  value(i: number, column: number): number {
    return this.buffer[(this.front + i) * this.width + column];
  }

  dropFront(n: number): void {
    this.front += n;
    this.count -= n;
  }

  /** The rows held (the byteLength the cache reports as its full-precision residual). */
  used(): Float32Array {
    return this.buffer.subarray(this.front * this.width, (this.front + this.count) * this.width);
  }
}

class HeadStore {
  /** This head's view slots, oldest first; the first `quantized` are stored quantized, the rest in the residual. */
  readonly slots: number[] = [];
  quantized = 0;
  readonly residualKeys: RowQueue;
  readonly residualValues: RowQueue;
  readonly keys: GroupStore;
  readonly values: GroupStore;

  constructor(codec: Codec, scheme: QuantScheme, headDim: number) {
    this.residualKeys = new RowQueue(headDim);
    this.residualValues = new RowQueue(headDim);
    this.keys = new GroupStore(codec, scheme);
    this.values = new GroupStore(codec, scheme);
  }
}

class QuantizedLayer {
  private readonly heads: HeadStore[];
  /** Tokens moved out of the residual at once: a whole key group when keys are grouped along tokens. */
  private readonly chunk: number;
  quantizedElements = 0;

  constructor(
    /** The dequantized view; starts as the (already selected) full-precision prefill cache and is owned from now on. */
    readonly view: DenseLayerCache,
    private readonly scheme: QuantScheme,
  ) {
    const codec = makeCodec(scheme);
    this.chunk = scheme.keyAxis === 'tokens' ? scheme.keyGroup : 1;
    this.heads = Array.from({ length: view.numKvHeads }, () => new HeadStore(codec, scheme, view.headDim));
    const kv = view.view();
    for (let slot = 0; slot < kv.length; slot++) this.admit(kv, slot);
    this.flush();
  }

  private admit(kv: LayerKV, slot: number): void {
    const { numKvHeads: heads, headDim: d } = this.view;
    for (let h = 0; h < heads; h++) {
      if (kv.valid && !kv.valid[slot * heads + h]) continue;
      const head = this.heads[h];
      head.slots.push(slot);
      head.residualKeys.push(kv.keys.subarray((slot * heads + h) * d, (slot * heads + h + 1) * d));
      head.residualValues.push(kv.values.subarray((slot * heads + h) * d, (slot * heads + h + 1) * d));
    }
  }

  append(keys: Float32Array, values: Float32Array, positions: ArrayLike<number>): void {
    this.view.append(keys, values, positions);
    const kv = this.view.view();
    for (let slot = kv.length - positions.length; slot < kv.length; slot++) this.admit(kv, slot);
    this.flush();
  }

  private flush(): void {
    const kv = this.view.view();
    for (let h = 0; h < this.heads.length; h++) {
      const head = this.heads[h];
      while (head.residualKeys.count - this.scheme.residual >= this.chunk) this.quantizeOldest(kv, h, this.chunk);
    }
  }

  /** Moves the oldest `n` residual tokens of head `h` into the quantized store and writes their dequantized values to the view. */
  private quantizeOldest(kv: LayerKV, h: number, n: number): void {
    const { numKvHeads: heads, headDim: d } = this.view;
    const head = this.heads[h];
    const slots = head.slots.slice(head.quantized, head.quantized + n);
    const at = (slot: number, c: number) => (slot * heads + h) * d + c;
    if (this.scheme.keyAxis === 'tokens') {
      const group = new Float32Array(n);
      const out = new Float32Array(n);
      for (let c = 0; c < d; c++) {
        for (let t = 0; t < n; t++) group[t] = head.residualKeys.value(t, c);
        head.keys.roundTrip(group, out);
        for (let t = 0; t < n; t++) kv.keys[at(slots[t], c)] = out[t];
      }
    } else {
      for (let t = 0; t < n; t++) this.quantizeRow(head.keys, head.residualKeys.row(t), kv.keys, at(slots[t], 0), this.scheme.keyGroup);
    }
    for (let t = 0; t < n; t++) this.quantizeRow(head.values, head.residualValues.row(t), kv.values, at(slots[t], 0), this.scheme.valueGroup);
    head.residualKeys.dropFront(n);
    head.residualValues.dropFront(n);
    head.quantized += n;
    this.quantizedElements += 2 * n * d;
  }

  private quantizeRow(store: GroupStore, row: Float32Array, target: Float32Array, offset: number, group: number): void {
    for (let c = 0; c < row.length; c += group) {
      const end = Math.min(row.length, c + group);
      store.roundTrip(row.subarray(c, end), target.subarray(offset + c, offset + end));
    }
  }

  /** Evicts one token per head (decode-time eviction over a per-token layout): from the store and from the view. */
  removePerHead(victims: number[]): void {
    const d = this.view.headDim;
    if (this.scheme.keyAxis !== 'channels' || this.scheme.residual > 0) {
      throw new Error(`${this.scheme.name} stores tokens in shared groups and cannot evict single tokens`);
    }
    victims.forEach((slot, h) => {
      const head = this.heads[h];
      const index = head.slots.indexOf(slot);
      if (index < 0 || index >= head.quantized) throw new Error(`removePerHead: slot ${slot} is not a quantized token of head ${h}`);
      head.keys.removeToken(index, groupsPerRow(d, this.scheme.keyGroup), d);
      head.values.removeToken(index, groupsPerRow(d, this.scheme.valueGroup), d);
      head.quantized--;
      head.slots.splice(index, 1);
      for (let i = index; i < head.slots.length; i++) head.slots[i]--;
    });
    this.quantizedElements -= 2 * d * victims.length;
    this.view.removePerHead(victims);
  }

  /**
   * Rebuilds keys and values from the store alone (packed codes, scales, zero-points, residual), laid out like the view:
   * the view attention reads must be exactly this.
   */
  readBack(): { keys: Float32Array; values: Float32Array } {
    const { numKvHeads: heads, headDim: d, length } = this.view;
    const keys = new Float32Array(length * heads * d);
    const values = new Float32Array(length * heads * d);
    const at = (slot: number, h: number) => (slot * heads + h) * d;
    const perToken = (store: GroupStore, group: number, target: Float32Array, token: number, slot: number, h: number) => {
      const width = Math.min(group, d);
      const groups = groupsPerRow(d, group);
      for (let g = 0; g < groups; g++) {
        const start = g * width;
        const end = Math.min(d, start + width);
        store.readGroup(token * groups + g, token * d + start, target.subarray(at(slot, h) + start, at(slot, h) + end));
      }
    };
    this.heads.forEach((head, h) => {
      for (let t = 0; t < head.quantized; t++) {
        perToken(head.values, this.scheme.valueGroup, values, t, head.slots[t], h);
        if (this.scheme.keyAxis === 'channels') perToken(head.keys, this.scheme.keyGroup, keys, t, head.slots[t], h);
      }
      if (this.scheme.keyAxis === 'tokens') {
        const n = this.scheme.keyGroup;
        const out = new Float32Array(n);
        for (let chunk = 0; chunk * n < head.quantized; chunk++) {
          for (let c = 0; c < d; c++) {
            head.keys.readGroup(chunk * d + c, (chunk * d + c) * n, out);
            for (let t = 0; t < n; t++) keys[at(head.slots[chunk * n + t], h) + c] = out[t];
          }
        }
      }
      for (let r = 0; r < head.residualKeys.count; r++) {
        keys.set(head.residualKeys.row(r), at(head.slots[head.quantized + r], h));
        values.set(head.residualValues.row(r), at(head.slots[head.quantized + r], h));
      }
    });
    return { keys, values };
  }

  /** Tokens per head as the store holds them: quantized plus residual. */
  tokensPerHead(): number[] {
    return this.heads.map((head) => head.quantized + head.residualKeys.count);
  }

  bytes(): CacheBytes {
    const kv = this.view.view();
    const b = { ...ZERO_BYTES };
    for (const head of this.heads) {
      for (const store of [head.keys, head.values]) {
        b.packed += store.codes.used().byteLength;
        b.scales += store.scales.used().byteLength;
        b.zeroPoints += store.zeros ? store.zeros.used().byteLength : 0;
      }
      b.fullPrecision += head.residualKeys.used().byteLength + head.residualValues.used().byteLength;
    }
    b.positions = kv.positions.byteLength + (kv.valid ? kv.valid.byteLength : 0);
    b.held = b.packed + b.scales + b.zeroPoints + b.fullPrecision + b.positions;
    b.active = b.held;
    return b;
  }
}

export class QuantizedCache implements MethodCache {
  private readonly layers: QuantizedLayer[];
  readonly bits: number;

  /**
   * Takes ownership of `layers` (already cloned and, when composed with eviction, already reduced to the selection).
   * `evictions` (per layer) keep evicting while decoding; only per-token layouts support them.
   */
  constructor(
    layers: DenseLayerCache[],
    scheme: QuantScheme,
    private readonly evictions: (LayerDecodeEviction | null)[] = [],
  ) {
    this.bits = scheme.bits;
    this.layers = layers.map((layer) => new QuantizedLayer(layer, scheme));
  }

  afterStep(attention: LayerAttention[] | null): void {
    this.evictions.forEach((eviction, l) => {
      const victims = eviction?.afterStep(this.layers[l].view, attention?.[l] ?? null);
      if (victims) this.layers[l].removePerHead(victims);
    });
  }

  /** Keys and values of one layer decoded from the store alone, in the view's layout. */
  readBack(layer: number): { keys: Float32Array; values: Float32Array } {
    return this.layers[layer].readBack();
  }

  views(): LayerKV[] {
    return this.layers.map((layer) => layer.view.view());
  }

  append(layer: number, keys: Float32Array, values: Float32Array, positions: ArrayLike<number>): void {
    this.layers[layer].append(keys, values, positions);
  }

  tokensPerHead(): number[][] {
    return this.layers.map((layer) => layer.tokensPerHead());
  }

  bytes(): CacheBytes {
    return this.layers.reduce((sum, layer) => addBytes(sum, layer.bytes()), { ...ZERO_BYTES });
  }

  quantizedElements(): number {
    return this.layers.reduce((sum, layer) => sum + layer.quantizedElements, 0);
  }
}

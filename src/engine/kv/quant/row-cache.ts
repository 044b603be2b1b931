// A KV cache that holds every head's key and value row of each token as the bytes of a row format (llama.cpp's
// ggml blocks, vLLM's fp8 codes), plus the slot bookkeeping (original positions, validity) in a cache of head size 0.
// Between decode steps it holds only those bytes; views() decodes them into fresh arrays (fp16 patterns in an fp16 cache,
// fp32 otherwise) for the one forward pass that reads them, which is working memory and not counted as held (as for QuantizedCache).
import type { ModelConfig } from '../../model/config';
import type { LayerAttention } from '../../model/types';
import { DenseLayerCache, kvView, type LayerKV, type PackedKvCodes, type QuantizedPast } from '../cache';
import type { KvDtype } from '../kv-dtype';
import { halfRounder } from './round-half';
import type { LayerDecodeEviction } from '../definition';
import { type CacheBytes, type MethodCache, ZERO_BYTES, addBytes } from '../method';
import type { RowCodec, RowPacking, RowQuantizer } from './row-codec';

/** Rows of one head in slot order, `rowBytes` each, in a buffer that grows geometrically. */
class RowStore {
  private buffer: Uint8Array;
  private view: DataView;
  count = 0;

  constructor(
    private readonly codec: RowCodec,
    capacity: number,
  ) {
    this.buffer = new Uint8Array(Math.max(1, capacity) * codec.rowBytes);
    this.view = new DataView(this.buffer.buffer);
  }

  push(row: Float32Array): void {
    const size = this.codec.rowBytes;
    if ((this.count + 1) * size > this.buffer.length) {
      const next = new Uint8Array(Math.ceil((this.count + 1) * 1.5 + 16) * size);
      next.set(this.used());
      this.buffer = next;
      this.view = new DataView(next.buffer);
    }
    this.codec.encode(row, this.view, this.count * size);
    this.count++;
  }

  remove(index: number): void {
    const size = this.codec.rowBytes;
    this.buffer.copyWithin(index * size, (index + 1) * size, this.count * size);
    this.count--;
  }

  decode(index: number, target: Float32Array, to: number): void {
    this.codec.decode(this.buffer, this.view, index * this.codec.rowBytes, target, to);
  }

  pack(index: number, packing: RowPacking, codes: Uint8Array, codeAt: number, scales: Float32Array, zeros: Float32Array, paramAt: number): void {
    packing.write(this.buffer, this.view, index * this.codec.rowBytes, codes, codeAt, scales, zeros, paramAt);
  }

  /** Row `index` as fp16 patterns: by the codec's table where it has one, else decoded into `scratch` and rounded (ties to even). */
  decodeHalf(index: number, target: Uint16Array, to: number, scratch: Float32Array, round: ReturnType<typeof halfRounder>): void {
    const at = index * this.codec.rowBytes;
    if (this.codec.decodeHalf) {
      this.codec.decodeHalf(this.buffer, this.view, at, target, to);
      return;
    }
    this.codec.decode(this.buffer, this.view, at, scratch, 0);
    round(0, scratch.length, target, to);
  }

  used(): Uint8Array {
    return this.buffer.subarray(0, this.count * this.codec.rowBytes);
  }
}

const NO_DATA = new Float32Array(0);

function sameTable(a: Float32Array | null, b: Float32Array | null): boolean {
  if (a === null || b === null) return a === b;
  return a.length === b.length && a.every((v, i) => v === b[i]);
}


/**
 * The slots of `source` (per head: its original positions in slot order) as a cache of head size 0, and per head the
 * source slots in that order. Heads that hold different tokens share slots by rank: slot i of head h is its i-th token.
 */
function bookOf(source: LayerKV): { book: DenseLayerCache; order: number[][] } {
  const heads = source.numKvHeads;
  const order: number[][] = Array.from({ length: heads }, () => []);
  for (let s = 0; s < source.length; s++) {
    for (let h = 0; h < heads; h++) if (!source.valid || source.valid[s * heads + h]) order[h].push(s);
  }
  order.forEach((slots, h) => slots.sort((a, b) => source.positions[a * heads + h] - source.positions[b * heads + h] || a - b));
  const positionsOf = (h: number) => order[h].map((s) => source.positions[s * heads + h]);
  const shared = positionsOf(0);
  const aligned = order.every((_, h) => positionsOf(h).every((p, i) => p === shared[i]) && order[h].length === shared.length);
  if (aligned) {
    const book = new DenseLayerCache(heads, 0, Math.max(shared.length, 1));
    book.append(NO_DATA, NO_DATA, shared);
    return { book, order };
  }
  // Write every position any head holds once, then let each head keep its own (a cache takes positions per slot, not per head).
  const all = Array.from(new Set(order.flatMap((_, h) => positionsOf(h)))).sort((a, b) => a - b);
  const rank = new Map(all.map((p, i) => [p, i]));
  const book = new DenseLayerCache(heads, 0, Math.max(all.length, 1));
  book.append(NO_DATA, NO_DATA, all);
  book.retain(order.map((_, h) => positionsOf(h).map((p) => rank.get(p) as number)));
  return { book, order };
}

class RowLayer {
  readonly book: DenseLayerCache;
  private readonly keys: RowStore[];
  private readonly values: RowStore[];
  /** Per head, the codecs of its key and value rows. */
  private readonly keyCodecs: RowCodec[];
  private readonly valueCodecs: RowCodec[];
  readonly numKvHeads: number;
  readonly headDim: number;
  private readonly dtype: KvDtype;

  constructor(source: DenseLayerCache, codecs: { keys: RowCodec | RowCodec[]; values: RowCodec | RowCodec[] }) {
    this.numKvHeads = source.numKvHeads;
    this.headDim = source.headDim;
    this.dtype = source.dtype;
    const perHead = (codec: RowCodec | RowCodec[]) => (Array.isArray(codec) ? codec : new Array<RowCodec>(this.numKvHeads).fill(codec));
    this.keyCodecs = perHead(codecs.keys);
    this.valueCodecs = perHead(codecs.values);
    const kv = source.view();
    const { book, order } = bookOf(kv);
    this.book = book;
    const d = this.headDim;
    const heads = this.numKvHeads;
    this.keys = order.map((slots, h) => new RowStore(this.keyCodecs[h], slots.length));
    this.values = order.map((slots, h) => new RowStore(this.valueCodecs[h], slots.length));
    order.forEach((slots, h) => {
      for (const s of slots) {
        const at = (s * heads + h) * d;
        this.keys[h].push(kv.keys.subarray(at, at + d));
        this.values[h].push(kv.values.subarray(at, at + d));
      }
    });
  }

  append(keys: Float32Array, values: Float32Array, positions: ArrayLike<number>): void {
    const { numKvHeads: heads, headDim: d } = this;
    const q = positions.length;
    if (keys.length !== q * heads * d || values.length !== q * heads * d) {
      throw new Error(`append: expected ${q * heads * d} key/value elements for ${q} tokens, got ${keys.length}/${values.length}`);
    }
    this.book.append(NO_DATA, NO_DATA, positions);
    for (let t = 0; t < q; t++) {
      for (let h = 0; h < heads; h++) {
        const at = (t * heads + h) * d;
        this.keys[h].push(keys.subarray(at, at + d));
        this.values[h].push(values.subarray(at, at + d));
      }
    }
  }

  /** One slot per head, as decode-time evictions return them (every head holds every slot then). */
  removePerHead(victims: number[]): void {
    this.book.removePerHead(victims);
    victims.forEach((slot, h) => {
      this.keys[h].remove(slot);
      this.values[h].remove(slot);
    });
  }

  /**
   * What attention reads. When the graph can read the rows as held (`quantized`: the same codes and block parameters,
   * dequantized in the graph), that, with fp32 keys and values decoded only if read. Otherwise, in an fp16 cache (the
   * prefill's dtype), the rows' values rounded to fp16 as the forward pass would round them; else fp32 values.
   */
  view(): LayerKV {
    const slots = this.book.view();
    const { numKvHeads: heads, headDim: d } = this;
    const base = { valid: slots.valid, positions: slots.positions, length: slots.length, numKvHeads: heads, headDim: d };
    const quantized = this.packed(base);
    if (quantized) {
      let decoded: LayerKV | null = null;
      const read = () => (decoded ??= this.decodeRows(base, false));
      return {
        ...base,
        get keys(): Float32Array {
          return read().keys;
        },
        get values(): Float32Array {
          return read().values;
        },
        quantized,
      };
    }
    return this.decodeRows(base, this.dtype === 'fp16');
  }

  /**
   * The rows as packed codes for the graph, when every head shares one key codec and one value codec that have a packed
   * form of the same width and table, and every head holds every slot. Null otherwise.
   */
  private packed(base: Omit<LayerKV, 'keys' | 'values'>): QuantizedPast | null {
    const { numKvHeads: heads, headDim: d } = this;
    const [keyCodec, valueCodec] = [this.keyCodecs[0], this.valueCodecs[0]];
    const keyPacking = keyCodec.packing;
    const valuePacking = valueCodec.packing;
    if (base.valid || !keyPacking || !valuePacking || keyPacking.bits !== valuePacking.bits) return null;
    if (this.keyCodecs.some((c) => c !== keyCodec) || this.valueCodecs.some((c) => c !== valueCodec)) return null;
    if (!sameTable(keyPacking.table, valuePacking.table)) return null;
    const tokens = base.length;
    const bits = keyPacking.bits;
    const pack = (stores: RowStore[], packing: RowPacking): PackedKvCodes => {
      const groups = d / packing.group;
      const bytesPerRow = (d * bits) / 8;
      return {
        codeBytes: heads * tokens * bytesPerRow,
        paramCount: heads * tokens * groups,
        shape: [heads, tokens, groups, packing.group],
        paramShape: [heads, tokens, groups, 1],
        write: (codes, scales, zeros) =>
          stores.forEach((store, h) => {
            for (let r = 0; r < tokens; r++) store.pack(r, packing, codes, (h * tokens + r) * bytesPerRow, scales, zeros, (h * tokens + r) * groups);
          }),
      };
    };
    const none = new Uint16Array(0);
    return {
      bits,
      codesPerByte: 8 / bits,
      table: keyPacking.table,
      keysPerChannel: false,
      tokens,
      keys: pack(this.keys, keyPacking),
      values: pack(this.values, valuePacking),
      residual: kvView({ numKvHeads: heads, headDim: d, length: 0, valid: null, positions: new Int32Array(0) }, 'fp16', none, none),
    };
  }

  private decodeRows(base: Omit<LayerKV, 'keys' | 'values'>, half: boolean): LayerKV {
    const { numKvHeads: heads, headDim: d } = this;
    const keys = half ? new Uint16Array(base.length * heads * d) : new Float32Array(base.length * heads * d);
    const values = half ? new Uint16Array(base.length * heads * d) : new Float32Array(base.length * heads * d);
    const scratch = new Float32Array(d);
    const round = halfRounder(scratch);
    for (let h = 0; h < heads; h++) {
      let row = 0;
      for (let s = 0; s < base.length; s++) {
        if (base.valid && !base.valid[s * heads + h]) continue;
        const at = (s * heads + h) * d;
        if (half) {
          this.keys[h].decodeHalf(row, keys as Uint16Array, at, scratch, round);
          this.values[h].decodeHalf(row, values as Uint16Array, at, scratch, round);
        } else {
          this.keys[h].decode(row, keys as Float32Array, at);
          this.values[h].decode(row, values as Float32Array, at);
        }
        row++;
      }
    }
    return kvView(base, half ? 'fp16' : 'fp32', keys, values);
  }

  tokensPerHead(): number[] {
    return this.keys.map((store) => store.count);
  }

  quantizedElements(): number {
    let elements = 0;
    this.keys.forEach((store, h) => {
      const quantized = (this.keyCodecs[h].bits === null ? 0 : 1) + (this.valueCodecs[h].bits === null ? 0 : 1);
      elements += store.count * this.headDim * quantized;
    });
    return elements;
  }

  bytes(): CacheBytes {
    const b = { ...ZERO_BYTES };
    // A codec shared by every head holds its tensor-level bytes once; per-head codecs each hold their own.
    const counted = new Set<RowCodec>();
    for (const [stores, codecs] of [
      [this.keys, this.keyCodecs],
      [this.values, this.valueCodecs],
    ] as const) {
      stores.forEach((store, h) => {
        const codec = codecs[h];
        const rows = store.count;
        if (store.used().byteLength !== rows * codec.rowBytes) throw new Error(`${codec.name}: ${store.used().byteLength} bytes held for ${rows} rows of ${codec.rowBytes}`);
        b.packed += rows * codec.parts.packed;
        b.scales += rows * codec.parts.scales + (counted.has(codec) ? 0 : codec.tensorBytes);
        b.zeroPoints += rows * codec.parts.zeroPoints;
        b.fullPrecision += rows * codec.parts.fullPrecision;
        counted.add(codec);
      });
    }
    const slots = this.book.view();
    b.positions = slots.positions.byteLength + (slots.valid ? slots.valid.byteLength : 0);
    b.held = b.packed + b.scales + b.zeroPoints + b.fullPrecision + b.positions;
    b.active = b.held;
    return b;
  }
}

export class RowQuantizedCache implements MethodCache {
  private readonly layers: RowLayer[];
  readonly bits: number | null;

  /** Encodes `layers` (clones, already reduced to a selection when composed with eviction) and keeps no reference to them. */
  constructor(
    layers: DenseLayerCache[],
    quantizer: RowQuantizer,
    config: ModelConfig,
    private readonly evictions: (LayerDecodeEviction | null)[] = [],
    stats: LayerAttention[] | null = null,
  ) {
    this.bits = quantizer.bits;
    this.layers = layers.map((layer, l) => new RowLayer(layer, quantizer.codecs(layer, l, config, stats?.[l])));
  }

  afterStep(attention: LayerAttention[] | null): void {
    this.evictions.forEach((eviction, l) => {
      const victims = eviction?.afterStep(this.layers[l].book, attention?.[l] ?? null);
      if (victims) this.layers[l].removePerHead(victims);
    });
  }

  views(): LayerKV[] {
    return this.layers.map((layer) => layer.view());
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
    return this.layers.reduce((sum, layer) => sum + layer.quantizedElements(), 0);
  }
}

// A quantized KV cache: per KV head, bit-packed codes with their scales/zero-points, plus a residual of recent tokens
// in the cache's full-precision dtype (fp16 by default, as KIVI keeps it).
// Between decode steps the cache holds only that store and the slot bookkeeping (original positions, validity), whose used
// part is exactly what bytes().held counts (growable buffers keep at most about as much again as spare capacity).
// views() offers the store as held (`quantized`: codes, group parameters, dense residual), which the ONNX forward reads
// and dequantizes inside its graph one layer at a time; keys/values dequantize into fresh fp32 arrays only when a reader
// asks for them (the reference forward, per-head layouts), transient working memory that is not part of held.
import { allocateKv, decodeKv, encodeKv, type KvArray, type KvDtype } from '../kv-dtype';
import type { LayerAttention } from '../../model/types';
import { DenseLayerCache, kvView, type LayerKV, type PackedKvCodes, type QuantizedPast } from '../cache';
import { KvlensError } from '../../errors';
import type { LayerDecodeEviction } from '../definition';
import { type CacheBytes, type MethodCache, ZERO_BYTES, addBytes } from '../method';
import { BitStream, ParamList } from './bits';
import { halfTable } from './half';
import { type Codec, type QuantScheme, makeCodec, storeParam } from './scheme';

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
  private mirror: { offset: number; count: number; scales: Float32Array; zeros: Float32Array } | null = null;

  constructor(
    private readonly codec: Codec,
    private readonly scheme: QuantScheme,
  ) {
    this.codes = new BitStream(scheme.bits);
    this.scales = new ParamList(scheme.scaleStorage);
    this.zeros = codec.hasZero ? new ParamList(scheme.scaleStorage) : null;
  }

  /** Quantizes one group and appends its codes and parameters. */
  store(group: Float32Array): void {
    if (this.scratch.length < group.length) this.scratch = new Uint8Array(group.length);
    const codes = this.scratch.subarray(0, group.length);
    this.encodeGroup(group, codes);
    this.codes.write(codes);
  }

  /** Quantizes one group into `codes` and appends only its parameters (the caller writes the codes in its own order). */
  encodeGroup(group: Float32Array, codes: Uint8Array): void {
    const params = this.codec.encode(group, codes);
    this.scales.push(storeParam(params.scale, this.scheme.scaleStorage));
    if (this.zeros) this.zeros.push(storeParam(params.zero, this.scheme.scaleStorage));
  }

  /**
   * The parameters of the first `groups` groups as fp32 numbers (zero-points of codecs without them: 0), with a code
   * offset folded into the zero-point when the reader decodes raw codes (int8's code = q + 128: code·scale - 128·scale).
   */
  params(groups: number, scales: Float32Array, zeros: Float32Array, at: number, offset: number): void {
    const mirror = this.decodedParams(groups, offset);
    scales.set(mirror.scales.subarray(0, groups), at);
    zeros.set(mirror.zeros.subarray(0, groups), at);
  }

  /**
   * The parameters as fp32 numbers, decoded once per group rather than on every decode step (the graph reads all of them
   * each step, and converting the stored fp16 values cost about a sixth of a KIVI step). Working memory beside the store,
   * not part of what it holds; dropped whenever a token is removed.
   */
  private decodedParams(groups: number, offset: number): { scales: Float32Array; zeros: Float32Array } {
    let mirror = this.mirror;
    if (!mirror || mirror.offset !== offset) mirror = this.mirror = { offset, count: 0, scales: new Float32Array(0), zeros: new Float32Array(0) };
    if (mirror.count >= groups) return mirror;
    if (mirror.scales.length < groups) {
      const size = Math.max(groups, Math.ceil(mirror.scales.length * 1.5));
      const grown = { scales: new Float32Array(size), zeros: new Float32Array(size) };
      grown.scales.set(mirror.scales.subarray(0, mirror.count));
      grown.zeros.set(mirror.zeros.subarray(0, mirror.count));
      mirror.scales = grown.scales;
      mirror.zeros = grown.zeros;
    }
    const table = this.scheme.scaleStorage === 'fp16' ? halfTable() : null;
    const storedScales = this.scales.used();
    const storedZeros = this.zeros ? this.zeros.used() : null;
    for (let i = mirror.count; i < groups; i++) {
      const scale = table ? table[storedScales[i]] : storedScales[i];
      mirror.scales[i] = scale;
      mirror.zeros[i] = (storedZeros ? (table ? table[storedZeros[i]] : storedZeros[i]) : 0) - offset * scale;
    }
    mirror.count = groups;
    return mirror;
  }

  /** The stream as decodePerToken/decodePerChannel read it: packed codes and the parameters as numbers (transient, for one views() call). */
  unpack(): { codes: PackedCodes; scales: Float64Array; zeros: Float64Array | null } {
    const load = (list: ParamList) => {
      const stored = list.used();
      const params = new Float64Array(stored.length);
      if (this.scheme.scaleStorage === 'fp16') {
        const table = halfTable();
        for (let i = 0; i < stored.length; i++) params[i] = table[stored[i]];
      } else {
        params.set(stored);
      }
      return params;
    };
    return { codes: { bytes: this.codes.packed, bits: this.scheme.bits }, scales: load(this.scales), zeros: this.zeros ? load(this.zeros) : null };
  }

  /** Removes one token stored as `groups` consecutive groups of `codes` codes in all (per-token layouts only). */
  removeToken(token: number, groups: number, codes: number): void {
    this.mirror = null;
    this.codes.removeCodes(token * codes, codes);
    this.scales.remove(token * groups, groups);
    this.zeros?.remove(token * groups, groups);
  }
}

/**
 * Growable rows in the cache's dtype (fp16 by default), oldest first: the residual window. Dropping from the front
 * only moves a start index.
 */
export class RowQueue {
  // Starts empty: schemes without a residual pass each row straight through, so the queue never needs more than two rows.
  private buffer: KvArray;
  private front = 0;
  count = 0;

  constructor(
    private readonly width: number,
    readonly dtype: KvDtype = 'fp32',
  ) {
    this.buffer = allocateKv(dtype, 0);
  }

  push(row: Float32Array): void {
    if ((this.front + this.count + 1) * this.width > this.buffer.length) {
      // Reclaim the dropped front in place when that is enough room; otherwise grow.
      if ((this.count + 1) * this.width * 2 <= this.buffer.length) {
        this.buffer.copyWithin(0, this.front * this.width, (this.front + this.count) * this.width);
      } else {
        const next = allocateKv(this.dtype, 2 * (this.count + 1) * this.width);
        next.set(this.used() as never);
        this.buffer = next;
      }
      this.front = 0;
    }
    encodeKv(this.dtype, row, this.buffer, (this.front + this.count) * this.width);
    this.count++;
  }

  /** Row i as fp32 values (a view for fp32 rows, a decoded copy for 16-bit ones). */
  row(i: number): Float32Array {
    return decodeKv(this.dtype, this.buffer, (this.front + i) * this.width, this.width);
  }

  dropFront(n: number): void {
    this.front += n;
    this.count -= n;
  }

  /** The rows held, as stored (the byteLength the cache reports as its full-precision residual). */
  used(): KvArray {
    return this.buffer.subarray(this.front * this.width, (this.front + this.count) * this.width);
  }
}

class HeadStore {
  /** This head's slots, oldest first; the first `quantized` are stored quantized, the rest in the residual. */
  readonly slots: number[] = [];
  quantized = 0;
  readonly residualKeys: RowQueue;
  readonly residualValues: RowQueue;
  readonly keys: GroupStore;
  readonly values: GroupStore;

  constructor(codec: Codec, scheme: QuantScheme, headDim: number, dtype: KvDtype) {
    this.residualKeys = new RowQueue(headDim, dtype);
    this.residualValues = new RowQueue(headDim, dtype);
    this.keys = new GroupStore(codec, scheme);
    this.values = new GroupStore(codec, scheme);
  }
}

/** Codes packed back to back at `bits` each, little-endian within a byte, with a spare byte after the last (BitStream.packed). */
interface PackedCodes {
  bytes: Uint8Array;
  bits: number;
}

/**
 * Dequantizes `count` tokens of one head in a per-token layout into `target` ([slot, heads, d]): token t's d codes are
 * contiguous from t·d, its groups of `width` channels from t·ceil(d / width). Module level and monomorphic: it runs
 * over the whole cache every decode step.
 */
function decodePerToken(
  codes: PackedCodes,
  scales: Float64Array,
  zeros: Float64Array | null,
  levels: Float64Array,
  slots: number[],
  count: number,
  layout: { heads: number; h: number; d: number; width: number },
  target: Float32Array,
): void {
  const { heads, h, d, width } = layout;
  const groups = Math.ceil(d / width);
  const { bytes, bits } = codes;
  const mask = (1 << bits) - 1;
  for (let t = 0; t < count; t++) {
    const out = (slots[t] * heads + h) * d;
    const from = t * d;
    for (let g = 0; g < groups; g++) {
      const scale = scales[t * groups + g];
      const zero = zeros === null ? 0 : zeros[t * groups + g];
      const end = Math.min(d, (g + 1) * width);
      for (let c = g * width; c < end; c++) {
        const bit = (from + c) * bits;
        const code = ((bytes[bit >>> 3] | (bytes[(bit >>> 3) + 1] << 8)) >>> (bit & 7)) & mask;
        target[out + c] = zero + levels[code] * scale;
      }
    }
  }
}

/**
 * Dequantizes KIVI's keys of one head: group chunk·d + c holds channel c of the chunk's `width` tokens. Codes are
 * token-major as for per-token layouts (token t's d codes from t·d), so a graph reads them with the same reshape.
 */
function decodePerChannel(
  codes: PackedCodes,
  scales: Float64Array,
  zeros: Float64Array | null,
  levels: Float64Array,
  slots: number[],
  count: number,
  layout: { heads: number; h: number; d: number; width: number },
  target: Float32Array,
): void {
  const { heads, h, d, width: n } = layout;
  const { bytes, bits } = codes;
  const mask = (1 << bits) - 1;
  for (let t = 0; t < count; t++) {
    const out = (slots[t] * heads + h) * d;
    const chunk = Math.floor(t / n);
    for (let c = 0; c < d; c++) {
      const group = chunk * d + c;
      const bit = (t * d + c) * bits;
      const code = ((bytes[bit >>> 3] | (bytes[(bit >>> 3) + 1] << 8)) >>> (bit & 7)) & mask;
      target[out + c] = (zeros === null ? 0 : zeros[group]) + levels[code] * scales[group];
    }
  }
}

const NO_DATA = new Float32Array(0);

/** [256, 8 / bits]: the levels of the codes in each byte value, lowest bits first (BitStream's packing). */
function byteLevels(codec: Codec, bits: number): Float32Array {
  const perByte = 8 / bits;
  const mask = (1 << bits) - 1;
  const table = new Float32Array(256 * perByte);
  for (let byte = 0; byte < 256; byte++) for (let i = 0; i < perByte; i++) table[byte * perByte + i] = codec.levels[(byte >> (i * bits)) & mask];
  return table;
}

/**
 * The slot layout of `source` (length, original positions per head, validity) in a DenseLayerCache of head size 0, so it
 * holds no keys or values. Decode-time evictions receive it: they decide from the slot count and attention statistics alone.
 */
function slotBook(source: DenseLayerCache, name: string): DenseLayerCache {
  const heads = source.numKvHeads;
  const kv = source.view();
  const perHead: number[][] = Array.from({ length: heads }, () => []);
  for (let s = 0; s < kv.length; s++) {
    for (let h = 0; h < heads; h++) if (!kv.valid || kv.valid[s * heads + h]) perHead[h].push(kv.positions[s * heads + h]);
  }
  // One slot per distinct position, then each head keeps its own: DenseLayerCache offers no way to write positions per head.
  const distinct = Array.from(new Set(perHead.flat())).sort((a, b) => a - b);
  const book = new DenseLayerCache(heads, 0, Math.max(distinct.length, 1));
  book.append(NO_DATA, NO_DATA, distinct);
  const index = new Map(distinct.map((p, i) => [p, i]));
  const identical = !kv.valid && kv.length === distinct.length && perHead.every((positions) => positions.every((p, i) => p === distinct[i]));
  if (!identical) book.retain(perHead.map((positions) => positions.map((p) => index.get(p) as number)));
  const rebuilt = book.view();
  const same =
    rebuilt.length === kv.length &&
    rebuilt.positions.every((p, i) => p === kv.positions[i]) &&
    (kv.valid ? rebuilt.valid !== null && rebuilt.valid.every((v, i) => v === kv.valid?.[i]) : rebuilt.valid === null);
  if (!same) {
    throw new KvlensError(
      'a head holds its tokens out of position order (or with gaps before its last slot), a layout the quantized store cannot rebuild',
      `quantize(${name})`,
    );
  }
  return book;
}

class QuantizedLayer {
  private readonly heads: HeadStore[];
  /** Tokens moved out of the residual at once: a whole key group when keys are grouped along tokens. */
  private readonly chunk: number;
  /** Slot count, original positions and validity of what the store holds; no keys or values (head size 0). */
  readonly book: DenseLayerCache;
  readonly numKvHeads: number;
  readonly headDim: number;
  private readonly codec: Codec;
  /** The codec's per-byte level table for readers of packed codes (table codecs only), built once, not per step. */
  private readonly byteTable: Float32Array | null;
  quantizedElements = 0;

  /** Reads `source` (the already selected full-precision prefill cache) into the store; keeps no reference to it. */
  constructor(
    source: DenseLayerCache,
    private readonly scheme: QuantScheme,
  ) {
    const codec = makeCodec(scheme);
    this.codec = codec;
    this.byteTable = codec.codeOffset === null && 8 % scheme.bits === 0 ? byteLevels(codec, scheme.bits) : null;
    this.numKvHeads = source.numKvHeads;
    this.headDim = source.headDim;
    this.chunk = scheme.keyAxis === 'tokens' ? scheme.keyGroup : 1;
    this.heads = Array.from({ length: this.numKvHeads }, () => new HeadStore(codec, scheme, this.headDim, source.dtype));
    this.book = slotBook(source, scheme.name);
    const kv = source.view();
    const { numKvHeads: heads, headDim: d } = this;
    const perHead = Array.from({ length: heads }, () => ({ slots: [] as number[], keys: [] as Float32Array[], values: [] as Float32Array[] }));
    for (let slot = 0; slot < kv.length; slot++) {
      for (let h = 0; h < heads; h++) {
        if (kv.valid && !kv.valid[slot * heads + h]) continue;
        perHead[h].slots.push(slot);
        perHead[h].keys.push(kv.keys.subarray((slot * heads + h) * d, (slot * heads + h + 1) * d));
        perHead[h].values.push(kv.values.subarray((slot * heads + h) * d, (slot * heads + h + 1) * d));
      }
    }
    perHead.forEach((rows, h) => this.admitAll(h, rows.slots, rows.keys, rows.values));
  }

  /**
   * What admitting the tokens one by one ends with, in one pass: the tokens that would leave the residual are quantized
   * straight from their rows (already in the cache's dtype, so a trip through the residual would not change them).
   */
  private admitAll(h: number, slots: number[], keys: Float32Array[], values: Float32Array[]): void {
    const head = this.heads[h];
    const n = slots.length;
    const quantized = Math.max(0, Math.floor((n - this.scheme.residual) / this.chunk) * this.chunk);
    head.slots.push(...slots);
    for (let t = 0; t < quantized; t += this.chunk) this.quantizeRows(h, keys.slice(t, t + this.chunk), values.slice(t, t + this.chunk));
    for (let t = quantized; t < n; t++) {
      head.residualKeys.push(keys[t]);
      head.residualValues.push(values[t]);
    }
  }

  /** Puts one token of head `h` in the residual, then moves whatever no longer fits the residual into the store. */
  private admit(h: number, slot: number, keys: Float32Array, values: Float32Array): void {
    const head = this.heads[h];
    head.slots.push(slot);
    head.residualKeys.push(keys);
    head.residualValues.push(values);
    while (head.residualKeys.count - this.scheme.residual >= this.chunk) this.quantizeOldest(h, this.chunk);
  }

  append(keys: Float32Array, values: Float32Array, positions: ArrayLike<number>): void {
    const { numKvHeads: heads, headDim: d } = this;
    const q = positions.length;
    if (keys.length !== q * heads * d || values.length !== q * heads * d) {
      throw new Error(`append: expected ${q * heads * d} key/value elements for ${q} tokens, got ${keys.length}/${values.length}`);
    }
    const first = this.book.length;
    this.book.append(NO_DATA, NO_DATA, positions);
    for (let t = 0; t < q; t++) {
      for (let h = 0; h < heads; h++) {
        const at = (t * heads + h) * d;
        this.admit(h, first + t, keys.subarray(at, at + d), values.subarray(at, at + d));
      }
    }
  }

  /** Moves the oldest `n` residual tokens of head `h` into the quantized store. */
  private quantizeOldest(h: number, n: number): void {
    const head = this.heads[h];
    const rows = (queue: RowQueue) => Array.from({ length: n }, (_, t) => queue.row(t));
    this.quantizeRows(h, rows(head.residualKeys), rows(head.residualValues));
    head.residualKeys.dropFront(n);
    head.residualValues.dropFront(n);
  }

  /** Appends the next tokens of head `h` (their key and value rows, oldest first) to the quantized store. */
  private quantizeRows(h: number, keyRows: Float32Array[], valueRows: Float32Array[]): void {
    const d = this.headDim;
    const n = keyRows.length;
    const head = this.heads[h];
    if (this.scheme.keyAxis === 'tokens') {
      // Parameters per channel, codes written token-major ([n, d]) like every other layout.
      const group = new Float32Array(n);
      const codes = new Uint8Array(n);
      const block = new Uint8Array(n * d);
      for (let c = 0; c < d; c++) {
        for (let t = 0; t < n; t++) group[t] = keyRows[t][c];
        head.keys.encodeGroup(group, codes);
        for (let t = 0; t < n; t++) block[t * d + c] = codes[t];
      }
      head.keys.codes.write(block);
    } else {
      for (let t = 0; t < n; t++) this.quantizeRow(head.keys, keyRows[t], this.scheme.keyGroup);
    }
    for (let t = 0; t < n; t++) this.quantizeRow(head.values, valueRows[t], this.scheme.valueGroup);
    head.quantized += n;
    this.quantizedElements += 2 * n * d;
  }

  private quantizeRow(store: GroupStore, row: Float32Array, group: number): void {
    for (let c = 0; c < row.length; c += group) store.store(row.subarray(c, Math.min(row.length, c + group)));
  }

  /** Evicts one token per head (decode-time eviction over a per-token layout): from the store and from the slot book. */
  removePerHead(victims: number[]): void {
    const d = this.headDim;
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
    this.book.removePerHead(victims);
  }

  /** Keys and values rebuilt from the store alone (packed codes, scales, zero-points, residual), in slot layout; fresh arrays. */
  readBack(): { keys: Float32Array; values: Float32Array } {
    const { numKvHeads: heads, headDim: d } = this;
    const length = this.book.length;
    const keys = new Float32Array(length * heads * d);
    const values = new Float32Array(length * heads * d);
    const levels = this.codec.levels;
    const perToken = (store: GroupStore, group: number, target: Float32Array, head: HeadStore, h: number) => {
      const { codes, scales, zeros } = store.unpack();
      decodePerToken(codes, scales, zeros, levels, head.slots, head.quantized, { heads, h, d, width: Math.min(group, d) }, target);
    };
    this.heads.forEach((head, h) => {
      perToken(head.values, this.scheme.valueGroup, values, head, h);
      if (this.scheme.keyAxis === 'channels') {
        perToken(head.keys, this.scheme.keyGroup, keys, head, h);
      } else {
        const { codes, scales, zeros } = head.keys.unpack();
        decodePerChannel(codes, scales, zeros, levels, head.slots, head.quantized, { heads, h, d, width: this.scheme.keyGroup }, keys);
      }
      for (let r = 0; r < head.residualKeys.count; r++) {
        const out = (head.slots[head.quantized + r] * heads + h) * d;
        keys.set(head.residualKeys.row(r), out);
        values.set(head.residualValues.row(r), out);
      }
    });
    return { keys, values };
  }

  /**
   * What attention reads: the slot book's positions and validity; keys and values dequantized into fresh arrays on first
   * access; and, when the store can be read as held, the packed codes themselves (`quantized`).
   */
  view(): LayerKV {
    const slots = this.book.view();
    let decoded: { keys: Float32Array; values: Float32Array } | null = null;
    const read = () => (decoded ??= this.readBack());
    const quantized = this.packed(slots);
    return {
      numKvHeads: this.numKvHeads,
      headDim: this.headDim,
      length: slots.length,
      valid: slots.valid,
      positions: slots.positions,
      get keys(): Float32Array {
        return read().keys;
      },
      get values(): Float32Array {
        return read().values;
      },
      ...(quantized ? { quantized } : {}),
    };
  }

  /**
   * The store as a forward pass can read it without dequantizing in JS: every head's codes back to back, the group
   * parameters as fp32, the residual as dense slots. Null when the layout does not allow it: heads holding different
   * slots (per-head eviction), code widths other than 2, 4 and 8 bits, groups that do not tile a row.
   */
  private packed(slots: Omit<LayerKV, 'keys' | 'values'>): QuantizedPast | null {
    const { scheme, codec, numKvHeads: heads, headDim: d } = this;
    if (![2, 4, 8].includes(scheme.bits) || slots.valid) return null;
    // Codes of a linear codec are read as their own levels (an offset folds into the zero-points); others through a table.
    const direct = codec.codeOffset !== null;
    const valueWidth = Math.min(scheme.valueGroup, d);
    const keyWidth = scheme.keyAxis === 'tokens' ? d : Math.min(scheme.keyGroup, d);
    if (d % valueWidth !== 0 || d % keyWidth !== 0 || (d * scheme.bits) % 8 !== 0) return null;
    const tokens = this.heads[0].quantized;
    const residual = this.heads[0].residualKeys.count;
    if (tokens + residual !== slots.length || this.heads.some((head) => head.quantized !== tokens || head.residualKeys.count !== residual)) return null;

    const pack = (part: 'keys' | 'values', shape: [number, number, number, number], paramShape: [number, number, number, number]): PackedKvCodes => {
      const bytesPerHead = (tokens * d * scheme.bits) / 8;
      const groupsPerHead = paramShape[1] * paramShape[2] * paramShape[3];
      const offset = direct ? (codec.codeOffset ?? 0) : 0;
      return {
        codeBytes: heads * bytesPerHead,
        paramCount: heads * groupsPerHead,
        shape,
        paramShape,
        write: (codes, scales, zeros) => {
          this.heads.forEach((head, h) => {
            codes.set(head[part].codes.packed.subarray(0, bytesPerHead), h * bytesPerHead);
            head[part].params(groupsPerHead, scales, zeros, h * groupsPerHead, offset);
          });
        },
      };
    };
    const perToken = (width: number) => ({ shape: [heads, tokens, d / width, width] as [number, number, number, number], params: [heads, tokens, d / width, 1] as [number, number, number, number] });
    const valueLayout = perToken(valueWidth);
    const keyLayout =
      scheme.keyAxis === 'tokens'
        ? { shape: [heads, tokens / scheme.keyGroup, scheme.keyGroup, d] as [number, number, number, number], params: [heads, tokens / scheme.keyGroup, 1, d] as [number, number, number, number] }
        : perToken(keyWidth);

    const dtype = this.heads[0].residualKeys.dtype;
    const residualKeys = allocateKv(dtype, residual * heads * d);
    const residualValues = allocateKv(dtype, residual * heads * d);
    this.heads.forEach((head, h) => {
      const storedKeys = head.residualKeys.used();
      const storedValues = head.residualValues.used();
      for (let r = 0; r < residual; r++) {
        residualKeys.set(storedKeys.subarray(r * d, (r + 1) * d) as never, (r * heads + h) * d);
        residualValues.set(storedValues.subarray(r * d, (r + 1) * d) as never, (r * heads + h) * d);
      }
    });
    const residualView = kvView(
      { numKvHeads: heads, headDim: d, length: residual, valid: null, positions: slots.positions.subarray(tokens * heads) },
      dtype,
      residualKeys,
      residualValues,
    );
    return {
      bits: scheme.bits,
      table: this.byteTable,
      codesPerByte: 8 / scheme.bits,
      keysPerChannel: scheme.keyAxis === 'tokens',
      tokens,
      keys: pack('keys', keyLayout.shape, keyLayout.params),
      values: pack('values', valueLayout.shape, valueLayout.params),
      residual: residualView,
    };
  }

  /** Tokens per head as the store holds them: quantized plus residual. */
  tokensPerHead(): number[] {
    return this.heads.map((head) => head.quantized + head.residualKeys.count);
  }

  bytes(): CacheBytes {
    const slots = this.book.view();
    const b = { ...ZERO_BYTES };
    for (const head of this.heads) {
      for (const store of [head.keys, head.values]) {
        b.packed += store.codes.used().byteLength;
        b.scales += store.scales.used().byteLength;
        b.zeroPoints += store.zeros ? store.zeros.used().byteLength : 0;
      }
      b.fullPrecision += head.residualKeys.used().byteLength + head.residualValues.used().byteLength;
    }
    b.positions = slots.positions.byteLength + (slots.valid ? slots.valid.byteLength : 0);
    b.held = b.packed + b.scales + b.zeroPoints + b.fullPrecision + b.positions;
    b.active = b.held;
    return b;
  }
}

export class QuantizedCache implements MethodCache {
  private readonly layers: QuantizedLayer[];
  readonly bits: number;

  /**
   * Reads `layers` (already cloned and, when composed with eviction, already reduced to the selection) into the store and
   * keeps no reference to them. `evictions` (per layer) keep evicting while decoding; only per-token layouts support them.
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
      const victims = eviction?.afterStep(this.layers[l].book, attention?.[l] ?? null);
      if (victims) this.layers[l].removePerHead(victims);
    });
  }

  /** Keys and values of one layer decoded from the store alone, in slot layout. */
  readBack(layer: number): { keys: Float32Array; values: Float32Array } {
    return this.layers[layer].readBack();
  }

  /** Dequantizes every layer into new arrays on each call; the cache keeps none of them (see the file header). */
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
    return this.layers.reduce((sum, layer) => sum + layer.quantizedElements, 0);
  }
}

// Keeps the whole cache in pages of 16 tokens with per-channel key minima and maxima; each decode step attention reads only the pages whose
// bound on q·k is highest, plus the recent tokens. Tang et al. 2024, "Quest: Query-Aware Sparsity for Efficient Long-Context LLM Inference" (arXiv 2406.10774).
import { KvlensError } from '../../errors';
import type { ModelConfig } from '../../model/config';
import type { LayerAttention } from '../../model/types';
import { DenseLayerCache, kvView, storedKvBytes, type LayerKV } from '../cache';
import type { MethodDefinition, Params, SizePromise } from '../definition';
import { allocateKv } from '../kv-dtype';
import { type CacheBytes, type CompressInput, type MethodCache, ZERO_BYTES, addBytes } from '../method';
import { missingStats, perKvHead, range, sumWindow, topK } from '../scores';

// Pages are chosen per KV head (its query heads' bounds summed). As for InfLLM, the choice lags one step: the pages read at
// step t+1 are chosen with step t's query (a forward needs its past before its own query exists); after prefill, by the
// attention mass the last prompt query puts on each page. The most recent full page and the tokens after it are always read,
// so a page only becomes selectable once it is complete and a page old.

export interface QuestGeometry {
  page: number;
  /** Selectable pages right after compression. */
  pages: number;
  /** Recent tokens always read right after compression: the last full page and the partial one after it. */
  local: number;
  /** Pages read per step. */
  topk: number;
}

export function questGeometry(promptLength: number, params: Params): QuestGeometry {
  const page = params.page!;
  const local = page + (promptLength % page);
  const pages = Math.max(0, (promptLength - local) / page);
  const topk = Math.min(Math.floor(params.budget! / page), Math.floor(pages / 2));
  if (topk < 1) {
    throw new KvlensError(
      `quest: a ${promptLength}-token prompt with a budget of ${params.budget} tokens leaves no page to skip (pages of ${page}: ${pages} selectable, at most half are read)`,
    );
  }
  return { page, pages, local, topk };
}

/** Σ over query heads of the group and channels of max(q·min, q·max): an upper bound of the group's q·k for every key of the page. */
export function pageBound(query: Float32Array, heads: number[], headDim: number, min: Float32Array, max: Float32Array, at: number): number {
  let bound = 0;
  for (const h of heads) {
    for (let c = 0; c < headDim; c++) {
      const q = query[h * headDim + c];
      bound += Math.max(q * min[at + c], q * max[at + c]);
    }
  }
  return bound;
}

class QuestLayer {
  /** Every token, in slot order: the pages, then the recent tokens. */
  private readonly store: DenseLayerCache;
  /** Per page, [numKvHeads, headDim] channel minima and maxima of its keys. */
  private readonly minima: Float32Array[] = [];
  private readonly maxima: Float32Array[] = [];
  /** [kvHead] the pages read next step, ascending. */
  private selected: number[][];
  private visible: LayerKV | null = null;

  constructor(
    prefill: DenseLayerCache,
    attention: LayerAttention | undefined,
    private readonly geometry: QuestGeometry,
    private readonly config: ModelConfig,
  ) {
    this.store = prefill.clone();
    for (let p = 0; p < geometry.pages; p++) this.formPage(p);
    const n = prefill.length;
    const last = perKvHead(sumWindow(attention, 1, n, 'quest'), config.numHeads, config.numKvHeads, n);
    this.selected = range(0, config.numKvHeads).map((g) => {
      const mass = range(0, this.minima.length).map((p) => {
        let sum = 0;
        for (let s = p * geometry.page; s < (p + 1) * geometry.page; s++) sum += last[g * n + s];
        return sum;
      });
      return topK((p) => mass[p], range(0, mass.length), geometry.topk);
    });
  }

  private formPage(p: number): void {
    const { numKvHeads: heads, headDim: d } = this.store;
    const kv = this.store.view();
    const min = new Float32Array(heads * d).fill(Infinity);
    const max = new Float32Array(heads * d).fill(-Infinity);
    for (let s = p * this.geometry.page; s < (p + 1) * this.geometry.page; s++) {
      for (let i = 0; i < heads * d; i++) {
        const k = kv.keys[s * heads * d + i];
        if (k < min[i]) min[i] = k;
        if (k > max[i]) max[i] = k;
      }
    }
    this.minima[p] = min;
    this.maxima[p] = max;
  }

  private get pagedTokens(): number {
    return this.minima.length * this.geometry.page;
  }

  /** Per head, the selected pages' tokens then the recent ones; every head reads as many, each its own. */
  view(): LayerKV {
    if (this.visible) return this.visible;
    const { numKvHeads: heads, headDim: d, dtype } = this.store;
    const kv = this.store.view();
    const recent = range(this.pagedTokens, kv.length);
    const slotsOf = this.selected.map((pages) => [...pages.flatMap((p) => range(p * this.geometry.page, (p + 1) * this.geometry.page)), ...recent]);
    const count = slotsOf[0].length;
    const keys = allocateKv(dtype, count * heads * d);
    const values = allocateKv(dtype, count * heads * d);
    const positions = new Int32Array(count * heads);
    const sourceKeys = kv.stored?.keys ?? kv.keys;
    const sourceValues = kv.stored?.values ?? kv.values;
    slotsOf.forEach((slots, h) =>
      slots.forEach((s, i) => {
        const from = (s * heads + h) * d;
        keys.set(sourceKeys.subarray(from, from + d) as never, (i * heads + h) * d);
        values.set(sourceValues.subarray(from, from + d) as never, (i * heads + h) * d);
        positions[i * heads + h] = kv.positions[s * heads + h];
      }),
    );
    this.visible = kvView({ numKvHeads: heads, headDim: d, length: count, valid: null, positions }, dtype, keys, values);
    return this.visible;
  }

  append(keys: Float32Array, values: Float32Array, positions: ArrayLike<number>): void {
    this.store.append(keys, values, positions);
    this.visible = null;
  }

  afterStep(attention: LayerAttention | null): void {
    if (!attention?.queries) throw missingStats('quest', 'the query of each decode step');
    const { numHeads, numKvHeads: heads, headDim: d } = this.config;
    if (this.store.length - this.pagedTokens >= this.geometry.local + this.geometry.page) this.formPage(this.minima.length);
    const q = attention.queries.length / (numHeads * d);
    const query = attention.queries.subarray((q - 1) * numHeads * d, q * numHeads * d);
    const group = numHeads / heads;
    this.selected = range(0, heads).map((g) => {
      const members = range(g * group, (g + 1) * group);
      const bounds = this.minima.map((min, p) => pageBound(query, members, d, min, this.maxima[p], g * d));
      return topK((p) => bounds[p], range(0, bounds.length), this.geometry.topk);
    });
    this.visible = null;
  }

  tokensRead(): number {
    return this.geometry.topk * this.geometry.page + this.store.length - this.pagedTokens;
  }

  /** The selected pages of one head, for tests. */
  pagesRead(head: number): number[] {
    return this.selected[head].slice();
  }

  bytes(): CacheBytes {
    const kv = this.store.view();
    const heads = this.store.numKvHeads;
    // Keys and values of one slot over all heads, in the cache's dtype.
    const slotBytes = kv.length ? storedKvBytes(kv) / kv.length : 0;
    const recent = kv.length - this.pagedTokens;
    const b = { ...ZERO_BYTES };
    b.blockStore = this.pagedTokens * slotBytes;
    b.fullPrecision = recent * slotBytes;
    b.positions = kv.positions.byteLength;
    b.blockIndex = this.minima.reduce((sum, min, p) => sum + min.byteLength + this.maxima[p].byteLength, 0);
    b.held = b.blockStore + b.fullPrecision + b.positions + b.blockIndex;
    // Every head reads topk pages of its own: their keys, values and positions, besides the recent tokens and the page bounds.
    const selected = this.geometry.topk * this.geometry.page * (slotBytes + heads * Int32Array.BYTES_PER_ELEMENT);
    b.active = b.fullPrecision + recent * heads * Int32Array.BYTES_PER_ELEMENT + b.blockIndex + selected;
    return b;
  }
}

class QuestCache implements MethodCache {
  readonly bits = null;
  readonly layers: QuestLayer[];
  private readonly heads: number;

  constructor(input: CompressInput, geometry: QuestGeometry) {
    this.heads = input.config.numKvHeads;
    this.layers = input.layers.map((layer, l) => new QuestLayer(layer, input.stats?.[l], geometry, input.config));
  }

  views(): LayerKV[] {
    return this.layers.map((layer) => layer.view());
  }

  append(layer: number, keys: Float32Array, values: Float32Array, positions: ArrayLike<number>): void {
    this.layers[layer].append(keys, values, positions);
  }

  afterStep(attention: LayerAttention[] | null): void {
    this.layers.forEach((layer, l) => layer.afterStep(attention?.[l] ?? null));
  }

  tokensPerHead(): number[][] {
    return this.layers.map((layer) => new Array<number>(this.heads).fill(layer.tokensRead()));
  }

  bytes(): CacheBytes {
    return this.layers.reduce((sum, layer) => addBytes(sum, layer.bytes()), { ...ZERO_BYTES });
  }

  quantizedElements(): number {
    return 0;
  }
}

function size(promptLength: number, params: Params, config: ModelConfig): SizePromise {
  const g = questGeometry(promptLength, params);
  const perHead = g.topk * g.page + g.local;
  return {
    totalTokens: perHead * config.numKvHeads * config.numLayers,
    tokensPerHead: perHead,
    tokensPerLayer: new Array<number>(config.numLayers).fill(perHead * config.numKvHeads),
    decodeSlack: g.page - 1,
  };
}

export const quest: MethodDefinition = {
  name: 'quest',
  family: 'token-dropping',
  ownLayout: true,
  phases: ['decode'],
  summary: 'keeps every token in 16-token pages; each step attention reads the pages with the highest q·k bound (key min/max) plus the recent ones',
  params: [
    { name: 'budget', default: 512, min: 1, max: 1_000_000, integer: true, canonical: true, description: 'tokens read from pages per step (at most half the pages)' },
    { name: 'page', default: 16, min: 1, max: 4096, integer: true, description: 'tokens per page' },
  ],
  paper: {
    authors: 'Tang, Zhao, Zhu, Xiao, Kasikci, Han',
    year: 2024,
    title: 'Quest: Query-Aware Sparsity for Efficient Long-Context LLM Inference',
    arxiv: '2406.10774',
  },
  build(params) {
    return {
      kind: 'custom',
      custom: {
        needs: () => ({ windowSums: [1] }),
        decodeNeeds: { queries: true },
        size: (promptLength, config) => size(promptLength, params, config),
        compress: (input) => new QuestCache(input, questGeometry(input.layers[0].length, params)),
      },
    };
  },
};

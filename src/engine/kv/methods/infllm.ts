// Keeps sinks + a local window resident and the middle in blocks with representative keys; attention reads only the top-k blocks
// most relevant to the latest query. Xiao et al. 2024, "InfLLM: Training-Free Long-Context Extrapolation for LLMs with an Efficient Context Memory" (arXiv 2402.04623).
import { KvlensError } from '../../errors';
import type { ModelConfig } from '../../model/config';
import type { LayerAttention } from '../../model/types';
import { DenseLayerCache, storedKvBytes, type LayerKV } from '../cache';
import type { KvArray } from '../kv-dtype';
import type { MethodDefinition, Params, SizePromise } from '../definition';
import { type CacheBytes, type CompressInput, type MethodCache, ZERO_BYTES, addBytes } from '../method';
import { missingStats, perKvHead, range, sumWindow, topK } from '../scores';

// Block choice lags one step: the view for step t+1 is built from step t's query, since the forward of t+1 needs its past before
// its own query exists. Right after prefill the choice comes from the last prompt query's attention mass per block.
// Representatives are the keys with the most accumulated attention in the block (prompt queries, then decode queries).

export interface InfLLMGeometry {
  sinks: number;
  /** Resident recent tokens right after compression (the configured window plus what did not fill a whole block). */
  local: number;
  blockSize: number;
  blocks: number;
  topk: number;
}

/** Shrinks window, block size and top-k for short prompts so retrieval always has at least two blocks to choose from. */
export function infllmGeometry(promptLength: number, params: Params): InfLLMGeometry {
  const sinks = params.sinks!;
  const window = Math.min(params.window!, Math.floor(promptLength / 4));
  const middle = promptLength - sinks - window;
  const blockSize = Math.min(params.block!, Math.max(8, Math.floor(middle / 8)));
  const blocks = Math.max(0, Math.floor(middle / blockSize));
  const topk = Math.min(params.topk!, Math.floor(blocks / 2));
  if (topk < 1) {
    throw new KvlensError(`infllm: a ${promptLength}-token prompt leaves fewer than 2 blocks after ${sinks} sinks and a ${window}-token window`);
  }
  return { sinks, local: promptLength - sinks - blocks * blockSize, blockSize, blocks, topk };
}

interface Block {
  /** In the cache's dtype, like the resident tokens. */
  keys: KvArray;
  values: KvArray;
  positions: Int32Array;
  /** [numKvHeads, reprs, headDim] */
  representatives: Float32Array;
}

class InfLLMLayer {
  /** Sinks followed by the local window, in fp32; always visible. */
  private readonly resident: DenseLayerCache;
  /** Accumulated attention of every resident slot, per KV head: [head][slot]. */
  private scores: number[][];
  private readonly blocks: Block[] = [];
  private selected: number[] = [];
  /** For the current view: the resident slot behind each view slot, or -1 for block tokens. */
  private layout: number[] = [];
  private visible: DenseLayerCache | null = null;

  constructor(
    prefill: DenseLayerCache,
    attention: LayerAttention | undefined,
    private readonly geometry: InfLLMGeometry,
    private readonly config: ModelConfig,
    private readonly reprs: number,
  ) {
    const length = prefill.length;
    if (!attention?.keySums) throw missingStats('infllm', 'per-key attention sums');
    const sums = perKvHead(attention.keySums, config.numHeads, config.numKvHeads, length);
    this.scores = range(0, config.numKvHeads).map((h) => Array.from(sums.subarray(h * length, (h + 1) * length)));
    this.resident = prefill.clone();
    const lastQuery = sumWindow(attention, 1, length, 'infllm');
    const mass = new Array<number>(geometry.blocks).fill(0);
    for (let i = 0; i < lastQuery.length; i++) {
      const block = Math.floor(((i % length) - geometry.sinks) / geometry.blockSize);
      if (block >= 0 && block < geometry.blocks) mass[block] += lastQuery[i];
    }
    this.formBlocks(geometry.blocks);
    this.selected = topK((b) => mass[b], range(0, this.blocks.length), geometry.topk);
  }

  /** Moves the oldest `count · blockSize` non-sink resident tokens into `count` new blocks (one compaction for all). */
  private formBlocks(count: number): void {
    const { sinks, blockSize } = this.geometry;
    const { numKvHeads: heads, headDim: d } = this.resident;
    const kv = this.resident.view();
    const row = heads * d;
    for (let b = 0; b < count; b++) {
      const first = sinks + b * blockSize;
      const representatives = new Float32Array(heads * this.reprs * d);
      for (let h = 0; h < heads; h++) {
        const best = topK((s) => this.scores[h][s], range(first, first + blockSize), this.reprs);
        best.forEach((slot, r) => representatives.set(kv.keys.subarray((slot * heads + h) * d, (slot * heads + h + 1) * d), (h * this.reprs + r) * d));
      }
      const positions = new Int32Array(blockSize);
      for (let t = 0; t < blockSize; t++) positions[t] = kv.positions[(first + t) * heads];
      this.blocks.push({
        keys: (kv.stored?.keys ?? kv.keys).slice(first * row, (first + blockSize) * row),
        values: (kv.stored?.values ?? kv.values).slice(first * row, (first + blockSize) * row),
        positions,
        representatives,
      });
    }
    const keep = [...range(0, sinks), ...range(sinks + count * blockSize, this.resident.length)];
    this.resident.retain(range(0, heads).map(() => keep));
    this.scores = this.scores.map((row) => keep.map((slot) => row[slot]));
  }

  /** What attention reads: sinks, the selected blocks in position order, then the local window. Rebuilt only when the selection changes. */
  view(): LayerKV {
    if (this.visible) return this.visible.view();
    const { numKvHeads: heads, headDim: d } = this.resident;
    const { sinks, blockSize } = this.geometry;
    const kv = this.resident.view();
    const row = heads * d;
    const chosen = this.selected.slice().sort((a, b) => this.blocks[a].positions[0] - this.blocks[b].positions[0]);
    const dtype = this.resident.dtype;
    const visible = new DenseLayerCache(heads, d, kv.length + chosen.length * blockSize + this.geometry.blockSize, dtype);
    this.layout = [];
    // Stored patterns are copied as they are: decoding and re-rounding them would change nothing but cost a pass.
    const keys = kv.stored?.keys ?? kv.keys;
    const values = kv.stored?.values ?? kv.values;
    const copyResident = (from: number, to: number) => {
      const positions = Array.from({ length: to - from }, (_, i) => kv.positions[(from + i) * heads]);
      visible.appendStored(keys.subarray(from * row, to * row), values.subarray(from * row, to * row), positions);
      for (let s = from; s < to; s++) this.layout.push(s);
    };
    copyResident(0, sinks);
    for (const b of chosen) {
      visible.appendStored(this.blocks[b].keys, this.blocks[b].values, this.blocks[b].positions);
      for (let t = 0; t < blockSize; t++) this.layout.push(-1);
    }
    copyResident(sinks, kv.length);
    this.visible = visible;
    return visible.view();
  }

  append(keys: Float32Array, values: Float32Array, positions: ArrayLike<number>): void {
    const before = this.resident.length;
    this.resident.append(keys, values, positions);
    for (const row of this.scores) for (let s = before; s < this.resident.length; s++) row.push(0);
    this.visible?.append(keys, values, positions);
    for (let s = before; s < this.resident.length; s++) this.layout.push(s);
  }

  afterStep(attention: LayerAttention | null): void {
    const { numHeads, numKvHeads } = this.config;
    if (!attention?.keySums || !attention.queries) throw missingStats('infllm', 'per-key attention sums and queries of each decode step');
    const keys = this.layout.length;
    const step = perKvHead(attention.keySums, numHeads, numKvHeads, keys);
    this.layout.forEach((slot, i) => {
      if (slot >= 0) for (let h = 0; h < numKvHeads; h++) this.scores[h][slot] += step[h * keys + i];
    });
    const formed = this.resident.length - this.geometry.sinks >= this.geometry.local + this.geometry.blockSize;
    if (formed) this.formBlocks(1);
    const selected = this.selectBlocks(attention.queries);
    if (formed || selected.join() !== this.selected.join()) this.visible = null;
    this.selected = selected;
  }

  /** Top-k blocks by the mean dot product of the latest query (every head) with the block's representatives. */
  private selectBlocks(queries: Float32Array): number[] {
    const { numHeads, numKvHeads, headDim: d } = this.config;
    const q = queries.length / (numHeads * d);
    const last = queries.subarray((q - 1) * numHeads * d, q * numHeads * d);
    const group = numHeads / numKvHeads;
    const relevance = this.blocks.map((block) => {
      let sum = 0;
      for (let h = 0; h < numHeads; h++) {
        const kv = Math.floor(h / group);
        for (let r = 0; r < this.reprs; r++) {
          for (let c = 0; c < d; c++) sum += last[h * d + c] * block.representatives[(kv * this.reprs + r) * d + c];
        }
      }
      return sum / this.reprs;
    });
    return topK((b) => relevance[b], range(0, this.blocks.length), this.geometry.topk);
  }

  visibleTokens(): number {
    return this.selected.reduce((sum, b) => sum + this.blocks[b].positions.length, this.resident.length);
  }

  bytes(): CacheBytes {
    const kv = this.resident.view();
    const b = { ...ZERO_BYTES };
    b.fullPrecision = storedKvBytes(kv);
    b.positions = kv.positions.byteLength;
    let selectedBytes = 0;
    this.blocks.forEach((block, i) => {
      b.blockStore += block.keys.byteLength + block.values.byteLength;
      b.positions += block.positions.byteLength;
      b.blockIndex += block.representatives.byteLength;
      if (this.selected.includes(i)) selectedBytes += block.keys.byteLength + block.values.byteLength + block.positions.byteLength;
    });
    b.held = b.fullPrecision + b.positions + b.blockStore + b.blockIndex;
    b.active = b.fullPrecision + kv.positions.byteLength + b.blockIndex + selectedBytes;
    return b;
  }
}

class InfLLMCache implements MethodCache {
  readonly bits = null;
  private readonly layers: InfLLMLayer[];

  private readonly heads: number;

  constructor(input: CompressInput, geometry: InfLLMGeometry, reprs: number) {
    this.heads = input.config.numKvHeads;
    this.layers = input.layers.map((layer, l) => new InfLLMLayer(layer, input.stats?.[l], geometry, input.config, reprs));
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
    return this.layers.map((layer) => new Array<number>(this.heads).fill(layer.visibleTokens()));
  }

  bytes(): CacheBytes {
    return this.layers.reduce((sum, layer) => addBytes(sum, layer.bytes()), { ...ZERO_BYTES });
  }

  quantizedElements(): number {
    return 0;
  }
}

function size(promptLength: number, params: Params, config: ModelConfig): SizePromise {
  const g = infllmGeometry(promptLength, params);
  const perHead = g.sinks + g.local + g.topk * g.blockSize;
  return {
    totalTokens: perHead * config.numKvHeads * config.numLayers,
    tokensPerHead: perHead,
    tokensPerLayer: new Array<number>(config.numLayers).fill(perHead * config.numKvHeads),
    decodeSlack: g.blockSize - 1,
  };
}

export const infllm: MethodDefinition = {
  name: 'infllm',
  family: 'token-dropping',
  ownLayout: true,
  phases: ['after-prefill', 'decode'],
  summary: 'sinks + local window resident; the middle in blocks, of which attention reads the top-k by query relevance',
  params: [
    { name: 'sinks', default: 4, min: 0, max: 1024, integer: true, description: 'initial tokens always resident' },
    { name: 'window', default: 256, min: 1, max: 100_000, integer: true, description: 'local window of recent tokens (at most a quarter of the prompt)' },
    { name: 'block', default: 128, min: 1, max: 4096, integer: true, description: 'tokens per memory block (shrunk so short prompts still get 8 blocks)' },
    { name: 'topk', default: 16, min: 1, max: 1024, integer: true, canonical: true, description: 'blocks attention reads per step (at most half the blocks)' },
    { name: 'reprs', default: 4, min: 1, max: 64, integer: true, description: 'representative keys per block and head used for retrieval' },
  ],
  paper: {
    authors: 'Xiao et al.',
    year: 2024,
    title: 'InfLLM: Training-Free Long-Context Extrapolation for LLMs with an Efficient Context Memory',
    arxiv: '2402.04623',
  },
  build(params) {
    return {
      kind: 'custom',
      custom: {
        needs: () => ({ windowSums: [1], keySums: true }),
        decodeNeeds: { keySums: true, queries: true },
        size: (promptLength, config) => size(promptLength, params, config),
        compress(input) {
          const geometry = infllmGeometry(input.layers[0].length, params);
          return new InfLLMCache(input, geometry, Math.min(params.reprs!, geometry.blockSize));
        },
      },
    };
  },
};

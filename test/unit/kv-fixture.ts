// Synthetic caches, attention statistics and a fake decode loop for the KV method tests.
import type { ModelConfig } from '../../src/engine/model/config';
import type { AttentionRequest, LayerAttention } from '../../src/engine/model/types';
import { DenseLayerCache, type LayerKV } from '../../src/engine/kv/cache';
import type { KvMethod, MethodCache } from '../../src/engine/kv/method';
import { testConfig } from '../helpers/random-model';

/** The random-model test config at a size where budgets, windows and head layouts have room to differ. */
export function makeConfig(overrides: Partial<ModelConfig> = {}): ModelConfig {
  return testConfig({
    hiddenSize: 256,
    intermediateSize: 512,
    numLayers: 3,
    headDim: 64,
    vocabSize: 1000,
    rmsNormEps: 1e-6,
    maxPositionEmbeddings: 100000,
    bosTokenId: 1,
    eosTokenIds: [2],
    ...overrides,
  });
}

/** Deterministic uniform [0, 1) numbers (a different generator from the library's, so tests do not share its code). */
export function rng(seed: number): () => number {
  let x = seed * 2654435761 + 12345;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return ((x >>> 0) % 1_000_003) / 1_000_003;
  };
}

/** Original position of prompt token t: deliberately not equal to its slot, so a slot index never passes for a position. */
export const positionOf = (t: number) => 7 + 3 * t;

export interface Prefill {
  config: ModelConfig;
  length: number;
  layers: DenseLayerCache[];
  stats: LayerAttention[];
  /** [layer] token-major [length, kvHeads, headDim] copies of the original keys and values. */
  keys: Float32Array[];
  values: Float32Array[];
}

/** Random rows summing to 1 (attention-like). */
function probabilities(next: () => number, rows: number, keys: number): Float32Array {
  const out = new Float32Array(rows * keys);
  for (let r = 0; r < rows; r++) {
    let sum = 0;
    for (let k = 0; k < keys; k++) sum += out[r * keys + k] = next() + 0.01;
    for (let k = 0; k < keys; k++) out[r * keys + k] /= sum;
  }
  return out;
}

export function makePrefill(length: number, config = makeConfig(), window = 32, seed = 1): Prefill {
  const next = rng(seed);
  const row = config.numKvHeads * config.headDim;
  const layers: DenseLayerCache[] = [];
  const keys: Float32Array[] = [];
  const values: Float32Array[] = [];
  const stats: LayerAttention[] = [];
  for (let l = 0; l < config.numLayers; l++) {
    const k = new Float32Array(length * row).map(() => (next() - 0.5) * 4);
    const v = new Float32Array(length * row).map(() => (next() - 0.5) * 2);
    const layer = new DenseLayerCache(config.numKvHeads, config.headDim, 16);
    layer.append(k, v, Array.from({ length }, (_, t) => positionOf(t)));
    layers.push(layer);
    keys.push(k);
    values.push(v);
    const w = Math.min(window, length);
    const windowProbs = probabilities(next, config.numHeads * w, length);
    const keySums = new Float32Array(config.numHeads * length).map(() => next() * 10);
    stats.push({ window: windowProbs, windowQueries: w, keySums, queries: null });
  }
  return { config, length, layers, stats, keys, values };
}

/** Snapshot of every layer's view, to check compress() leaves the runner's prefill untouched. */
export function snapshot(layers: DenseLayerCache[]): LayerKV[] {
  return layers.map((layer) => {
    const v = layer.view();
    return { ...v, keys: v.keys.slice(), values: v.values.slice(), positions: v.positions.slice(), valid: v.valid ? v.valid.slice() : null };
  });
}

/** Statistics a decode forward would return for `views` plus one new token, restricted to what was requested. */
export function decodeStats(views: LayerKV[], request: AttentionRequest | undefined, config: ModelConfig, next: () => number): LayerAttention[] | null {
  if (!request || (!request.window && !request.keySums && !request.queries)) return null;
  return views.map((view) => {
    const keys = view.length + 1;
    const probs = probabilities(next, config.numHeads, keys);
    return {
      window: request.window ? probs : null,
      windowQueries: request.window ? 1 : 0,
      keySums: request.keySums ? probs.slice() : null,
      queries: request.queries ? new Float32Array(config.numHeads * config.headDim).map(() => next() - 0.5) : null,
    };
  });
}

/** Runs `steps` fake decode steps the way the runner does; returns the positions appended. */
export function decode(method: KvMethod, cache: MethodCache, prefill: Prefill, steps: number, seed = 99): number[] {
  const next = rng(seed);
  const { config } = prefill;
  const row = config.numKvHeads * config.headDim;
  const appended: number[] = [];
  for (let s = 0; s < steps; s++) {
    const position = positionOf(prefill.length + s);
    const views = cache.views();
    const attention = decodeStats(views, method.decodeNeeds, config, next);
    for (let l = 0; l < config.numLayers; l++) {
      const k = new Float32Array(row).map(() => next() - 0.5);
      const v = new Float32Array(row).map(() => next() - 0.5);
      cache.append(l, k, v, [position]);
    }
    cache.afterStep?.(attention, position);
    appended.push(position);
  }
  return appended;
}

/** Per head, the sorted original positions a view holds. */
export function headPositions(view: LayerKV, head: number): number[] {
  const out: number[] = [];
  for (let s = 0; s < view.length; s++) {
    if (view.valid && !view.valid[s * view.numKvHeads + head]) continue;
    out.push(view.positions[s * view.numKvHeads + head]);
  }
  return out.sort((a, b) => a - b);
}

/** The keys (or values) row of one head of one view slot. */
export function rowOf(data: Float32Array, slot: number, head: number, view: { numKvHeads: number; headDim: number }): Float32Array {
  const start = (slot * view.numKvHeads + head) * view.headDim;
  return data.subarray(start, start + view.headDim);
}

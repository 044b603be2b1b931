// Prompt processing and plain greedy generation over a dense cache, on any DecoderForward.

import { performance } from 'node:perf_hooks';
import { DenseLayerCache, type LayerKV } from '../kv/cache';
import type { KvDtype } from '../kv/kv-dtype';
import { KvlensError } from '../errors';
import { argmax } from './reference';
import { windowSumCounts, type AttentionRequest, type DecoderForward, type LayerAttention } from './types';

/** Attention statistics of one layer over the whole prompt (slot index = token index). */
export interface PrefillLayerStats {
  /** [numHeads, n] attention received by each prompt token, summed over every prompt query. */
  keySums: Float32Array | null;
  /** [numHeads, w, n] probabilities of the last w prompt queries over all prompt tokens. */
  window: Float32Array | null;
  windowQueries: number;
  /** Per requested count c, [numHeads, n]: the last c prompt queries' probabilities summed over them. */
  windowSums?: Map<number, Float32Array> | null;
  /** [r, numHeads, headDim] rotated queries of the last r prompt tokens: every token, or the request's queryRows. */
  queries: Float32Array | null;
}

export interface PrefillResult {
  layers: DenseLayerCache[];
  /** [vocab] logits after the last prompt token. */
  lastLogits: Float32Array;
  stats: PrefillLayerStats[] | null;
  ms: number;
  tokensPerSecond: number;
}

export interface PrefillOptions {
  /** Tokens per forward call (default: defaultChunkSize). */
  chunkSize?: number;
  attention?: AttentionRequest;
  /** RoPE position of the first prompt token (default 0). */
  startPosition?: number;
  /** What the cache holds keys and values in (default: the forward's kvDtype, else fp32). */
  kvDtype?: KvDtype;
}

/**
 * 512 tokens per call, fewer for long prompts: a call's attention scores are numHeads x chunk x n floats,
 * kept near 256 MB so a 32k-token prompt does not need gigabytes of transient memory.
 */
export function defaultChunkSize(numHeads: number, n: number): number {
  const budget = (256 * 1024 * 1024) / 4;
  return Math.max(64, Math.min(512, Math.floor(budget / (numHeads * Math.max(n, 1)))));
}

/**
 * Chunk boundaries [start, end) covering n tokens in chunks of at most `chunkSize`, except that the final
 * chunk is widened to hold at least `minLast` tokens (so one call sees every query of the attention window).
 */
export function chunkBoundaries(n: number, chunkSize: number, minLast = 0): [number, number][] {
  if (!Number.isInteger(chunkSize) || chunkSize < 1) throw new KvlensError(`chunkSize must be a positive integer, got ${chunkSize}`, 'prefill');
  const lastLength = Math.min(n, Math.max(minLast, n - Math.floor((n - 1) / chunkSize) * chunkSize));
  const chunks: [number, number][] = [];
  for (let start = 0; start < n - lastLength; start += chunkSize) chunks.push([start, Math.min(start + chunkSize, n - lastLength)]);
  chunks.push([n - lastLength, n]);
  return chunks;
}

export async function prefill(forward: DecoderForward, tokens: ArrayLike<number>, options: PrefillOptions = {}): Promise<PrefillResult> {
  const n = tokens.length;
  if (n === 0) throw new KvlensError('the prompt is empty', 'prefill');
  const { numLayers, numKvHeads, headDim, numHeads } = forward.config;
  const request = options.attention;
  const window = Math.min(request?.window ?? 0, n);
  const windowSums = request?.windowSums?.length ? windowSumCounts(request, n) : undefined;
  // The final chunk must see every query the window rows and the window sums cover.
  const lastQueries = Math.max(window, ...(windowSums ?? [0]));
  const start = options.startPosition ?? 0;
  const dtype = options.kvDtype ?? forward.kvDtype ?? 'fp32';
  const queryRows = Math.min(request?.queryRows ?? n, n);
  const queryRow = numHeads * headDim;
  const layers = Array.from({ length: numLayers }, () => new DenseLayerCache(numKvHeads, headDim, n, dtype));
  const stats: PrefillLayerStats[] | null = request
    ? Array.from({ length: numLayers }, () => ({
        keySums: request.keySums ? new Float32Array(numHeads * n) : null,
        window: null,
        windowQueries: window,
        queries: request.queries ? new Float32Array(queryRows * queryRow) : null,
      }))
    : null;

  const began = performance.now();
  let lastLogits: Float32Array | null = null;
  for (const [from, to] of chunkBoundaries(n, options.chunkSize ?? defaultChunkSize(numHeads, n), lastQueries)) {
    const chunk = Array.from({ length: to - from }, (_, i) => tokens[from + i]);
    const positions = chunk.map((_, i) => start + from + i);
    const isLast = to === n;
    const output = await forward.forward({
      tokens: chunk,
      positions,
      past: layers.map((layer) => layer.view()),
      logits: 'last',
      // Every chunk asks for the same statistics so a forward that builds a session per request shape
      // builds one; only the final chunk's window rows are kept.
      attention: request ? { keySums: request.keySums, queries: request.queries, window: window > 0 ? window : undefined, windowSums } : undefined,
    });
    for (let l = 0; l < numLayers; l++) {
      layers[l].append(output.newKeys[l], output.newValues[l], positions);
      const layerStats = output.attention?.[l];
      const target = stats?.[l];
      if (!layerStats || !target) continue;
      // Keys of this call are the dense past 0..from-1 then the chunk, i.e. token indices 0..to-1.
      if (target.keySums && layerStats.keySums) {
        for (let h = 0; h < numHeads; h++) {
          for (let j = 0; j < to; j++) target.keySums[h * n + j] += layerStats.keySums[h * to + j];
        }
      }
      if (target.queries && layerStats.queries) {
        // This chunk's rows that fall among the last queryRows prompt tokens.
        const first = Math.max(from, n - queryRows);
        if (first < to) target.queries.set(layerStats.queries.subarray((first - from) * queryRow, (to - from) * queryRow), (first - (n - queryRows)) * queryRow);
      }
      if (isLast && window > 0) target.window = layerStats.window;
      if (isLast && windowSums) target.windowSums = layerStats.windowSums ?? null;
    }
    if (isLast) lastLogits = output.logits;
  }
  const ms = performance.now() - began;
  if (!lastLogits) throw new KvlensError('no chunk produced logits', 'prefill');
  return { layers, lastLogits, stats, ms, tokensPerSecond: (n * 1000) / ms };
}

export interface DecodeOptions {
  maxNewTokens: number;
  stopTokenIds?: readonly number[];
  /** RoPE position of the first generated token (normally the original prompt length, whatever was evicted). */
  startPosition: number;
}

export interface DecodeResult {
  tokens: number[];
  stoppedBy: 'stop-token' | 'max-tokens' | 'complete';
  /** Time spent in decode forward calls. */
  ms: number;
  /** Forward calls (one per generated token after the first, which comes from the prefill logits). */
  steps: number;
  tokensPerSecond: number;
}

/** What greedy generation needs from a cache: views for attention, and a place for each new token's keys/values. */
export interface StepCache {
  views(): LayerKV[];
  append(layer: number, keys: Float32Array, values: Float32Array, positions: ArrayLike<number>): void;
  /** Called after every step with the step's attention (methods that track attention, e.g. H2O, update here). */
  afterStep?(attention: LayerAttention[] | null, position: number): void;
}

export interface GreedyLoopOptions extends DecodeOptions {
  /** Attention statistics each step should return to the cache's afterStep. */
  attention?: AttentionRequest;
  /** Stops early once the tokens so far hold a complete answer. */
  isComplete?: (generated: number[]) => boolean;
  signal?: AbortSignal;
}

/** The one greedy loop: continues from the prompt's last logits, feeding each chosen token back through `cache`. */
export async function greedyLoop(
  forward: DecoderForward,
  cache: StepCache,
  lastLogits: Float32Array,
  options: GreedyLoopOptions,
): Promise<DecodeResult> {
  if (!Number.isInteger(options.maxNewTokens) || options.maxNewTokens < 1) {
    throw new KvlensError(`maxNewTokens must be a positive integer, got ${options.maxNewTokens}`, 'decode');
  }
  const { vocabSize } = forward.config;
  const stop = new Set(options.stopTokenIds ?? []);
  const tokens: number[] = [];
  let logits = lastLogits;
  let position = options.startPosition;
  let steps = 0;
  let ms = 0;
  for (;;) {
    const token = argmax(logits, logits.length - vocabSize, vocabSize);
    tokens.push(token);
    if (stop.has(token)) return finish('stop-token');
    if (tokens.length >= options.maxNewTokens) return finish('max-tokens');
    if (options.isComplete?.(tokens)) return finish('complete');
    options.signal?.throwIfAborted();
    const began = performance.now();
    const output = await forward.forward({
      tokens: [token],
      positions: [position],
      past: cache.views(),
      logits: 'last',
      attention: options.attention,
    });
    for (let layer = 0; layer < output.newKeys.length; layer++) {
      cache.append(layer, output.newKeys[layer], output.newValues[layer], [position]);
    }
    cache.afterStep?.(output.attention, position);
    ms += performance.now() - began;
    steps++;
    position++;
    logits = output.logits;
  }

  function finish(stoppedBy: DecodeResult['stoppedBy']): DecodeResult {
    return { tokens, stoppedBy, ms, steps, tokensPerSecond: steps > 0 ? (steps * 1000) / ms : 0 };
  }
}

/** Greedy generation continuing a dense cache (which it extends in place). */
export async function greedyDecode(
  forward: DecoderForward,
  layers: DenseLayerCache[],
  lastLogits: Float32Array,
  options: DecodeOptions,
): Promise<DecodeResult> {
  if (layers.length !== forward.config.numLayers) {
    throw new KvlensError(`got ${layers.length} layer caches for a ${forward.config.numLayers}-layer model`, 'decode');
  }
  const dense: StepCache = {
    views: () => layers.map((layer) => layer.view()),
    append: (layer, keys, values, positions) => layers[layer].append(keys, values, positions),
  };
  return greedyLoop(forward, dense, lastLogits, options);
}

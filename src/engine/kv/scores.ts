// Shared pieces of score-based token selection: sizes from ratio/budget, attention aggregation, pooling, top-k.
import { KvlensError } from '../errors';
import type { ModelConfig } from '../model/config';
import type { LayerAttention } from '../model/types';
import type { Params, SizePromise } from './definition';

/** Tokens kept per head for a prompt of `promptLength` tokens; throws when the setting would evict nothing. */
export function keptTokens(promptLength: number, params: Params, method: string): number {
  let kept: number;
  if (params.budget !== null && params.budget !== undefined) {
    kept = params.budget;
    if (kept >= promptLength) {
      throw new KvlensError(`${method}: budget ${kept} is not below the prompt length ${promptLength}, so nothing would be evicted`);
    }
  } else {
    const ratio = params.ratio ?? 0.5;
    // The epsilon keeps e.g. 100 * (1 - 0.9) = 9.999999999999998 from flooring to 9.
    kept = Math.floor(promptLength * (1 - ratio) + 1e-9);
    if (kept >= promptLength) {
      throw new KvlensError(`${method}: ratio ${ratio} removes no token of a ${promptLength}-token prompt`);
    }
    if (kept < 1) throw new KvlensError(`${method}: ratio ${ratio} would keep no token of a ${promptLength}-token prompt`);
  }
  return kept;
}

export function uniformSize(config: ModelConfig, perHead: number): SizePromise {
  return {
    totalTokens: perHead * config.numKvHeads * config.numLayers,
    tokensPerHead: perHead,
    tokensPerLayer: new Array<number>(config.numLayers).fill(perHead * config.numKvHeads),
  };
}

export function missingStats(method: string, what: string): KvlensError {
  return new KvlensError(`${method} needs ${what} from the prefill forward pass, but the runner did not provide them`);
}

/** Sums the last `queries` rows of the window probabilities: [numHeads, keys]. */
export function sumWindow(attention: LayerAttention | undefined, queries: number, keys: number, method: string): Float32Array {
  const summed = attention?.windowSums?.get(queries);
  if (summed) {
    if (summed.length % keys !== 0) throw new KvlensError(`${method}: window sums do not match ${keys} keys`);
    // A copy: callers mask and pool the scores in place, and several methods of a run read the same sums.
    return summed.slice();
  }
  if (!attention?.window || attention.windowQueries < queries) {
    throw missingStats(method, `attention probabilities of the last ${queries} queries`);
  }
  const w = attention.windowQueries;
  const numHeads = attention.window.length / (w * keys);
  if (!Number.isInteger(numHeads)) throw new KvlensError(`${method}: window statistics do not match ${keys} keys`);
  const out = new Float32Array(numHeads * keys);
  for (let h = 0; h < numHeads; h++) {
    for (let r = w - queries; r < w; r++) {
      const row = (h * w + r) * keys;
      for (let k = 0; k < keys; k++) out[h * keys + k] += attention.window[row + k];
    }
  }
  return out;
}

/** Averages [numHeads, keys] query-head scores over each KV head's query group (GQA): [numKvHeads, keys]. */
export function perKvHead(scores: Float32Array, numHeads: number, numKvHeads: number, keys: number): Float32Array {
  const group = numHeads / numKvHeads;
  const out = new Float32Array(numKvHeads * keys);
  for (let h = 0; h < numHeads; h++) {
    const kv = Math.floor(h / group);
    for (let k = 0; k < keys; k++) out[kv * keys + k] += scores[h * keys + k] / group;
  }
  return out;
}

/** Moving average along keys with an odd kernel, averaging only over positions inside the sequence. */
export function avgPool(scores: Float32Array, rows: number, keys: number, kernel: number): Float32Array {
  if (kernel <= 1) return scores;
  const half = Math.floor(kernel / 2);
  const out = new Float32Array(scores.length);
  for (let r = 0; r < rows; r++) {
    const base = r * keys;
    for (let k = 0; k < keys; k++) {
      const lo = Math.max(0, k - half);
      const hi = Math.min(keys - 1, k + half);
      let sum = 0;
      for (let j = lo; j <= hi; j++) sum += scores[base + j];
      out[base + k] = sum / (hi - lo + 1);
    }
  }
  return out;
}

/** Indices of the k highest scores among `candidates` (ties go to the later index), ascending. */
export function topK(score: (index: number) => number, candidates: number[], k: number): number[] {
  if (k <= 0) return [];
  const values = new Float64Array(candidates.length);
  for (let i = 0; i < candidates.length; i++) values[i] = score(candidates[i]);
  const order = Array.from({ length: candidates.length }, (_, i) => i);
  // Infinity − Infinity is NaN, which falls through to the index tie-break like an exact tie.
  order.sort((a, b) => values[b] - values[a] || candidates[b] - candidates[a]);
  return order
    .slice(0, k)
    .map((i) => candidates[i])
    .sort((a, b) => a - b);
}

/** Index of the lowest score among `candidates` (ties go to the earlier index). */
export function argMin(score: (index: number) => number, candidates: number[]): number {
  let best = candidates[0];
  let bestScore = score(best);
  for (const c of candidates) {
    const s = score(c);
    if (s < bestScore) {
      best = c;
      bestScore = s;
    }
  }
  return best;
}

export function range(from: number, to: number): number[] {
  const out: number[] = [];
  for (let i = from; i < to; i++) out.push(i);
  return out;
}

/** Score accessor for row `row` of a [rows, keys] array. */
export function rowScore(scores: Float32Array, row: number, keys: number): (index: number) => number {
  return (index) => scores[row * keys + index];
}

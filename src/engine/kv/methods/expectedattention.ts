// Keeps, per KV head, the tokens future queries are expected to attend to most: the prompt's query mean and covariance moved by the RoPE
// rotation averaged over the next positions, weighted by value norms. Devoto et al. 2025, "Expected Attention: KV Cache Compression by Estimating Attention from Future Queries Distribution" (arXiv 2510.00636).
import type { ModelConfig } from '../../model/config';
import { ropeInverseFrequencies } from '../../model/reference';
import type { LayerKV } from '../cache';
import { SIZE_PARAMS, type MethodDefinition, type Params } from '../definition';
import { keptTokens, missingStats, range, topK, uniformSize } from '../scores';
import { KvlensError } from '../../errors';

// Scored as kvpress scores it, from the prompt's own queries (which kvlens has rotated, so they are rotated back first,
// and which include a q bias where the model has one). The covariance term costs O(tokens · headDim²) per head.

export interface ExpectedAttentionOptions {
  sinks: number;
  future: number;
  covariance: boolean;
  valueNorm: boolean;
  /** The layer scored: a model with per-layer RoPE tables (Gemma 3's local layers) rotates by that layer's own. */
  layer?: number;
}

/** Per query head: the mean [d] and covariance [d, d] of the pre-RoPE queries after the sinks, both moved by the averaged future rotation. */
function futureQueryStatistics(queries: Float32Array, kv: LayerKV, config: ModelConfig, options: ExpectedAttentionOptions) {
  const { numHeads: H, headDim: d } = config;
  const half = d / 2;
  const heads = kv.numKvHeads;
  const n = kv.length;
  const invFreq = ropeInverseFrequencies(config, options.layer ?? -1);
  const count = n - options.sinks;
  const means = new Float64Array(H * d);
  const covs = options.covariance ? new Float64Array(H * d * d) : null;
  const plain = new Float64Array(count * H * d);
  for (let t = options.sinks; t < n; t++) {
    const position = Math.fround(kv.positions[t * heads]);
    for (let i = 0; i < half; i++) {
      const angle = Math.fround(position * invFreq[i]);
      const c = Math.cos(angle);
      const s = Math.sin(angle);
      for (let h = 0; h < H; h++) {
        const at = (t * H + h) * d;
        const x1 = queries[at + i];
        const x2 = queries[at + half + i];
        const out = ((t - options.sinks) * H + h) * d;
        plain[out + i] = x1 * c + x2 * s;
        plain[out + half + i] = x2 * c - x1 * s;
      }
    }
  }
  for (let t = 0; t < count; t++) for (let j = 0; j < H * d; j++) means[j] += plain[t * H * d + j] / count;
  if (covs) {
    const centred = new Float64Array(d);
    for (let t = 0; t < count; t++) {
      for (let h = 0; h < H; h++) {
        for (let a = 0; a < d; a++) centred[a] = plain[(t * H + h) * d + a] - means[h * d + a];
        const base = h * d * d;
        for (let a = 0; a < d; a++) for (let b = 0; b < d; b++) covs[base + a * d + b] += (centred[a] * centred[b]) / count;
      }
    }
  }
  // The average over the next `future` positions of RoPE's rotation: per pair, the mean cosine and sine.
  let start = 0;
  for (let i = 0; i < kv.positions.length; i++) start = Math.max(start, kv.positions[i] + 1);
  const meanCos = new Float64Array(half);
  const meanSin = new Float64Array(half);
  for (let f = 0; f < options.future; f++) {
    for (let i = 0; i < half; i++) {
      const angle = Math.fround(Math.fround(start + f) * invFreq[i]);
      meanCos[i] += Math.cos(angle) / options.future;
      meanSin[i] += Math.sin(angle) / options.future;
    }
  }
  // R·x: (x1 c − x2 s, x2 c + x1 s) per pair.
  const rotate = (x: Float64Array, from: number, stride: number, out: Float64Array, to: number) => {
    for (let i = 0; i < half; i++) {
      const x1 = x[from + i * stride];
      const x2 = x[from + (half + i) * stride];
      out[to + i * stride] = x1 * meanCos[i] - x2 * meanSin[i];
      out[to + (half + i) * stride] = x2 * meanCos[i] + x1 * meanSin[i];
    }
  };
  const mu = new Float64Array(H * d);
  for (let h = 0; h < H; h++) rotate(means, h * d, 1, mu, h * d);
  let cov: Float64Array | null = null;
  if (covs) {
    // R C Rᵀ: rotate every column, then every row.
    const columns = new Float64Array(covs.length);
    cov = new Float64Array(covs.length);
    for (let h = 0; h < H; h++) {
      const base = h * d * d;
      for (let b = 0; b < d; b++) rotate(covs, base + b, d, columns, base + b);
      for (let a = 0; a < d; a++) rotate(columns, base + a * d, 1, cov, base + a * d);
    }
  }
  return { mu, cov };
}

/** [numKvHeads, length] expected attention of future queries per token (the sinks get +Infinity: always kept). */
export function expectedAttentionScores(queries: Float32Array, kv: LayerKV, config: ModelConfig, options: ExpectedAttentionOptions): Float32Array {
  const { numHeads: H, headDim: d } = config;
  const heads = kv.numKvHeads;
  const n = kv.length;
  const group = H / heads;
  const { mu, cov } = futureQueryStatistics(queries, kv, config, options);
  const scores = new Float32Array(heads * n);
  const logits = new Float64Array(n);
  const scale = 1 / Math.sqrt(d);
  for (let h = 0; h < H; h++) {
    const g = Math.floor(h / group);
    let max = -Infinity;
    for (let s = options.sinks; s < n; s++) {
      const at = (s * heads + g) * d;
      let logit = 0;
      for (let c = 0; c < d; c++) logit += mu[h * d + c] * kv.keys[at + c];
      logit *= scale;
      if (cov) {
        let quadratic = 0;
        const base = h * d * d;
        for (let a = 0; a < d; a++) {
          let row = 0;
          for (let b = 0; b < d; b++) row += cov[base + a * d + b] * kv.keys[at + b];
          quadratic += kv.keys[at + a] * row;
        }
        logit += quadratic / d / 2;
      }
      logits[s] = logit;
      if (logit > max) max = logit;
    }
    let total = 0;
    for (let s = options.sinks; s < n; s++) total += logits[s] = Math.exp(logits[s] - max);
    for (let s = options.sinks; s < n; s++) scores[g * n + s] += logits[s] / total / group;
  }
  for (let g = 0; g < heads; g++) {
    for (let s = 0; s < n; s++) {
      if (s < options.sinks) {
        scores[g * n + s] = Infinity;
        continue;
      }
      if (!options.valueNorm) continue;
      let norm = 0;
      const at = (s * heads + g) * d;
      for (let c = 0; c < d; c++) norm += kv.values[at + c] ** 2;
      scores[g * n + s] *= Math.sqrt(norm);
    }
  }
  return scores;
}

function optionsOf(params: Params): ExpectedAttentionOptions {
  return { sinks: params.sinks!, future: params.future!, covariance: params.covariance === 1, valueNorm: params.vnorm === 1 };
}

export const expectedattention: MethodDefinition = {
  name: 'expectedattention',
  family: 'token-dropping',
  phases: ['after-prefill'],
  summary: 'keeps the tokens future queries are expected to attend to (query mean and covariance, averaged RoPE), times value norms',
  params: [
    ...SIZE_PARAMS,
    { name: 'sinks', default: 4, min: 0, max: 1024, integer: true, description: 'initial tokens always kept and left out of the query statistics' },
    { name: 'future', default: 512, min: 1, max: 100_000, integer: true, description: 'future positions the RoPE rotation is averaged over' },
    { name: 'covariance', default: 1, min: 0, max: 1, choices: [0, 1], integer: true, description: 'include the query covariance term (1) or the mean only (0)' },
    { name: 'vnorm', default: 1, min: 0, max: 1, choices: [0, 1], integer: true, description: 'multiply scores by the value norm' },
  ],
  paper: {
    authors: 'Devoto, Jeblick, Jégou',
    year: 2025,
    title: 'Expected Attention: KV Cache Compression by Estimating Attention from Future Queries Distribution',
    arxiv: '2510.00636',
  },
  build(params) {
    const options = optionsOf(params);
    const kept = (promptLength: number) => {
      const n = keptTokens(promptLength, params, 'expectedattention');
      if (promptLength - options.sinks < 2) {
        throw new KvlensError(`expectedattention: a ${promptLength}-token prompt leaves fewer than 2 queries after ${options.sinks} sinks for the statistics`);
      }
      return n;
    };
    return {
      kind: 'selector',
      selector: {
        needs: () => ({ queries: true }),
        size: (promptLength, config) => uniformSize(config, kept(promptLength)),
        select({ layers, stats, config }) {
          const length = layers[0].length;
          const keep = kept(length);
          return layers.map((layer, l) => {
            const queries = stats?.[l]?.queries;
            if (!queries || queries.length !== length * config.numHeads * config.headDim) throw missingStats('expectedattention', 'the rotated queries of every prompt token');
            const kv = layer.view();
            const scores = expectedAttentionScores(queries, kv, config, { ...options, layer: l });
            return range(0, kv.numKvHeads).map((h) => topK((slot) => scores[h * length + slot], range(0, length), keep));
          });
        },
      },
    };
  },
};

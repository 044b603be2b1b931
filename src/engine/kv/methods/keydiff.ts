// Keeps, per KV head, the tokens whose keys are least similar (cosine) to the mean of the normalised keys: distinctive keys, no attention needed.
// Park et al. 2025, "KeyDiff: Key Similarity-Based KV Cache Eviction for Long-Context LLM Inference in Resource-Constrained Environments" (arXiv 2504.15364).
import type { LayerKV } from '../cache';
import { SIZE_PARAMS, type MethodDefinition } from '../definition';
import { keptTokens, range, topK, uniformSize } from '../scores';

/** [numKvHeads, length]: minus the cosine similarity of each key to the head's mean normalised key (higher = kept). */
export function keyDiffScores(kv: LayerKV): Float32Array {
  const { numKvHeads: heads, headDim: d, length } = kv;
  const scores = new Float32Array(heads * length);
  const norm = (at: number) => {
    let sum = 0;
    for (let c = 0; c < d; c++) sum += kv.keys[at + c] ** 2;
    // F.normalize's floor: a zero key stays zero instead of dividing by zero.
    return Math.max(Math.sqrt(sum), 1e-12);
  };
  for (let h = 0; h < heads; h++) {
    const anchor = new Float64Array(d);
    for (let s = 0; s < length; s++) {
      const at = (s * heads + h) * d;
      const n = norm(at);
      for (let c = 0; c < d; c++) anchor[c] += kv.keys[at + c] / n / length;
    }
    let anchorNorm = 0;
    for (let c = 0; c < d; c++) anchorNorm += anchor[c] ** 2;
    anchorNorm = Math.max(Math.sqrt(anchorNorm), 1e-8);
    for (let s = 0; s < length; s++) {
      const at = (s * heads + h) * d;
      let dot = 0;
      for (let c = 0; c < d; c++) dot += kv.keys[at + c] * anchor[c];
      scores[h * length + s] = -dot / (Math.max(norm(at), 1e-8) * anchorNorm);
    }
  }
  return scores;
}

export const keydiff: MethodDefinition = {
  name: 'keydiff',
  family: 'token-dropping',
  phases: ['after-prefill'],
  summary: 'keeps the tokens whose keys differ most (cosine) from the mean key, per KV head',
  params: [...SIZE_PARAMS],
  paper: {
    authors: 'Park et al.',
    year: 2025,
    title: 'KeyDiff: Key Similarity-Based KV Cache Eviction for Long-Context LLM Inference in Resource-Constrained Environments',
    arxiv: '2504.15364',
  },
  build: (params) => ({
    kind: 'selector',
    selector: {
      needs: () => ({}),
      size: (promptLength, config) => uniformSize(config, keptTokens(promptLength, params, 'keydiff')),
      select({ layers }) {
        const kept = keptTokens(layers[0].length, params, 'keydiff');
        return layers.map((layer) => {
          const kv = layer.view();
          const scores = keyDiffScores(kv);
          return range(0, kv.numKvHeads).map((h) => topK((slot) => scores[h * kv.length + slot], range(0, kv.length), kept));
        });
      },
    },
  }),
};

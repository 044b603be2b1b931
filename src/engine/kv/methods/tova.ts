// Keeps the tokens the latest query attends to most (averaged over all heads of the layer), evicting the lowest one per decode step.
// Oren et al. 2024, "Transformers are Multi-State RNNs" (arXiv 2401.06104); the prompt is cut to the budget with the last prompt query's attention.
import type { LayerAttention } from '../../model/types';
import { SIZE_PARAMS, type MethodDefinition } from '../definition';
import { argMin, keptTokens, range, sumWindow, topK, uniformSize } from '../scores';

/** Last-query attention averaged over every query head: one score per slot. */
function lastQueryScores(attention: LayerAttention | undefined, keys: number): Float32Array {
  const perHead = sumWindow(attention, 1, keys, 'tova');
  const heads = perHead.length / keys;
  const mean = new Float32Array(keys);
  for (let h = 0; h < heads; h++) for (let k = 0; k < keys; k++) mean[k] += perHead[h * keys + k] / heads;
  return mean;
}

export const tova: MethodDefinition = {
  name: 'tova',
  family: 'token-dropping',
  phases: ['after-prefill', 'decode'],
  summary: "keeps the tokens the current query attends to most, evicting the lowest each decode step",
  params: [...SIZE_PARAMS],
  paper: { authors: 'Oren, Hassid, Yarden, Adi, Schwartz', year: 2024, title: 'Transformers are Multi-State RNNs', arxiv: '2401.06104' },
  build: (params) => ({
    kind: 'selector',
    selector: {
      needs: () => ({ windowSums: [1] }),
      size: (promptLength, config) => uniformSize(config, keptTokens(promptLength, params, 'tova')),
      select({ layers, stats }) {
        const length = layers[0].length;
        const kept = keptTokens(length, params, 'tova');
        return layers.map((layer, l) => {
          const scores = lastQueryScores(stats?.[l], length);
          const keep = topK((slot) => scores[slot], range(0, length), kept);
          return Array.from({ length: layer.numKvHeads }, () => keep);
        });
      },
      decode: {
        needs: { window: 1 },
        start(_layer, selected) {
          const budget = selected[0].length;
          return {
            afterStep(cache, attention) {
              const scores = lastQueryScores(attention ?? undefined, cache.length);
              if (cache.length <= budget) return null;
              return new Array<number>(cache.numKvHeads).fill(argMin((slot) => scores[slot], range(0, cache.length)));
            },
          };
        },
      },
    },
  }),
};

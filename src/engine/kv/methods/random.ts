// Keeps a seeded random subset of the prompt tokens per KV head: the floor any scoring method should beat.
// No paper: the random-eviction baseline of kvpress-style comparisons.
import { SIZE_PARAMS, type MethodDefinition } from '../definition';
import { keptTokens, uniformSize } from '../scores';
import { mulberry32 } from '../../random';

export const random: MethodDefinition = {
  name: 'random',
  family: 'token-dropping',
  phases: ['after-prefill'],
  summary: 'keeps a seeded random subset of tokens per KV head',
  params: [
    ...SIZE_PARAMS,
    { name: 'seed', default: 0, min: 0, max: 2 ** 31 - 1, integer: true, description: 'random seed (same seed, same selection)' },
  ],
  paper: null,
  build: (params) => ({
    kind: 'selector',
    selector: {
      needs: () => ({}),
      size: (promptLength, config) => uniformSize(config, keptTokens(promptLength, params, 'random')),
      select({ layers }) {
        const length = layers[0].length;
        const kept = keptTokens(length, params, 'random');
        return layers.map((layer, l) =>
          Array.from({ length: layer.numKvHeads }, (_, h) => {
            const next = mulberry32((params.seed! * 1000003 + l * 131 + h) >>> 0);
            const order = Array.from({ length }, (_, i) => i);
            // Partial Fisher-Yates: the first `kept` entries are a uniform sample without replacement.
            for (let i = 0; i < kept; i++) {
              const j = i + Math.floor(next() * (length - i));
              [order[i], order[j]] = [order[j], order[i]];
            }
            return order.slice(0, kept).sort((a, b) => a - b);
          }),
        );
      },
    },
  }),
};

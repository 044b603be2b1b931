// Keeps, per KV head, the tokens whose keys have the lowest L2 norm (low-norm keys draw the most attention).
// Devoto et al. 2024, "A Simple and Effective L2 Norm-Based Strategy for KV Cache Compression" (arXiv 2406.11430).
import { SIZE_PARAMS, type MethodDefinition } from '../definition';
import { keptTokens, range, topK, uniformSize } from '../scores';

export const knorm: MethodDefinition = {
  name: 'knorm',
  family: 'token-dropping',
  phases: ['after-prefill'],
  summary: 'keeps the tokens with the lowest key L2 norm per KV head',
  params: [...SIZE_PARAMS],
  paper: {
    authors: 'Devoto, Zhao, Scardapane, Minervini',
    year: 2024,
    title: 'A Simple and Effective L2 Norm-Based Strategy for KV Cache Compression',
    arxiv: '2406.11430',
  },
  build: (params) => ({
    kind: 'selector',
    selector: {
      needs: () => ({}),
      size: (promptLength, config) => uniformSize(config, keptTokens(promptLength, params, 'knorm')),
      select({ layers }) {
        const kept = keptTokens(layers[0].length, params, 'knorm');
        return layers.map((layer) => {
          const kv = layer.view();
          const { numKvHeads: heads, headDim: d } = kv;
          return Array.from({ length: heads }, (_, h) => {
            const norm = (slot: number) => {
              let sum = 0;
              for (let c = 0; c < d; c++) sum += kv.keys[(slot * heads + h) * d + c] ** 2;
              return Math.sqrt(sum);
            };
            return topK((slot) => -norm(slot), range(0, kv.length), kept);
          });
        });
      },
    },
  }),
};

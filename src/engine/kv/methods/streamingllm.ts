// Keeps the first `sinks` tokens (attention sinks) plus the most recent ones, and keeps that size while decoding.
// Xiao et al. 2023, "Efficient Streaming Language Models with Attention Sinks" (arXiv 2309.17453). Tokens keep their original positions.
import { KvlensError } from '../../errors';
import { SIZE_PARAMS, type MethodDefinition } from '../definition';
import { keptTokens, range, uniformSize } from '../scores';

export const streamingllm: MethodDefinition = {
  name: 'streamingllm',
  family: 'token-dropping',
  phases: ['after-prefill', 'decode'],
  summary: 'keeps attention-sink tokens plus a recent window',
  params: [...SIZE_PARAMS, { name: 'sinks', default: 4, min: 0, max: 1024, integer: true, description: 'initial tokens always kept' }],
  paper: { authors: 'Xiao, Tian, Chen, Han, Lewis', year: 2023, title: 'Efficient Streaming Language Models with Attention Sinks', arxiv: '2309.17453' },
  build(params) {
    const sinks = params.sinks!;
    const kept = (promptLength: number) => {
      const n = keptTokens(promptLength, params, 'streamingllm');
      if (n <= sinks) throw new KvlensError(`streamingllm: keeping ${n} tokens leaves no room for a recent window after ${sinks} sinks`);
      return n;
    };
    return {
      kind: 'selector',
      selector: {
        needs: () => ({}),
        size: (promptLength, config) => uniformSize(config, kept(promptLength)),
        select({ layers }) {
          const length = layers[0].length;
          const keep = [...range(0, sinks), ...range(length - (kept(length) - sinks), length)];
          return layers.map((layer) => Array.from({ length: layer.numKvHeads }, () => keep));
        },
        decode: {
          needs: undefined,
          start(_layer, selected) {
            const budget = selected[0].length;
            return {
              afterStep(cache) {
                if (cache.length <= budget) return null;
                // The oldest token after the sinks leaves the window.
                return new Array<number>(cache.numKvHeads).fill(sinks);
              },
            };
          },
        },
      },
    };
  },
};

// Keeps heavy hitters (tokens with the largest attention accumulated over all queries so far) plus a recent window, per KV head;
// keeps evicting while decoding. Zhang et al. 2023, "H2O: Heavy-Hitter Oracle for Efficient Generative Inference of Large Language Models" (arXiv 2306.14048).
import { SIZE_PARAMS, type MethodDefinition } from '../definition';
import { keptTokens, missingStats, perKvHead, range, topK, uniformSize } from '../scores';

export const h2o: MethodDefinition = {
  name: 'h2o',
  family: 'token-dropping',
  phases: ['after-prefill', 'decode'],
  summary: 'keeps heavy-hitter tokens by accumulated attention plus a recent window, during prefill and decode',
  params: [
    ...SIZE_PARAMS,
    { name: 'recent', default: 0.5, min: 0, max: 1, maxExclusive: true, integer: false, description: 'fraction of the kept tokens reserved for the most recent ones' },
  ],
  paper: {
    authors: 'Zhang, Sheng, Zhou, Chen, Zheng, Cai, Song, Tian, Ré, Barrett, Wang, Chen',
    year: 2023,
    title: 'H2O: Heavy-Hitter Oracle for Efficient Generative Inference of Large Language Models',
    arxiv: '2306.14048',
  },
  build(params) {
    const recentShare = params.recent ?? 0.5;
    const split = (kept: number) => Math.floor(kept * recentShare);
    return {
      kind: 'selector',
      selector: {
        needs: () => ({ keySums: true }),
        size: (promptLength, config) => uniformSize(config, keptTokens(promptLength, params, 'h2o')),
        select({ layers, stats, config }) {
          const length = layers[0].length;
          const kept = keptTokens(length, params, 'h2o');
          const recent = split(kept);
          return layers.map((_, l) => {
            const sums = stats?.[l]?.keySums;
            if (!sums) throw missingStats('h2o', 'per-key attention sums');
            const scores = perKvHead(sums, config.numHeads, config.numKvHeads, length);
            return Array.from({ length: config.numKvHeads }, (_, h) => [
              ...topK((slot) => scores[h * length + slot], range(0, length - recent), kept - recent),
              ...range(length - recent, length),
            ]);
          });
        },
        decode: {
          needs: { keySums: true },
          start(l, selected, { layers, stats, config }) {
            const length = layers[0].length;
            const prefill = perKvHead(stats?.[l]?.keySums ?? new Float32Array(0), config.numHeads, config.numKvHeads, length);
            // Accumulated score of every slot the cache holds, per head, in slot order.
            let scores = selected.map((slots, h) => slots.map((slot) => prefill[h * length + slot]));
            const budget = selected[0].length;
            const recent = split(budget);
            return {
              afterStep(cache, attention) {
                if (!attention?.keySums) throw missingStats('h2o', 'per-key attention sums of each decode step');
                const step = perKvHead(attention.keySums, config.numHeads, config.numKvHeads, cache.length);
                scores = scores.map((row, h) => {
                  const next = row.map((s, slot) => s + step[h * cache.length + slot]);
                  for (let slot = row.length; slot < cache.length; slot++) next.push(step[h * cache.length + slot]);
                  return next;
                });
                if (cache.length <= budget) return null;
                const keep = scores.map((row) => {
                  const candidates = range(0, cache.length - recent);
                  const victim = candidates.reduce((worst, slot) => (row[slot] < row[worst] ? slot : worst), candidates[0]);
                  return range(0, cache.length).filter((slot) => slot !== victim);
                });
                scores = scores.map((row, h) => keep[h].map((slot) => row[slot]));
                return keep;
              },
            };
          },
        },
      },
    };
  },
};

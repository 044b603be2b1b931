// Keeps heavy hitters (tokens with the largest attention accumulated over all queries so far) plus a recent window, per KV head;
// keeps evicting while decoding. Zhang et al. 2023, "H2O: Heavy-Hitter Oracle for Efficient Generative Inference of Large Language Models" (arXiv 2306.14048).
import { KvlensError } from '../../errors';
import { SIZE_PARAMS, type MethodDefinition } from '../definition';
import { argMin, keptTokens, missingStats, perKvHead, range, topK, uniformSize } from '../scores';

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
    const recentShare = params.recent!;
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
            const budget = selected[0].length;
            const recent = split(budget);
            // Accumulated score of every slot the cache holds, per head, in slot order (room for the one token each step adds).
            const scores = selected.map((slots, h) => {
              const row = new Float64Array(budget + 1);
              slots.forEach((slot, i) => (row[i] = prefill[h * length + slot]));
              return row;
            });
            return {
              afterStep(cache, attention) {
                if (!attention?.keySums) throw missingStats('h2o', 'per-key attention sums of each decode step');
                const keys = cache.length;
                if (keys > budget + 1) throw new KvlensError(`h2o evicts one token per decode step, but ${keys - budget} were appended`);
                const step = perKvHead(attention.keySums, config.numHeads, config.numKvHeads, keys);
                const victims = scores.map((row, h) => {
                  row[keys - 1] = 0;
                  for (let slot = 0; slot < keys; slot++) row[slot] += step[h * keys + slot];
                  return keys > budget ? argMin((slot) => row[slot], range(0, keys - recent)) : -1;
                });
                if (keys <= budget) return null;
                scores.forEach((row, h) => row.copyWithin(victims[h], victims[h] + 1, keys));
                return victims;
              },
            };
          },
        },
      },
    };
  },
};

// Keeps SnapKV-scored tokens with a per-layer budget shared adaptively among KV heads: a floor per head, the rest by global top-k.
// Feng et al. 2024, "Ada-KV: Optimizing KV Cache Eviction by Adaptive Budget Allocation for Efficient LLM Inference" (arXiv 2407.11550).
import { SIZE_PARAMS, type MethodDefinition } from '../definition';
import { keptTokens } from '../scores';
import { SNAP_PARAMS, checkKernel, observationWindow, snapScores } from '../snap';

export const adakv: MethodDefinition = {
  name: 'adakv',
  family: 'token-dropping',
  phases: ['after-prefill'],
  summary: "SnapKV scores with the layer's budget allocated across KV heads by global top-k, with a per-head floor",
  params: [
    ...SIZE_PARAMS,
    ...SNAP_PARAMS,
    { name: 'floor', default: 0.2, min: 0, max: 1, integer: false, description: 'share of the per-head budget every head keeps regardless of its scores' },
  ],
  paper: {
    authors: 'Feng, Lv, Cao, Xie, Zhou',
    year: 2024,
    title: 'Ada-KV: Optimizing KV Cache Eviction by Adaptive Budget Allocation for Efficient LLM Inference',
    arxiv: '2407.11550',
  },
  build(params) {
    checkKernel(params, 'adakv');
    return {
      kind: 'selector',
      selector: {
        needs: (promptLength) => ({ windowSums: [observationWindow(promptLength, params)] }),
        size(promptLength, config) {
          const kept = keptTokens(promptLength, params, 'adakv');
          return {
            totalTokens: config.numLayers * config.numKvHeads * kept,
            tokensPerHead: null,
            tokensPerLayer: new Array<number>(config.numLayers).fill(kept * config.numKvHeads),
          };
        },
        select({ layers, stats, config }) {
          const length = layers[0].length;
          const kept = keptTokens(length, params, 'adakv');
          const heads = config.numKvHeads;
          const floor = Math.min(kept, Math.max(Math.min(observationWindow(length, params), kept), Math.floor(params.floor! * kept)));
          return layers.map((_, l) => {
            const scores = snapScores(stats?.[l], length, config, params, 'adakv');
            // Rank every (head, slot) pair once; each head first takes its floor from its own ranking.
            const ranked = Array.from({ length: heads }, (_, h) =>
              Array.from({ length }, (_, s) => s).sort((a, b) => scores[h * length + b] - scores[h * length + a] || b - a),
            );
            const keep = ranked.map((order) => order.slice(0, floor));
            const rest: { h: number; s: number; score: number }[] = [];
            ranked.forEach((order, h) => order.slice(floor).forEach((s) => rest.push({ h, s, score: scores[h * length + s] })));
            rest.sort((a, b) => b.score - a.score || b.s - a.s || a.h - b.h);
            for (const pick of rest.slice(0, heads * (kept - floor))) keep[pick.h].push(pick.s);
            return keep.map((slots) => slots.sort((a, b) => a - b));
          });
        },
      },
    };
  },
};

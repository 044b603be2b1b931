// Keeps, per KV head, the observation window (last prompt tokens) plus the earlier tokens that window attends to most (pooled).
// Li et al. 2024, "SnapKV: LLM Knows What You are Looking for Before Generation" (arXiv 2404.14469).
import { SIZE_PARAMS, type MethodDefinition } from '../definition';
import { keptTokens, uniformSize } from '../scores';
import { SNAP_PARAMS, checkKernel, observationWindow, snapScores, snapSelect } from '../snap';

export const snapkv: MethodDefinition = {
  name: 'snapkv',
  family: 'token-dropping',
  phases: ['after-prefill'],
  summary: 'keeps the observation window plus the tokens it attends to most, per KV head',
  params: [...SIZE_PARAMS, ...SNAP_PARAMS],
  paper: {
    authors: 'Li, Huang, Yang, Venkitesh, Locatelli, Ye, Cai, Lewis, Chen',
    year: 2024,
    title: 'SnapKV: LLM Knows What You are Looking for Before Generation',
    arxiv: '2404.14469',
  },
  build(params) {
    checkKernel(params, 'snapkv');
    return {
      kind: 'selector',
      selector: {
        needs: (promptLength) => ({ windowSums: [observationWindow(promptLength, params)] }),
        size: (promptLength, config) => uniformSize(config, keptTokens(promptLength, params, 'snapkv')),
        select({ layers, stats, config }) {
          const length = layers[0].length;
          const kept = keptTokens(length, params, 'snapkv');
          return layers.map((_, l) => {
            const scores = snapScores(stats?.[l], length, config, params, 'snapkv');
            return Array.from({ length: config.numKvHeads }, (_, h) => snapSelect(scores, h, length, kept));
          });
        },
      },
    };
  },
};

// Keeps SnapKV-selected tokens with budgets falling linearly from the first layer to the last (same total as a flat budget).
// Cai et al. 2024, "PyramidKV: Dynamic KV Cache Compression based on Pyramidal Information Funneling" (arXiv 2406.02069).
import type { ModelConfig } from '../../model/config';
import { SIZE_PARAMS, type MethodDefinition, type Params } from '../definition';
import { keptTokens } from '../scores';
import { SNAP_PARAMS, checkKernel, observationWindow, snapScores, snapSelect } from '../snap';

/**
 * Integer per-layer budgets on the line from `2·avg − avg/beta` (layer 0) to `avg/beta` (last layer),
 * clamped to [1, length] and adjusted one token at a time so they sum to exactly layers·avg.
 */
export function pyramidBudgets(length: number, average: number, layers: number, beta: number): number[] {
  const low = average / beta;
  const high = 2 * average - low;
  const target = Array.from({ length: layers }, (_, l) => (layers === 1 ? average : high - ((high - low) * l) / (layers - 1)));
  const budgets = target.map((t) => Math.min(length, Math.max(1, Math.round(t))));
  let excess = budgets.reduce((a, b) => a + b, 0) - layers * average;
  while (excess !== 0) {
    // Move the layer furthest from its target in the needed direction, within [1, length].
    let best = -1;
    for (let l = 0; l < layers; l++) {
      const movable = excess > 0 ? budgets[l] > 1 : budgets[l] < length;
      if (!movable) continue;
      const gap = excess > 0 ? budgets[l] - target[l] : target[l] - budgets[l];
      if (best < 0 || gap > (excess > 0 ? budgets[best] - target[best] : target[best] - budgets[best])) best = l;
    }
    budgets[best] += excess > 0 ? -1 : 1;
    excess += excess > 0 ? -1 : 1;
  }
  return budgets;
}

function layerBudgets(length: number, params: Params, config: ModelConfig): number[] {
  return pyramidBudgets(length, keptTokens(length, params, 'pyramidkv'), config.numLayers, params.beta!);
}

export const pyramidkv: MethodDefinition = {
  name: 'pyramidkv',
  family: 'token-dropping',
  phases: ['after-prefill'],
  summary: 'SnapKV selection with per-layer budgets decreasing linearly across layers (same total)',
  params: [
    ...SIZE_PARAMS,
    ...SNAP_PARAMS,
    { name: 'beta', default: 20, min: 1, max: 1000, integer: false, description: 'the last layer keeps budget/beta tokens; the first keeps 2·budget − budget/beta' },
  ],
  paper: {
    authors: 'Cai, Zhang, Gao, Liu, Liu, Lu, Xiong, Dong, Chang, Hu, Xiao',
    year: 2024,
    title: 'PyramidKV: Dynamic KV Cache Compression based on Pyramidal Information Funneling',
    arxiv: '2406.02069',
  },
  build(params) {
    checkKernel(params, 'pyramidkv');
    return {
      kind: 'selector',
      selector: {
        needs: (promptLength) => ({ windowSums: [observationWindow(promptLength, params)] }),
        size(promptLength, config) {
          const budgets = layerBudgets(promptLength, params, config);
          return {
            totalTokens: config.numLayers * config.numKvHeads * keptTokens(promptLength, params, 'pyramidkv'),
            tokensPerHead: null,
            tokensPerLayer: budgets.map((b) => b * config.numKvHeads),
          };
        },
        select({ layers, stats, config }) {
          const length = layers[0].length;
          const budgets = layerBudgets(length, params, config);
          return layers.map((_, l) => {
            const scores = snapScores(stats?.[l], length, config, params, 'pyramidkv');
            return Array.from({ length: config.numKvHeads }, (_, h) => snapSelect(scores, h, length, budgets[l]));
          });
        },
      },
    };
  },
};

// SnapKV's observation-window scoring, shared by SnapKV, PyramidKV and AdaKV.
import { KvlensError } from '../errors';
import type { ModelConfig } from '../model/config';
import type { LayerAttention } from '../model/types';
import type { ParamSpec, Params } from './definition';
import { avgPool, perKvHead, range, sumWindow, topK } from './scores';

export const SNAP_PARAMS: ParamSpec[] = [
  { name: 'window', default: 32, min: 1, max: 1024, integer: true, description: 'observation window: the last prompt queries whose attention scores the rest (16 or fewer for prompts under 8 windows)' },
  { name: 'kernel', default: 7, min: 1, max: 63, integer: true, description: 'odd width of the average pooling along keys (1 disables pooling)' },
];

/** The window actually used: the configured one for long prompts, at most 16 (and an eighth of the prompt) for short ones. */
export function observationWindow(promptLength: number, params: Params): number {
  const window = params.window ?? 32;
  if (promptLength >= 8 * window) return window;
  return Math.max(1, Math.min(window, 16, Math.floor(promptLength / 8)));
}

export function checkKernel(params: Params, method: string): void {
  if ((params.kernel ?? 7) % 2 !== 1) throw new KvlensError(`${method}: kernel must be odd, got ${params.kernel}`);
}

/**
 * Per KV head, the pooled attention the observation window pays to each earlier key: [numKvHeads, length].
 * The window's own tokens get +Infinity: they are always kept first.
 */
export function snapScores(attention: LayerAttention | undefined, length: number, config: ModelConfig, params: Params, method: string): Float32Array {
  const window = observationWindow(length, params);
  const summed = sumWindow(attention, window, length, method);
  // Only the window's attention to earlier keys counts (its own keys are kept anyway and must not bleed into neighbours when pooling).
  for (let h = 0; h < config.numHeads; h++) summed.fill(0, h * length + length - window, (h + 1) * length);
  const pooled = avgPool(summed, config.numHeads, length, params.kernel ?? 7);
  const scores = perKvHead(pooled, config.numHeads, config.numKvHeads, length);
  for (let h = 0; h < config.numKvHeads; h++) scores.fill(Infinity, h * length + length - window, (h + 1) * length);
  return scores;
}

/** Top `kept` slots of one head by SnapKV score (the window first, then ties to the more recent token). */
export function snapSelect(scores: Float32Array, head: number, length: number, kept: number): number[] {
  return topK((slot) => scores[head * length + slot], range(0, length), kept);
}

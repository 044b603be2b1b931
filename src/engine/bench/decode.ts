// Greedy decoding on a method's compressed cache: every step attends only to what the method kept.
import { performance } from 'node:perf_hooks';
import type { DecoderForward } from '../model/types';
import type { MethodCache } from '../kv/method';
import type { AttentionRequest } from '../model/types';
import { argmax } from '../model/reference';

export interface CompressedDecodeOptions {
  maxNewTokens: number;
  stopTokenIds: readonly number[];
  /** RoPE position of the first generated token: the ORIGINAL prompt length, whatever was evicted. */
  startPosition: number;
  decodeNeeds: AttentionRequest | undefined;
  /** Stops early once the text so far holds a complete answer (e.g. an integer followed by a non-digit). */
  isComplete?: (generated: number[]) => boolean;
  signal?: AbortSignal;
}

export interface CompressedDecodeResult {
  tokens: number[];
  ms: number;
  steps: number;
  tokensPerSecond: number;
}

export async function decodeWithCache(
  forward: DecoderForward,
  cache: MethodCache,
  lastLogits: Float32Array,
  options: CompressedDecodeOptions,
): Promise<CompressedDecodeResult> {
  const { vocabSize } = forward.config;
  const stop = new Set(options.stopTokenIds);
  const tokens: number[] = [];
  let logits = lastLogits;
  let position = options.startPosition;
  let ms = 0;
  let steps = 0;
  for (;;) {
    const token = argmax(logits, logits.length - vocabSize, vocabSize);
    tokens.push(token);
    if (stop.has(token) || tokens.length >= options.maxNewTokens || options.isComplete?.(tokens)) break;
    options.signal?.throwIfAborted();
    const began = performance.now();
    const output = await forward.forward({
      tokens: [token],
      positions: [position],
      past: cache.views(),
      logits: 'last',
      attention: options.decodeNeeds,
    });
    for (let layer = 0; layer < output.newKeys.length; layer++) {
      cache.append(layer, output.newKeys[layer], output.newValues[layer], [position]);
    }
    cache.afterStep?.(output.attention, position);
    ms += performance.now() - began;
    steps++;
    position++;
    logits = output.logits;
  }
  return { tokens, ms, steps, tokensPerSecond: steps > 0 ? (steps * 1000) / ms : 0 };
}

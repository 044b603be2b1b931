// Greedy decoding on a method's compressed cache: every step attends only to what the method kept.
import type { DecoderForward } from '../model/types';
import type { MethodCache } from '../kv/method';
import type { AttentionRequest } from '../model/types';
import { greedyLoop } from '../model/prefill';

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
  const { tokens, ms, steps, tokensPerSecond } = await greedyLoop(forward, cache, lastLogits, {
    maxNewTokens: options.maxNewTokens,
    stopTokenIds: options.stopTokenIds,
    startPosition: options.startPosition,
    attention: options.decodeNeeds,
    isComplete: options.isComplete,
    signal: options.signal,
  });
  return { tokens, ms, steps, tokensPerSecond };
}

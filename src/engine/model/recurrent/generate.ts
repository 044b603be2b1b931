// Prefill and greedy decode on a recurrent model's carried state: prefill runs the prompt in chunks (bounded
// activations), decode one token per call, each step costing the same whatever the context.
import { performance } from 'node:perf_hooks';
import { KvlensError } from '../../errors';
import { argmax } from '../reference';
import type { RecurrentForward, RecurrentState } from './types';
import type { ModelSession } from '../../session';
import { formatBytes } from '../../format';

/** Tokens per prefill call: the state carries everything between calls, so this only bounds activation memory. */
export const PREFILL_CHUNK = 512;

export interface RecurrentPrefill {
  state: RecurrentState;
  lastLogits: Float32Array;
  ms: number;
  tokensPerSecond: number;
}

export function recurrentPrefill(forward: RecurrentForward, tokens: ArrayLike<number>, chunk = PREFILL_CHUNK): RecurrentPrefill {
  const n = tokens.length;
  if (n === 0) throw new KvlensError('the prompt is empty', 'prefill');
  const state = forward.initialState();
  const began = performance.now();
  let lastLogits: Float32Array = new Float32Array(0);
  for (let start = 0; start < n; start += chunk) {
    const ids = Array.from({ length: Math.min(chunk, n - start) }, (_, i) => tokens[start + i]);
    lastLogits = forward.forward(ids, state, 'last');
  }
  const ms = performance.now() - began;
  return { state, lastLogits, ms, tokensPerSecond: (n * 1000) / ms };
}

export interface RecurrentDecodeOptions {
  maxNewTokens: number;
  stopTokenIds?: readonly number[];
  isComplete?: (generated: number[]) => boolean;
  signal?: AbortSignal;
}

export interface RecurrentDecode {
  tokens: number[];
  stoppedBy: 'stop-token' | 'max-tokens' | 'complete';
  ms: number;
  /** Forward calls (one per generated token after the first, which comes from the prefill logits). */
  steps: number;
  tokensPerSecond: number;
}

/** Greedy generation from the prompt's last logits, advancing `state` in place. */
export function recurrentGreedy(forward: RecurrentForward, state: RecurrentState, lastLogits: Float32Array, options: RecurrentDecodeOptions): RecurrentDecode {
  if (!Number.isInteger(options.maxNewTokens) || options.maxNewTokens < 1) {
    throw new KvlensError(`maxNewTokens must be a positive integer, got ${options.maxNewTokens}`, 'decode');
  }
  const stop = new Set(options.stopTokenIds ?? []);
  const tokens: number[] = [];
  let logits = lastLogits;
  let ms = 0;
  let steps = 0;
  const finish = (stoppedBy: RecurrentDecode['stoppedBy']): RecurrentDecode => ({ tokens, stoppedBy, ms, steps, tokensPerSecond: steps > 0 ? (steps * 1000) / ms : 0 });
  for (;;) {
    const token = argmax(logits);
    tokens.push(token);
    if (stop.has(token)) return finish('stop-token');
    if (tokens.length >= options.maxNewTokens) return finish('max-tokens');
    if (options.isComplete?.(tokens)) return finish('complete');
    options.signal?.throwIfAborted();
    const began = performance.now();
    logits = forward.forward([token], state, 'last');
    ms += performance.now() - began;
    steps++;
  }
}

/**
 * `kvlens generate` on a recurrent session: the fields an attention model's run reports (its KV cache bytes
 * are 0) plus the state the model carried between steps, and the footer line.
 */
export function recurrentGeneration(session: ModelSession, forward: RecurrentForward, ids: number[], maxNewTokens: number): { human: string; json: Record<string, unknown> } {
  const pre = recurrentPrefill(forward, ids);
  const decoded = recurrentGreedy(forward, pre.state, pre.lastLogits, {
    maxNewTokens,
    stopTokenIds: [...session.tokenizer.eosIds, ...forward.config.eosTokenIds],
  });
  const text = session.tokenizer.decode(decoded.tokens, { skipSpecialTokens: true });
  const stateBytes = pre.state.bytes();
  const json = {
    text,
    promptTokens: ids.length,
    generatedTokens: decoded.tokens.length,
    stoppedBy: decoded.stoppedBy,
    prefillMs: pre.ms,
    prefillTokensPerSecond: pre.tokensPerSecond,
    decodeTokensPerSecond: decoded.tokensPerSecond,
    decodeMsPerToken: decoded.tokensPerSecond > 0 ? 1000 / decoded.tokensPerSecond : null,
    timeToFirstTokenMs: pre.ms,
    peakRssMiB: process.resourceUsage().maxRSS / 1024,
    weights: session.weightFormatLabel,
    kvDtype: session.kvDtype,
    kvCacheBytes: 0,
    recurrentStateBytes: stateBytes,
    estimatedMiB: session.memoryEstimate.totalBytes / 2 ** 20,
    estimateContextTokens: session.memoryEstimate.contextTokens,
    executionProvider: session.provider,
  };
  const footer =
    `[${ids.length} prompt tokens · prefill ${pre.ms.toFixed(0)} ms (${pre.tokensPerSecond.toFixed(0)} tok/s) · decode ${decoded.tokensPerSecond.toFixed(1)} tok/s · ` +
    `weights ${session.weightFormatLabel} · ${forward.config.hfArchitecture}: no KV cache, recurrent state ${formatBytes(stateBytes)} at any length · ${session.provider}]`;
  return { human: `${text}\n\n${footer}`, json };
}

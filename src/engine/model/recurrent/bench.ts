// A sweep's row on a recurrent model: there is no KV cache to compress, so the one applicable method is
// `full`, and the memory the row reports is the state the model carries between steps (constant in context).
import { KvlensError, describeError } from '../../errors';
import { createMethod } from '../../kv';
import { scoreSample, type Sample } from '../../tasks';
import type { ResultRow } from '../../bench/results';
import type { ModelSession } from '../../session';
import { recurrentGreedy, recurrentPrefill } from './generate';
import { noKvCache } from './session';
import type { RecurrentForward } from './types';

/** The family recurrent rows are reported under, beside the KV methods' families. */
export const RECURRENT_FAMILY = 'recurrent';

/**
 * Refuses every method but `full` (the others compress a KV cache this model does not have); returns the
 * run-log line saying what the model carries instead.
 */
export function checkRecurrentMethods(forward: RecurrentForward, specs: readonly string[]): string {
  const refused = specs.map((spec) => createMethod(spec).spec).filter((spec) => spec !== 'full');
  if (refused.length > 0) {
    throw new KvlensError(`${noKvCache(forward.config)}: only method full applies (refused: ${refused.join(', ')}); run it with --methods full`);
  }
  const state = forward.initialState();
  const arrays = state.layers[0].map((a) => `${a.name} [${a.shape.join(', ')}]`).join(' + ');
  return `${noKvCache(forward.config)}: ${state.bytes()} bytes (${forward.config.numLayers} layers x ${arrays} fp32) at any context length; every row is method full, family ${RECURRENT_FAMILY}`;
}

export interface RecurrentRowOptions {
  /** The label the row carries in a sweep of several models. */
  model: string;
  maxNewTokens: number;
  isComplete?: (generated: number[]) => boolean;
  signal?: AbortSignal;
}

/** Prefills `tokens` on a fresh state, decodes greedily on the carried state and scores the continuation. */
export function recurrentRow(session: ModelSession, forward: RecurrentForward, sample: Sample, tokens: number[], options: RecurrentRowOptions): ResultRow {
  const stateBytes = forward.initialState().bytes();
  const base: ResultRow = {
    model: options.model,
    task: sample.task,
    sampleId: sample.id,
    length: tokens.length,
    targetLength: sample.targetLength,
    depth: sample.depth,
    method: 'full',
    family: RECURRENT_FAMILY,
    score: 0,
    exact: false,
    answer: '',
    expected: sample.answer,
    prediction: '',
    metric: sample.scoring,
    group: sample.benchmark?.group ?? null,
    // No token is held: everything the model keeps of the prompt is in its state.
    tokensKept: 0,
    tokensKeptPerHead: 0,
    tokensFull: tokens.length,
    bytesHeld: stateBytes,
    bytesFull: stateBytes,
    bytesActive: stateBytes,
    compressionRatio: 1,
    verified: false,
    note: null,
    prefillMs: 0,
    compressMs: 0,
    decodeTokensPerSecond: 0,
    peakRssBytes: 0,
    source: sample.source,
    error: null,
    recurrentStateBytes: stateBytes,
  };
  try {
    const pre = recurrentPrefill(forward, tokens);
    const decoded = recurrentGreedy(forward, pre.state, pre.lastLogits, {
      maxNewTokens: options.maxNewTokens,
      stopTokenIds: session.tokenizer.eosIds,
      isComplete: options.isComplete,
      signal: options.signal,
    });
    // The promise a recurrent model makes: what it carried after the prompt and every step is what it started with.
    const held = pre.state.bytes();
    if (held !== stateBytes) throw new KvlensError(`${forward.config.hfArchitecture} state grew from ${stateBytes} to ${held} bytes while running`, session.modelPath);
    const prediction = session.tokenizer.decode(decoded.tokens, { skipSpecialTokens: true });
    const score = scoreSample(sample, prediction);
    return {
      ...base,
      score: score.score,
      exact: score.exact,
      answer: score.answer,
      prediction,
      verified: true,
      note: `${noKvCache(forward.config)} (${forward.config.numLayers} layers, ${stateBytes} bytes at any context length)`,
      prefillMs: pre.ms,
      decodeTokensPerSecond: decoded.tokensPerSecond,
      peakRssBytes: process.resourceUsage().maxRSS * 1024,
    };
  } catch (error) {
    if (options.signal?.aborted) throw error;
    return { ...base, error: describeError(error), peakRssBytes: process.resourceUsage().maxRSS * 1024 };
  }
}

// The sweep: plan it (sweepPlan.ts: methods, samples, the config snapshot), then for each sample prefill once,
// fork the cache per method, compress, decode, score, and save the results file after every sample.
import { performance } from 'node:perf_hooks';
import { KvlensError, describeError } from '../errors';
import type { BenchRequest, ProgressEvent } from '../host/protocol';
import { prefill } from '../model/prefill';
import { createMethod, mergeNeeds, verifyCompression, verifyDecode, type KvMethod } from '../kv';
import { scoreSample, type Sample } from '../tasks';
import { decodeWithCache } from './decode';
import { keptFractions, retainedContext, tokenLines } from './retained';
import { DEFAULT_PREFILL_CHUNK, conditionalScorer, lineStarts, selfInformation } from './surprise';
import { writeFileAtomic } from './atomicWrite';
import { claimOutputFile, type OutputClaim } from './outputLock';
import { RESULTS_SCHEMA_VERSION, type ResultRow, type ResultsFile } from './results';
import { encodePrompt, modelSnapshot, planSweep, type SweepPlan } from './sweepPlan';
import { modelLabel } from './migrate';
import { sweepContextTokens } from './estimate';
import { checkContextLength } from '../model/config';
import type { ModelSession } from '../session';
import { checkRecurrentMethods, recurrentRow } from '../model/recurrent/bench';
import { NonFiniteLogitsError } from '../model/finiteLogits';

export { checkDistinctMethods } from './sweepPlan';

export interface RunHooks {
  onProgress?: (progress: ProgressEvent) => void;
  onLog?: (line: string) => void;
  onRow?: (row: ResultRow) => void;
  signal?: AbortSignal;
  /**
   * The results file already claimed by the caller (the CLI claims it before the model loads, with its --force);
   * without one, the run claims request.outFile itself, refusing an existing file or one another run writes.
   */
  output?: OutputClaim;
}

/** New tokens to generate per task: the benchmark's own number, else an integer answer is short, a completed line longer. */
function maxNewTokensFor(sample: Sample, requested: number | undefined): number {
  if (requested !== undefined) return requested;
  if (sample.generation) return sample.generation.maxNewTokens;
  return sample.scoring === 'exact' ? 12 : 40;
}

/** Stops decoding as soon as the answer is complete, so every method pays for the same work. */
function completionCheck(session: ModelSession, sample: Sample): (generated: number[]) => boolean {
  const text = (ids: number[]) => session.tokenizer.decode(ids, { skipSpecialTokens: true });
  // Benchmarks generate to their token budget or EOS (samsum also stops at a newline), as their authors do.
  if (sample.generation && !sample.generation.stopAtNewline) return () => false;
  if (sample.scoring === 'exact' && /^\d+$/.test(sample.answer.trim())) {
    return (ids) => /\d+\D/.test(text(ids)) || /\n/.test(text(ids).replace(/^\s+/, ''));
  }
  return (ids) => {
    const generated = text(ids);
    const firstContent = generated.search(/\S/);
    return firstContent >= 0 && generated.indexOf('\n', firstContent) >= 0;
  };
}

function peakRss(): number {
  return process.resourceUsage().maxRSS * 1024;
}

/** One model of a sweep: its session, the label its rows carry and the methods it runs. */
interface SweepModel {
  session: ModelSession;
  label: string;
  methods: KvMethod[];
}

/**
 * Runs a sweep on one model, or on several side by side (`--model default,<folder>`): every model prefills
 * each sample itself and its rows carry its label. The first model's tokenizer builds the samples' text, so
 * every model answers the same prompts; a recurrent model has no KV cache and runs only `full`.
 */
export async function runBench(sessions: ModelSession | readonly ModelSession[], request: BenchRequest, hooks: RunHooks = {}): Promise<ResultsFile> {
  const all = Array.isArray(sessions) ? (sessions as readonly ModelSession[]) : [sessions as ModelSession];
  if (all.length === 0) throw new KvlensError('a sweep needs at least one model');
  const log: string[] = [];
  const say = (line: string) => {
    log.push(line);
    hooks.onLog?.(line);
  };
  const labels = all.map((session) => modelLabel(session.modelPath));
  const repeated = labels.find((label, i) => labels.indexOf(label) !== i);
  if (repeated !== undefined) {
    const paths = all.filter((_, i) => labels[i] === repeated).map((s) => s.modelPath);
    throw new KvlensError(`two models of the sweep go by the label ${JSON.stringify(repeated)} (${paths.join(', ')}): their rows could not be told apart; give them folders of different names`);
  }
  for (const session of all) {
    if (session.fallbackReasons.length > 0) for (const reason of session.fallbackReasons) say(`provider fallback: ${reason}`);
    say(`model ${session.modelPath} on ${session.provider}, weights ${session.weightFormatLabel} (${session.weightFormat.reason}), KV cache ${session.kvDtype}`);
    // Alone, a recurrent model refuses KV methods (they were asked of it); beside a transformer they are the transformer's.
    if (session.recurrent && all.length === 1) say(checkRecurrentMethods(session.recurrent, request.methods));
  }
  const claim = request.outFile && !hooks.output ? claimOutputFile(request.outFile, { lock: true, say }) : null;
  try {
    for (const session of all.slice(1)) {
      checkContextLength(session.model.config, sweepContextTokens(request.lengths), `lengths ${request.lengths.join(', ')} (${session.modelPath})`, request.allowLongContext);
    }
    const plan = await planSweep(all[0], request, { signal: hooks.signal, say });
    const models: SweepModel[] = all.map((session, i) => ({ session, label: labels[i], methods: session.recurrent ? [createMethod('full')] : plan.methods }));
    if (all.length > 1) {
      plan.config.models = [];
      for (const model of models) {
        plan.config.models.push({ ...(await modelSnapshot(model.session)), label: model.label, methods: model.methods.map((m) => m.spec) });
        if (model.session.recurrent) {
          const skipped = plan.methods.filter((m) => m.spec !== 'full').map((m) => m.spec);
          say(`${model.label}: ${checkRecurrentMethods(model.session.recurrent, ['full'])}${skipped.length > 0 ? ` (${skipped.join(', ')} run on the other models only)` : ''}`);
        }
      }
    }
    return await runSweep(models, plan, request, hooks, { log, say });
  } finally {
    claim?.release();
  }
}

/** Runs a planned sweep: the results file is written before the first sample and after every one. */
async function runSweep(models: SweepModel[], plan: SweepPlan, request: BenchRequest, hooks: RunHooks, runLog: { log: string[]; say: (line: string) => void }): Promise<ResultsFile> {
  const { samples } = plan;
  const { say } = runLog;
  const finished = { samples: samples.length, samplesDone: 0 };
  const results: ResultsFile = {
    schemaVersion: RESULTS_SCHEMA_VERSION,
    createdAt: new Date().toISOString(),
    status: 'running',
    config: plan.config,
    rows: [],
    progress: finished,
    scan: plan.scan,
    log: runLog.log,
  };
  const save = () => {
    if (request.outFile) writeFileAtomic(request.outFile, JSON.stringify(results, null, 1) + '\n');
  };
  // Written before the first sample, so a run killed during the sweep leaves a file that says it is unfinished
  // (not an earlier run's file at the same path), and an unwritable --out fails before any work is done.
  try {
    save();
  } catch (error) {
    throw new KvlensError(`cannot write the results file (${(error as NodeJS.ErrnoException).code ?? describeError(error)})`, request.outFile ?? undefined);
  }

  const rowsPerSample = models.reduce((n, m) => n + m.methods.length, 0);
  const progress = progressReporter(samples.length * rowsPerSample, hooks.onProgress);
  const several = models.length > 1;
  const push = (row: ResultRow) => {
    results.rows.push(row);
    hooks.onRow?.(row);
    progress.done();
  };
  try {
    for (const sample of samples) {
      for (const { session, label, methods } of models) {
        hooks.signal?.throwIfAborted();
        // A recurrent model has no cache to fork: its one row (method full) runs on the state it carries.
        const context = session.recurrent ? null : await prefillOrRecord(session, label, sample, methods, request.maxNewTokens, hooks.signal);
        if (context && 'failed' in context) {
          // The model's own prefill of this prompt gave non-finite logits: every method's row says so, and the
          // sweep goes on (another prompt may run), instead of decoding an argmax over NaN.
          say(`${several ? `${label}: ` : ''}${sample.id}: ${context.failed}; recorded as an error on every method's row`);
          for (const method of methods) push({ ...blankRow(label, sample, context.tokens, 0, 0, method), error: context.failed, peakRssBytes: peakRss() });
          continue;
        }
        for (const method of methods) {
          hooks.signal?.throwIfAborted();
          progress.step(`${several ? `${label} · ` : ''}${sample.task} ${sample.targetLength}${sample.depth === null ? '' : ` d=${sample.depth}`} · ${method.spec}`);
          push(context ? await runMethod(context, method) : recurrentSampleRow(session, label, sample, request.maxNewTokens, hooks.signal));
        }
      }
      progress.step(`${sample.id} done`);
      finished.samplesDone++;
      save();
    }
    results.status = 'complete';
  } catch (error) {
    if (hooks.signal?.aborted) {
      results.status = 'cancelled';
      say(`cancelled after ${results.rows.length} rows (${finished.samplesDone} of ${samples.length} samples finished)`);
    } else {
      results.status = 'failed';
      say(`failed: ${describeError(error)}`);
      save();
      throw error;
    }
  }
  save();
  return results;
}

function recurrentSampleRow(session: ModelSession, label: string, sample: Sample, maxNewTokens: number | undefined, signal: AbortSignal | undefined): ResultRow {
  const options = { model: label, maxNewTokens: maxNewTokensFor(sample, maxNewTokens), isComplete: completionCheck(session, sample), signal };
  return recurrentRow(session, session.recurrent!, sample, encodePrompt(session, sample.prompt), options);
}

/** Progress events with an ETA from the pace so far: `step` reports what starts, `done` counts a finished row. */
function progressReporter(total: number, onProgress: RunHooks['onProgress']): { step: (message: string) => void; done: () => void } {
  const began = performance.now();
  let done = 0;
  return {
    step: (message) => {
      const elapsed = (performance.now() - began) / 1000;
      onProgress?.({ done, total, message, etaSeconds: done > 0 ? (elapsed / done) * (total - done) : null });
    },
    done: () => {
      done++;
    },
  };
}

/** What every method of one sample shares: the prompt, its one prefill, and what each row is measured against. */
interface SampleContext {
  session: ModelSession;
  /** The label the model's rows carry. */
  model: string;
  sample: Sample;
  tokens: number[];
  /** The prefill every cache method forks (with the attention statistics any of them needs). */
  shared: Prefilled;
  /** Bytes `full` holds for this prompt: the denominator of every compression ratio. */
  fullBytes: number;
  /** Source line of each prompt token: the retained-context map and LLMLingua's line stage both read them. */
  lineOfToken: Int32Array;
  /** Overrides the task's own number of new tokens. */
  maxNewTokens: number | undefined;
  signal: AbortSignal | undefined;
}

type Prefilled = Awaited<ReturnType<typeof prefill>>;

async function prefillSample(
  session: ModelSession,
  model: string,
  sample: Sample,
  methods: KvMethod[],
  options: { maxNewTokens: number | undefined; signal: AbortSignal | undefined },
): Promise<SampleContext> {
  const { forward } = session;
  const tokens = encodePrompt(session, sample.prompt);
  const needs = mergeNeeds(...methods.filter((m) => !m.compressPrompt).map((m) => m.needs(tokens.length)));
  const shared = await prefill(forward, tokens, { chunkSize: DEFAULT_PREFILL_CHUNK, attention: needs });
  const lineOfToken = tokenLines(tokens.map((id) => session.tokenizer.decode([id], { skipSpecialTokens: true })));
  const fullBytes = createMethod('full').compress({ layers: shared.layers, stats: null, config: session.model.config }).bytes().held;
  return { session, model, sample, tokens, shared, fullBytes, lineOfToken, ...options };
}

/** The sample's shared prefill, or (when its logits were NaN or infinite) the error every method's row records. */
async function prefillOrRecord(
  session: ModelSession,
  model: string,
  sample: Sample,
  methods: KvMethod[],
  maxNewTokens: number | undefined,
  signal: AbortSignal | undefined,
): Promise<SampleContext | { failed: string; tokens: number[] }> {
  try {
    return await prefillSample(session, model, sample, methods, { maxNewTokens, signal });
  } catch (error) {
    if (signal?.aborted || !(error instanceof NonFiniteLogitsError)) throw error;
    return { failed: `prefill: ${error.message}`, tokens: encodePrompt(session, sample.prompt) };
  }
}

/** A method's row before it has run: what the sample and the shared prefill already say. */
function emptyRow(context: SampleContext, method: KvMethod): ResultRow {
  return blankRow(context.model, context.sample, context.tokens, context.fullBytes, context.shared.ms, method);
}

function blankRow(model: string, sample: Sample, tokens: number[], fullBytes: number, prefillMs: number, method: KvMethod): ResultRow {
  return {
    model,
    task: sample.task,
    sampleId: sample.id,
    length: tokens.length,
    targetLength: sample.targetLength,
    depth: sample.depth,
    method: method.spec,
    family: method.family.includes('+') ? 'combined' : method.family,
    score: 0,
    exact: false,
    answer: '',
    expected: sample.answer,
    prediction: '',
    metric: sample.scoring,
    group: sample.benchmark?.group ?? null,
    tokensKept: 0,
    tokensKeptPerHead: 0,
    tokensFull: tokens.length,
    bytesHeld: 0,
    bytesFull: fullBytes,
    bytesActive: 0,
    compressionRatio: 0,
    verified: false,
    note: null,
    prefillMs,
    compressMs: 0,
    decodeTokensPerSecond: 0,
    peakRssBytes: 0,
    source: sample.source,
    error: null,
  };
}

/** Prompt compression shortens the prompt and prefills it anew; cache methods use the shared prefill as it is. */
async function promptFor(context: SampleContext, method: KvMethod): Promise<{ prompt: number[]; prefilled: Prefilled; compressMs: number }> {
  const { session, sample, tokens, shared } = context;
  if (!method.compressPrompt) return { prompt: tokens, prefilled: shared, compressMs: 0 };
  const started = performance.now();
  const protectedSuffix = session.tokenizer.encode(queryText(session, sample.prompt), { addSpecialTokens: false }).length;
  const prompt = await method.compressPrompt(tokens, {
    protectedSuffix,
    selfInformation: async (ids) => selfInformation(session, ids),
    lineStarts: lineStarts(context.lineOfToken),
    conditionalScorer: () => conditionalScorer(session),
  });
  const compressMs = performance.now() - started;
  const prefilled = await prefill(session.forward, prompt, { chunkSize: DEFAULT_PREFILL_CHUNK, attention: method.needs(prompt.length) });
  return { prompt, prefilled, compressMs };
}

/** One row: compress (a fork of) the sample's cache with `method`, verify it, decode the answer and score it. */
async function runMethod(context: SampleContext, method: KvMethod): Promise<ResultRow> {
  const { session, sample, tokens } = context;
  const { forward, tokenizer, model } = session;
  const config = model.config;
  const base = emptyRow(context, method);
  try {
    const { prompt, prefilled, compressMs: promptMs } = await promptFor(context, method);
    if (method.compressPrompt) {
      base.prefillMs = prefilled.ms;
      base.length = prompt.length;
    }
    const started = performance.now();
    // Line starts let chunk-based methods (ChunkKV) cut at source lines; a compressed prompt has lost them.
    const lines = method.compressPrompt ? undefined : lineStarts(context.lineOfToken);
    const cache = method.compress({ layers: prefilled.layers, stats: prefilled.stats, config, lineStarts: lines });
    const compressMs = promptMs + (performance.now() - started);
    const verification = verifyCompression(method, cache, prefilled.layers, config);
    const heldTokens = cache.tokensPerHead().flat();
    // Prompt compression renumbers the prompt, so only cache methods map back to source lines.
    const retained =
      sample.segments && !method.compressPrompt
        ? retainedContext(method.spec, sample.segments, context.lineOfToken, keptFractions(cache.views(), tokens.length))
        : undefined;
    const bytes = cache.bytes();
    const decoded = await decodeWithCache(forward, cache, prefilled.lastLogits, {
      maxNewTokens: maxNewTokensFor(sample, context.maxNewTokens),
      stopTokenIds: tokenizer.eosIds,
      startPosition: prompt.length,
      decodeNeeds: method.decodeNeeds,
      isComplete: completionCheck(session, sample),
      signal: context.signal,
    });
    verifyDecode(method, cache, prompt.length, decoded.steps, config);
    const continuation = tokenizer.decode(decoded.tokens, { skipSpecialTokens: true });
    const score = scoreSample(sample, continuation);
    const tokensKept = heldTokens.reduce((a, b) => a + b, 0);
    return {
      ...base,
      score: score.score,
      exact: score.exact,
      answer: score.answer,
      prediction: continuation,
      tokensKept,
      tokensKeptPerHead: tokensKept / Math.max(1, heldTokens.length),
      bytesHeld: bytes.held,
      bytesActive: bytes.active,
      compressionRatio: bytes.held > 0 ? context.fullBytes / bytes.held : 0,
      verified: verification.verified,
      note: verification.note,
      compressMs,
      decodeTokensPerSecond: decoded.tokensPerSecond,
      peakRssBytes: peakRss(),
      ...(retained ? { retained } : {}),
    };
  } catch (error) {
    if (context.signal?.aborted) throw error;
    return { ...base, error: describeError(error), peakRssBytes: peakRss() };
  }
}

/**
 * The part of a prompt that asks the question, which prompt compression must keep: the cue line of a base
 * prompt, or for a chat prompt the question paragraph plus the template's closing text.
 */
export function queryText(session: Pick<ModelSession, 'tokenizer'>, prompt: string): string {
  if (!session.tokenizer.hasChatTemplate) return prompt.slice(prompt.lastIndexOf('\n') + 1);
  const marker = '\u0000';
  const rendered = session.tokenizer.applyChatTemplate([{ role: 'user', content: marker }]);
  const tail = rendered.slice(rendered.indexOf(marker) + marker.length);
  const body = prompt.endsWith(tail) ? prompt.slice(0, prompt.length - tail.length) : prompt;
  return prompt.slice(body.lastIndexOf('\n\n') + 2);
}


// The sweep: workspace → samples → for each sample prefill once, fork the cache per method, compress, decode, score.
import { cpus, totalmem, platform, arch } from 'node:os';
import { performance } from 'node:perf_hooks';
import { relative, resolve } from 'node:path';
import { KvlensError, describeError } from '../errors';
import type { ChatMessage } from '../tasks';
import type { BenchRequest, ProgressEvent } from '../host/protocol';
import { prefill } from '../model/prefill';
import { createMethod, mergeNeeds, verifyCompression, verifyDecode, type KvMethod } from '../kv';
import { checkContextLength } from '../model/config';
import { sweepContextTokens } from './estimate';
import { scanWorkspace, buildSamples, importJsonl, scoreSample, type Sample } from '../tasks';
import { decodeWithCache } from './decode';
import { keptFractions, retainedContext, tokenLines } from './retained';
import { DEFAULT_PREFILL_CHUNK, conditionalScorer, lineStarts, selfInformation } from './surprise';
import { writeFileAtomic } from './atomicWrite';
import { shardSlice } from './merge';
import { RESULTS_SCHEMA_VERSION, type ResultRow, type ResultsFile, type RunConfigSnapshot } from './results';
import { modelContentHash, type ModelSession } from '../session';
import { KVLENS_VERSION } from '../version';
import { checkRecurrentMethods, recurrentRow } from '../model/recurrent/bench';

export interface RunHooks {
  onProgress?: (progress: ProgressEvent) => void;
  onLog?: (line: string) => void;
  onRow?: (row: ResultRow) => void;
  signal?: AbortSignal;
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

function machineSnapshot(): RunConfigSnapshot['machine'] {
  const cores = cpus();
  return {
    platform: platform(),
    arch: arch(),
    cpus: Math.max(1, cores.length),
    cpuModel: cores[0]?.model ?? 'unknown',
    totalMemoryBytes: totalmem(),
    node: process.version,
  };
}

function peakRss(): number {
  return process.resourceUsage().maxRSS * 1024;
}

interface WorkItem {
  sample: Sample;
}

/**
 * Refuses bad method specs and a method listed twice (`kivi` and `kivi:bits=2` are the same method): its rows
 * would share their keys, which merge then rejects.
 */
export function checkDistinctMethods(specs: string[], where: string): void {
  const seen = new Map<string, string>();
  for (const spec of specs) {
    const canonical = createMethod(spec).spec;
    const earlier = seen.get(canonical);
    if (earlier !== undefined) {
      const as = earlier === spec ? '' : ` (as ${JSON.stringify(earlier)} and ${JSON.stringify(spec)})`;
      throw new KvlensError(`${where} lists ${JSON.stringify(canonical)} twice${as}: list each method once`);
    }
    seen.set(canonical, spec);
  }
}

export async function runBench(session: ModelSession, request: BenchRequest, hooks: RunHooks = {}): Promise<ResultsFile> {
  const log: string[] = [];
  const say = (line: string) => {
    log.push(line);
    hooks.onLog?.(line);
  };
  if (session.fallbackReasons.length > 0) for (const reason of session.fallbackReasons) say(`provider fallback: ${reason}`);
  say(`model ${session.modelPath} on ${session.provider}, weights ${session.weightFormatLabel} (${session.weightFormat.reason}), KV cache ${session.kvDtype}`);

  checkContextLength(session.model.config, sweepContextTokens(request.lengths), `lengths ${request.lengths.join(', ')}`, request.allowLongContext);
  checkDistinctMethods(request.methods, 'methods');
  const methods: KvMethod[] = request.methods.map((spec) => createMethod(spec));
  if (!methods.some((m) => m.spec === 'full')) methods.unshift(createMethod('full'));
  if (session.recurrent) say(checkRecurrentMethods(session.recurrent, request.methods));

  const workspace = resolve(request.workspace);
  const scan = await scanWorkspace(workspace, { signal: hooks.signal });
  for (const line of scan.log) say(`scan: ${line}`);
  // Profile Current File / Selection: these files open every context and supply the completion targets.
  const focusFiles = request.files && request.files.length > 0 ? request.files : request.selection ? [request.selection.file] : undefined;
  const workspacePath = (f: string) => relative(workspace, resolve(workspace, f)).split('\\').join('/');
  const focus = focusFiles?.map(workspacePath);
  const focusLines = request.selection
    ? { file: workspacePath(request.selection.file), startLine: request.selection.startLine, endLine: request.selection.endLine }
    : undefined;
  if (focusLines) say(`focus: completion and cross-file targets from ${focusLines.file} lines ${focusLines.startLine + 1}-${focusLines.endLine + 1} where they have any`);
  say(`scan: ${scan.files.length} files used, skipped ${JSON.stringify(scan.skipped)}`);

  const counter = {
    encode: (text: string) => encodePrompt(session, text),
    decode: (ids: number[]) => session.tokenizer.decode(ids, { skipSpecialTokens: true }),
  };
  const style = session.tokenizer.hasChatTemplate ? { formatChat: (messages: ChatMessage[]) => session.tokenizer.applyChatTemplate(messages) } : {};
  const allSamples: Sample[] =
    request.tasks.length === 0
      ? []
      : buildSamples(scan.files, {
          focus,
          focusLines,
          tasks: request.tasks,
          lengths: request.lengths,
          depths: request.depths,
          samplesPerCell: request.samples,
          seed: request.seed,
          counter,
          style,
          onLog: say,
        });
  for (const file of request.imports ?? []) {
    const imported = importJsonl(resolve(file), { counter, maxTokens: Math.max(...request.lengths), limit: request.importLimit, style });
    say(`imported ${imported.length} samples from ${file}`);
    allSamples.push(...imported);
  }
  if (allSamples.length === 0) throw new KvlensError('nothing to run: no tasks and no imported samples');
  const shard = request.shard ?? null;
  const samples = shard ? shardSlice(allSamples, shard.index, shard.count) : allSamples;
  const work: WorkItem[] = samples.map((sample) => ({ sample }));

  const config: RunConfigSnapshot = {
    kvlensVersion: KVLENS_VERSION,
    model: {
      path: session.modelPath,
      contentHash: await modelContentHash(session.modelPath),
      architecture: session.model.config.hfArchitecture,
      dtype: session.model.dtype,
      parameters: session.model.parameterCount,
      weights: session.weightFormatLabel,
      kvDtype: session.kvDtype,
    },
    tokenizer: session.tokenizer.tokenizerFile,
    executionProvider: session.provider,
    methods: methods.map((m) => m.spec),
    tasks: request.tasks,
    lengths: request.lengths,
    depths: request.depths,
    samples: request.samples,
    seed: request.seed,
    shard,
    workspace,
    machine: machineSnapshot(),
  };
  const finished = { samples: work.length, samplesDone: 0 };
  const results: ResultsFile = {
    schemaVersion: RESULTS_SCHEMA_VERSION,
    createdAt: new Date().toISOString(),
    status: 'running',
    config,
    rows: [],
    progress: finished,
    scan: { filesUsed: scan.files.length, skipped: scan.skipped },
    log,
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

  const total = work.length * methods.length;
  const began = performance.now();
  let done = 0;
  const progress = (message: string) => {
    const elapsed = (performance.now() - began) / 1000;
    hooks.onProgress?.({ done, total, message, etaSeconds: done > 0 ? (elapsed / done) * (total - done) : null });
  };
  try {
    for (const { sample } of work) {
      hooks.signal?.throwIfAborted();
      await runSample(session, sample, methods, request, hooks, {
        onMethod: (method) => progress(`${sample.task} ${sample.targetLength}${sample.depth === null ? '' : ` d=${sample.depth}`} · ${method}`),
        onRow: (row) => {
          results.rows.push(row);
          hooks.onRow?.(row);
          done++;
        },
      });
      progress(`${sample.id} done`);
      finished.samplesDone++;
      save();
    }
    results.status = 'complete';
  } catch (error) {
    if (hooks.signal?.aborted) {
      results.status = 'cancelled';
      say(`cancelled after ${results.rows.length} rows (${finished.samplesDone} of ${work.length} samples finished)`);
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

async function runSample(
  session: ModelSession,
  sample: Sample,
  methods: KvMethod[],
  request: BenchRequest,
  hooks: RunHooks,
  emit: { onMethod: (spec: string) => void; onRow: (row: ResultRow) => void },
): Promise<void> {
  const { forward, model } = session;
  const tokens = encodePrompt(session, sample.prompt);
  if (session.recurrent) {
    emit.onMethod('full');
    const options = { maxNewTokens: maxNewTokensFor(sample, request.maxNewTokens), isComplete: completionCheck(session, sample), signal: hooks.signal };
    return emit.onRow(recurrentRow(session, session.recurrent, sample, tokens, options));
  }
  const needs = mergeNeeds(...methods.filter((m) => !m.compressPrompt).map((m) => m.needs(tokens.length)));
  const shared = await prefill(forward, tokens, { chunkSize: DEFAULT_PREFILL_CHUNK, attention: needs });
  // Source lines of the prompt's tokens: the retained-context map and LLMLingua's line stage both read them.
  const lineOfToken = tokenLines(tokens.map((id) => session.tokenizer.decode([id], { skipSpecialTokens: true })));
  const fullBytes = createMethod('full').compress({ layers: shared.layers, stats: null, config: model.config }).bytes().held;
  for (const method of methods) {
    hooks.signal?.throwIfAborted();
    emit.onMethod(method.spec);
    emit.onRow(await runMethod(session, sample, method, tokens, shared, fullBytes, lineOfToken, request, hooks));
  }
}

async function runMethod(
  session: ModelSession,
  sample: Sample,
  method: KvMethod,
  tokens: number[],
  shared: Awaited<ReturnType<typeof prefill>>,
  fullBytes: number,
  lineOfToken: Int32Array,
  request: BenchRequest,
  hooks: RunHooks,
): Promise<ResultRow> {
  const { forward, tokenizer, model } = session;
  const config = model.config;
  const base: ResultRow = {
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
    prefillMs: shared.ms,
    compressMs: 0,
    decodeTokensPerSecond: 0,
    peakRssBytes: 0,
    source: sample.source,
    error: null,
  };
  try {
    let prompt = tokens;
    let prefilled = shared;
    let compressMs = 0;
    if (method.compressPrompt) {
      const started = performance.now();
      const protectedSuffix = tokenizer.encode(queryText(session, sample.prompt), { addSpecialTokens: false }).length;
      prompt = await method.compressPrompt(tokens, {
        protectedSuffix,
        selfInformation: async (ids) => selfInformation(session, ids),
        lineStarts: lineStarts(lineOfToken),
        conditionalScorer: () => conditionalScorer(session),
      });
      compressMs += performance.now() - started;
      prefilled = await prefill(forward, prompt, { chunkSize: DEFAULT_PREFILL_CHUNK, attention: method.needs(prompt.length) });
      base.prefillMs = prefilled.ms;
      base.length = prompt.length;
    }
    const started = performance.now();
    const cache = method.compress({ layers: prefilled.layers, stats: prefilled.stats, config });
    compressMs += performance.now() - started;
    const verification = verifyCompression(method, cache, prefilled.layers, config);
    const heldTokens = cache.tokensPerHead().flat();
    // Prompt compression renumbers the prompt, so only cache methods map back to source lines.
    const retained =
      sample.segments && !method.compressPrompt
        ? retainedContext(method.spec, sample.segments, lineOfToken, keptFractions(cache.views(), tokens.length))
        : undefined;
    const bytes = cache.bytes();
    const decoded = await decodeWithCache(forward, cache, prefilled.lastLogits, {
      maxNewTokens: maxNewTokensFor(sample, request.maxNewTokens),
      stopTokenIds: tokenizer.eosIds,
      startPosition: prompt.length,
      decodeNeeds: method.decodeNeeds,
      isComplete: completionCheck(session, sample),
      signal: hooks.signal,
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
      compressionRatio: bytes.held > 0 ? fullBytes / bytes.held : 0,
      verified: verification.verified,
      note: verification.note,
      compressMs,
      decodeTokensPerSecond: decoded.tokensPerSecond,
      peakRssBytes: peakRss(),
      ...(retained ? { retained } : {}),
    };
  } catch (error) {
    if (hooks.signal?.aborted) throw error;
    return { ...base, error: describeError(error), peakRssBytes: peakRss() };
  }
}

/** Chat prompts already hold the template's BOS; base prompts get the tokenizer's special tokens. */
function encodePrompt(session: ModelSession, text: string): number[] {
  return session.tokenizer.encode(text, { addSpecialTokens: !session.tokenizer.hasChatTemplate });
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


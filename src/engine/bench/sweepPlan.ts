// Planning a sweep, before anything runs: which methods (full always among them), which samples (the
// workspace's tasks and the imported benchmark rows, this shard's slice of them) and the configuration
// snapshot the results file records. runner.ts executes the plan.
import { cpus, totalmem, platform, arch } from 'node:os';
import { relative, resolve } from 'node:path';
import { KvlensError } from '../errors';
import type { BenchRequest } from '../host/protocol';
import { createMethod, type KvMethod } from '../kv';
import { checkContextLength } from '../model/config';
import { buildSamples, importSamples, scanWorkspace, type ChatMessage, type Sample, type ScanResult } from '../tasks';
import type { FocusLines } from '../tasks/types';
import { sweepContextTokens } from './estimate';
import { shardSlice } from './merge';
import type { ModelSnapshot, ResultsFile, RunConfigSnapshot } from './results';
import { modelLabel } from './migrate';
import { modelContentHash, type ModelSession } from '../session';
import { KVLENS_VERSION } from '../version';

export interface SweepPlan {
  /** The requested methods, with `full` first when it was not requested (every ratio is against it). */
  methods: KvMethod[];
  /** This shard's samples, in the order they run. */
  samples: Sample[];
  config: RunConfigSnapshot;
  scan: ResultsFile['scan'];
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

/** Chat prompts already hold the template's BOS; base prompts get the tokenizer's special tokens. */
export function encodePrompt(session: ModelSession, text: string): number[] {
  return session.tokenizer.encode(text, { addSpecialTokens: !session.tokenizer.hasChatTemplate });
}

/** Everything that can be refused is refused here, before the workspace is scanned or a sample is built. */
export async function planSweep(session: ModelSession, request: BenchRequest, options: { signal?: AbortSignal; say: (line: string) => void }): Promise<SweepPlan> {
  const { say } = options;
  checkContextLength(session.model.config, sweepContextTokens(request.lengths), `lengths ${request.lengths.join(', ')}`, request.allowLongContext);
  const methods = sweepMethods(request.methods);

  const workspace = resolve(request.workspace);
  const scan = await scanWorkspace(workspace, { signal: options.signal });
  for (const line of scan.log) say(`scan: ${line}`);
  const { focus, focusLines } = focusOf(request, workspace);
  if (focusLines) say(`focus: completion and cross-file targets from ${focusLines.file} lines ${focusLines.startLine + 1}-${focusLines.endLine + 1} where they have any`);
  say(`scan: ${scan.files.length} files used, skipped ${JSON.stringify(scan.skipped)}`);

  const allSamples = await sweepSamples(session, request, scan, focus, focusLines, say);
  const repeated = workspaceRepetition(allSamples);
  if (repeated) {
    say(
      `scan: the workspace is smaller than the contexts: a ${repeated.targetLength}-token context holds its ${repeated.distinctLines} distinct lines ` +
        `${repeated.times.toFixed(1)}x over (a larger folder gives contexts that do not repeat)`,
    );
  }
  const shard = request.shard ?? null;
  const samples = shard ? shardSlice(allSamples, shard.index, shard.count) : allSamples;
  return { methods, samples, config: await configSnapshot(session, request, methods, workspace), scan: { filesUsed: scan.files.length, skipped: scan.skipped } };
}

/**
 * How often the most repeated context repeats the workspace's lines: a small folder is cycled to fill a long
 * context, which a run must say (retrieval from a context that repeats itself is a different test). One sample
 * per length is looked at, so a big sweep pays nothing; null when no context repeats a line.
 */
export function workspaceRepetition(samples: readonly Sample[]): { targetLength: number; distinctLines: number; times: number } | null {
  const firstPerLength = new Map<number, Sample>();
  for (const sample of samples) if (sample.segments && !firstPerLength.has(sample.targetLength)) firstPerLength.set(sample.targetLength, sample);
  let worst: { targetLength: number; distinctLines: number; times: number } | null = null;
  for (const sample of firstPerLength.values()) {
    const distinct = new Set<string>();
    let total = 0;
    for (const segment of sample.segments ?? []) {
      total += segment.lineCount;
      for (let i = 0; i < segment.lineCount; i++) distinct.add(`${segment.file}\u0000${segment.startLine + i}`);
    }
    const times = distinct.size > 0 ? total / distinct.size : 1;
    if (times > 1.05 && (!worst || times > worst.times)) worst = { targetLength: sample.targetLength, distinctLines: distinct.size, times };
  }
  return worst;
}

function sweepMethods(specs: string[]): KvMethod[] {
  checkDistinctMethods(specs, 'methods');
  const methods = specs.map((spec) => createMethod(spec));
  if (!methods.some((m) => m.spec === 'full')) methods.unshift(createMethod('full'));
  return methods;
}

/** Profile Current File / Selection: these files open every context and supply the completion targets. */
function focusOf(request: BenchRequest, workspace: string): { focus?: string[]; focusLines?: FocusLines } {
  const focusFiles = request.files && request.files.length > 0 ? request.files : request.selection ? [request.selection.file] : undefined;
  const workspacePath = (f: string) => relative(workspace, resolve(workspace, f)).split('\\').join('/');
  const selection = request.selection;
  return {
    focus: focusFiles?.map(workspacePath),
    focusLines: selection ? { file: workspacePath(selection.file), startLine: selection.startLine, endLine: selection.endLine } : undefined,
  };
}

/** The workspace's task grid, then each imported file's rows. */
async function sweepSamples(
  session: ModelSession,
  request: BenchRequest,
  scan: ScanResult,
  focus: string[] | undefined,
  focusLines: FocusLines | undefined,
  say: (line: string) => void,
): Promise<Sample[]> {
  const counter = {
    encode: (text: string) => encodePrompt(session, text),
    decode: (ids: number[]) => session.tokenizer.decode(ids, { skipSpecialTokens: true }),
  };
  const style = session.tokenizer.hasChatTemplate ? { formatChat: (messages: ChatMessage[]) => session.tokenizer.applyChatTemplate(messages) } : {};
  const samples: Sample[] =
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
    const imported = await importSamples(resolve(file), { counter, maxTokens: Math.max(...request.lengths), limit: request.importLimit, rulerTask: request.rulerTask, style });
    say(`imported ${imported.length} samples from ${file}`);
    samples.push(...imported);
  }
  if (samples.length === 0) throw new KvlensError('nothing to run: no tasks and no imported samples');
  return samples;
}

/** What the results file records of one model. */
export async function modelSnapshot(session: ModelSession): Promise<ModelSnapshot> {
  return {
    path: session.modelPath,
    contentHash: await modelContentHash(session.modelPath),
    architecture: session.model.config.hfArchitecture,
    dtype: session.model.dtype,
    parameters: session.model.parameterCount,
    weights: session.weightFormatLabel,
    kvDtype: session.kvDtype,
  };
}

async function configSnapshot(session: ModelSession, request: BenchRequest, methods: KvMethod[], workspace: string): Promise<RunConfigSnapshot> {
  const model = await modelSnapshot(session);
  return {
    kvlensVersion: KVLENS_VERSION,
    model,
    models: [{ ...model, label: modelLabel(session.modelPath), methods: methods.map((m) => m.spec) }],
    tokenizer: session.tokenizer.tokenizerFile,
    executionProvider: session.provider,
    methods: methods.map((m) => m.spec),
    tasks: request.tasks,
    lengths: request.lengths,
    depths: request.depths,
    samples: request.samples,
    seed: request.seed,
    shard: request.shard ?? null,
    workspace,
    machine: machineSnapshot(),
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

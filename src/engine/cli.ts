// `kvlens`: the headless command line over the same engine the VS Code extension drives.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { readFileSync, existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { constants as osConstants } from 'node:os';
import { KvlensError, describeError } from './errors';
import { KVLENS_VERSION } from './version';
import { openModel } from './session';
import { parseWeightsChoice } from './model/weightFormat';
import { formatModelInfo, modelInfo } from './model/info';
import { greedyDecode, prefill } from './model/prefill';
import { recurrentGeneration } from './model/recurrent/generate';
import { recurrentModelInfo } from './model/recurrent/info';
import { listMethods } from './kv';
import { TASKS } from './tasks';
import { mergeResults, parseShard } from './bench/merge';
import { checkDistinctMethods, runBench } from './bench/runner';
import { summaryMarkdown, toCsv, toMarkdown } from './bench/export';
import { paperTableCsv, paperTableMarkdown } from './bench/paperTable';
import { RULER_TASKS, rulerTask } from './tasks/ruler';
import { sweepContextTokens } from './bench/estimate';
import { parseKvDtype } from './kv/kv-dtype';
import { denseBytes } from './kv/dense-cache';
import { checkContextLength } from './model/config';
import { DenseLayerCache } from './kv/cache';
import { writeFileAtomic } from './bench/atomicWrite';
import { checkOverwrite, claimOutputFile } from './bench/outputLock';
import { readResultsFile } from './bench/validate';
import { checkBenchRequest, type ExecutionProviderChoice, type BenchRequest, type ProgressEvent } from './host/protocol';
import { EXECUTION_PROVIDERS, RUN_SETTINGS, cliDefault } from './bench/runSettings';
import { downloadModel, type DownloadProgress } from './model/download';

type Values = Record<string, string | boolean | undefined>;

interface Command {
  summary: string;
  usage: string;
  options: NonNullable<ParseArgsConfig['options']>;
  run(values: Values, positionals: string[]): Promise<void>;
}

// Defaults come from the run settings table (bench/runSettings.ts), which the VS Code settings share.
const MODEL_OPTIONS = {
  model: { type: 'string', default: cliDefault('model') },
  provider: { type: 'string', default: cliDefault('executionProvider') },
  backend: { type: 'string', default: 'onnx' },
  weights: { type: 'string', default: cliDefault('weights') },
  threads: { type: 'string' },
  'kv-dtype': { type: 'string', default: cliDefault('kvDtype') },
  'allow-long-context': { type: 'boolean', default: false },
  json: { type: 'boolean', default: false },
} as const;

function providerOf(values: Values): ExecutionProviderChoice {
  const provider = String(values.provider);
  if (!(EXECUTION_PROVIDERS as readonly string[]).includes(provider)) {
    throw new KvlensError(`--provider must be ${EXECUTION_PROVIDERS.slice(0, -1).join(', ')} or ${EXECUTION_PROVIDERS.at(-1)}, got ${provider}`);
  }
  return provider as ExecutionProviderChoice;
}

// The choice flags as usage lines show them, from the run settings table.
const PROVIDER_FLAG = `--provider ${EXECUTION_PROVIDERS.join('|')}`;
const WEIGHTS_FLAG = `--weights ${(RUN_SETTINGS.weights.choices ?? []).join('|')}`;
const KV_DTYPE_FLAG = `--kv-dtype ${(RUN_SETTINGS.kvDtype.choices ?? []).join('|')}`;

/** The flag that sets each run request field, for naming it when the request check refuses the field. */
const REQUEST_FLAGS: Partial<Record<keyof BenchRequest, string>> = {
  workspace: '<folder>',
  maxNewTokens: '--max-new-tokens',
  imports: '--import',
  importLimit: '--import-limit',
  rulerTask: '--ruler-task',
  provider: '--provider',
  outFile: '--out',
};

/** Refuses a request the engine would refuse, naming the flag. */
function checkRequestFlags(request: BenchRequest): void {
  const problem = checkBenchRequest(request, '');
  if (!problem) return;
  const field = /^\w+/.exec(problem)?.[0] as keyof BenchRequest | undefined;
  const flag = (field && REQUEST_FLAGS[field]) ?? `--${field ?? 'bench'}`;
  throw new KvlensError(`${flag}: ${problem}`);
}

function threadsOf(values: Values): number | undefined {
  if (values.threads === undefined) return undefined;
  const threads = Number(values.threads);
  if (!Number.isInteger(threads) || threads < 1) throw new KvlensError(`--threads must be a positive integer, got ${String(values.threads)}`);
  return threads;
}

function backendOf(values: Values): 'onnx' | 'reference' {
  const backend = String(values.backend);
  if (backend !== 'onnx' && backend !== 'reference') throw new KvlensError(`--backend must be onnx or reference, got ${backend}`);
  return backend;
}

/** "1k" → 1024, "4096" → 4096. */
export function parseLength(text: string): number {
  const match = /^(\d+(?:\.\d+)?)(k)?$/i.exec(text.trim());
  if (!match) throw new KvlensError(`a length must look like 1024 or 1k, got ${JSON.stringify(text)}`);
  const value = Math.round(Number(match[1]) * (match[2] ? 1024 : 1));
  if (value < 16) throw new KvlensError(`a length must be at least 16 tokens, got ${text}`);
  return value;
}

function list(text: string | boolean | undefined, fallback: string[]): string[] {
  if (typeof text !== 'string' || text.trim() === '') return fallback;
  return text.split(',').map((s) => s.trim()).filter(Boolean);
}

/** Splits a method list on commas that separate specs, not those between a spec's parameters. */
export function splitMethods(text: string): string[] {
  const specs: string[] = [];
  for (const part of text.split(',').map((s) => s.trim()).filter(Boolean)) {
    // "snapkv:ratio=0.5,window=32": a part with "=" and no ":" continues the previous spec's parameters.
    if (specs.length > 0 && !part.includes(':') && part.includes('=') && /:[^+]*$/.test(specs[specs.length - 1])) {
      specs[specs.length - 1] += `,${part}`;
    } else specs.push(part);
  }
  return specs;
}

function print(values: Values, human: string, json: unknown): void {
  process.stdout.write(values.json ? JSON.stringify(json, null, 2) + '\n' : human.endsWith('\n') ? human : human + '\n');
}

/** The models of `--model a,b`: each entry once, none empty. */
function modelList(text: string): string[] {
  const models = text.split(',').map((m) => m.trim());
  if (models.some((m) => m === '')) throw new KvlensError(`--model ${JSON.stringify(text)} has an empty entry: list models as default,<folder>`);
  const twice = models.find((m, i) => models.indexOf(m) !== i);
  if (twice !== undefined) throw new KvlensError(`--model lists ${JSON.stringify(twice)} twice: list each model once`);
  return models;
}

async function open(values: Values, contextTokens?: number) {
  return openModel(String(values.model), { provider: providerOf(values), backend: backendOf(values), contextTokens, weights: parseWeightsChoice(values.weights), threads: threadsOf(values), kvDtype: parseKvDtype(String(values['kv-dtype'])) });
}

const commands: Record<string, Command> = {
  info: {
    summary: 'architecture, parameters, dtype, weight bytes, KV bytes per 1k tokens, execution provider',
    usage: `kvlens info [--model default|<hf-folder>|<file.gguf>] [${PROVIDER_FLAG}] [${WEIGHTS_FLAG}] [${KV_DTYPE_FLAG}] [--json]`,
    options: { ...MODEL_OPTIONS },
    async run(values) {
      const session = await open(values);
      try {
        if (session.recurrent) {
          const described = recurrentModelInfo(session, session.recurrent);
          return print(values, described.human, described.json);
        }
        const details = modelInfo(session.model, session.weightFormat, session.weightFormatLabel);
        const info = { ...details, kvDtype: session.kvDtype, executionProvider: session.provider, providerFallbacks: session.fallbackReasons };
        const fallbacks = session.fallbackReasons.map((reason) => `  (not used: ${reason})`);
        const kvLine = `${'KV cache held as'.padEnd(22)}  ${session.kvDtype} (full-precision caches; ${KV_DTYPE_FLAG})`;
        print(values, [formatModelInfo(details), kvLine, `${'execution provider'.padEnd(22)}  ${session.provider}`, ...fallbacks].join('\n'), info);
      } finally {
        await session.dispose();
      }
    },
  },
  generate: {
    summary: 'greedy generation with separate, timed prefill and decode',
    usage: `kvlens generate [--model M] (--prompt TEXT | --prompt-file F) [--max-new-tokens N] [${WEIGHTS_FLAG}] [${KV_DTYPE_FLAG}] [--threads N] [--json]`,
    options: { ...MODEL_OPTIONS, prompt: { type: 'string' }, 'prompt-file': { type: 'string' }, 'max-new-tokens': { type: 'string', default: '32' } },
    async run(values) {
      let prompt: string;
      if (typeof values.prompt === 'string') prompt = values.prompt;
      else if (typeof values['prompt-file'] === 'string') {
        const file = resolve(values['prompt-file']);
        if (!existsSync(file)) throw new KvlensError('prompt file not found', file);
        prompt = readFileSync(file, 'utf8');
      } else throw new KvlensError('generate needs --prompt TEXT or --prompt-file F');
      const maxNewTokens = Number(values['max-new-tokens']);
      if (!Number.isInteger(maxNewTokens) || maxNewTokens < 1) throw new KvlensError(`--max-new-tokens must be a positive integer, got ${values['max-new-tokens']}`);
      const session = await open(values);
      try {
        const ids = session.tokenizer.encode(prompt);
        checkContextLength(session.model.config, ids.length + maxNewTokens, 'generate', Boolean(values['allow-long-context']));
        if (session.recurrent) {
          const run = recurrentGeneration(session, session.recurrent, ids, maxNewTokens);
          return print(values, run.human, run.json);
        }
        const pre = await prefill(session.forward, ids);
        const decoded = await greedyDecode(session.forward, pre.layers, pre.lastLogits, {
          maxNewTokens,
          stopTokenIds: [...session.tokenizer.eosIds, ...session.model.config.eosTokenIds],
          startPosition: ids.length,
        });
        const text = session.tokenizer.decode(decoded.tokens, { skipSpecialTokens: true });
        const result = {
          text,
          promptTokens: ids.length,
          generatedTokens: decoded.tokens.length,
          stoppedBy: decoded.stoppedBy,
          prefillMs: pre.ms,
          prefillTokensPerSecond: pre.tokensPerSecond,
          decodeTokensPerSecond: decoded.tokensPerSecond,
          decodeMsPerToken: decoded.tokensPerSecond > 0 ? 1000 / decoded.tokensPerSecond : null,
          // The first new token is the argmax of the prefill's last logits.
          timeToFirstTokenMs: pre.ms,
          peakRssMiB: process.resourceUsage().maxRSS / 1024,
          weights: session.weightFormatLabel,
          kvDtype: session.kvDtype,
          kvCacheBytes: denseBytes(pre.layers.map((layer) => layer.view())).held,
          // What the load was checked against: weights as held + the full cache at the estimate's context.
          estimatedMiB: session.memoryEstimate.totalBytes / 2 ** 20,
          estimateContextTokens: session.memoryEstimate.contextTokens,
          executionProvider: session.provider,
        };
        print(
          values,
          `${text}\n\n[${ids.length} prompt tokens · prefill ${pre.ms.toFixed(0)} ms (${pre.tokensPerSecond.toFixed(0)} tok/s) · decode ${decoded.tokensPerSecond.toFixed(1)} tok/s · weights ${session.weightFormatLabel} · KV ${session.kvDtype} · ${session.provider}]`,
          result,
        );
      } finally {
        await session.dispose();
      }
    },
  },
  logits: {
    summary: 'logits of every position for given token ids (parity checks against another implementation)',
    usage: 'kvlens logits [--model M] --ids 1,2,3 [--json]',
    options: { ...MODEL_OPTIONS, ids: { type: 'string' } },
    async run(values) {
      if (typeof values.ids !== 'string') throw new KvlensError('logits needs --ids 1,2,3');
      const ids = values.ids.split(',').map((s) => Number(s.trim()));
      if (ids.length === 0 || ids.some((id) => !Number.isInteger(id) || id < 0)) throw new KvlensError(`--ids must be non-negative integers, got ${values.ids}`);
      const session = await open(values);
      try {
        const vocab = session.model.config.vocabSize;
        const bad = ids.find((id) => id >= vocab);
        if (bad !== undefined) throw new KvlensError(`token id ${bad} is outside the vocabulary (size ${vocab})`);
        const { numLayers, numKvHeads, headDim } = session.model.config;
        const empty = Array.from({ length: numLayers }, () => new DenseLayerCache(numKvHeads, headDim, 1).view());
        const out = await session.forward.forward({ tokens: ids, positions: ids.map((_, i) => i), past: empty, logits: 'all' });
        const rows = ids.map((_, i) => Array.from(out.logits.subarray(i * vocab, (i + 1) * vocab)));
        const result = { ids, vocabSize: vocab, executionProvider: session.provider, logits: rows };
        print(values, JSON.stringify(result), result);
      } finally {
        await session.dispose();
      }
    },
  },
  methods: {
    summary: 'every KV compression method with parameters, defaults, phase and paper',
    usage: 'kvlens methods [--json]',
    options: { json: { type: 'boolean', default: false } },
    async run(values) {
      const methods = listMethods();
      const human = methods
        .map((m) => {
          const params = m.params.map((p) => `${p.name}=${p.default ?? '-'}`).join(', ');
          return `${m.name.padEnd(13)} ${m.family.padEnd(19)} ${m.phases.join('+').padEnd(26)} ${params}\n${''.padEnd(13)} ${m.paper ? `${m.paper.authors} ${m.paper.year}, "${m.paper.title}"` : ''}`;
        })
        .join('\n');
      print(values, human, methods);
    },
  },
  tasks: {
    summary: 'the task generators that turn a codebase into long-context queries',
    usage: 'kvlens tasks [--json]',
    options: { json: { type: 'boolean', default: false } },
    async run(values) {
      print(values, TASKS.map((t) => `${t.id.padEnd(11)} ${t.scoring.padEnd(16)} ${t.description}`).join('\n'), TASKS);
    },
  },
  bench: {
    summary: 'build queries from a codebase and compare KV methods on them (the main job)',
    usage:
      `kvlens bench <folder> [--model default|<hf-folder>[,<another model>...]] [${WEIGHTS_FLAG}] [${KV_DTYPE_FLAG}] [--methods full,kivi:bits=4,...] [--tasks needle,completion,...] ` +
      '[--lengths 1k,2k,4k] [--depths 0,0.25,0.5,0.75,1] [--samples N] [--seed S] [--shard i/n] [--import F.jsonl,...] [--ruler-task T] ' +
      '[--out results.json] [--csv F] [--md F] [--paper-csv F] [--force] [--json]',
    options: {
      ...MODEL_OPTIONS,
      methods: { type: 'string' },
      tasks: { type: 'string' },
      lengths: { type: 'string' },
      depths: { type: 'string' },
      samples: { type: 'string' },
      seed: { type: 'string' },
      shard: { type: 'string' },
      out: { type: 'string' },
      csv: { type: 'string' },
      md: { type: 'string' },
      'max-new-tokens': { type: 'string' },
      import: { type: 'string' },
      'import-limit': { type: 'string' },
      'ruler-task': { type: 'string' },
      'paper-csv': { type: 'string' },
      force: { type: 'boolean', default: false },
    },
    async run(values, positionals) {
      const folder = resolve(positionals[0] ?? '.');
      if (!existsSync(folder)) throw new KvlensError('folder not found', folder);
      const integer = (name: string, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER) => {
        const raw = values[name];
        if (raw === undefined) return fallback;
        const value = Number(raw);
        if (!Number.isSafeInteger(value) || value < min || value > max) {
          throw new KvlensError(`--${name} must be an integer ${max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `in ${min}..${max}`}, got ${raw}`);
        }
        return value;
      };
      // An option given with nothing in it is a mistake (a shell variable that expanded to nothing), not a request for the default.
      const given = (name: string, split: (text: string) => string[] = (text) => list(text, [])): string[] | undefined => {
        const raw = values[name];
        if (typeof raw !== 'string') return undefined;
        const items = split(raw);
        if (items.length === 0) throw new KvlensError(`--${name} is empty (got ${JSON.stringify(raw)}): list at least one, or leave the option out for the default`);
        return items;
      };
      const tasks = given('tasks') ?? (typeof values.import === 'string' ? [] : cliDefault('tasks'));
      const request: BenchRequest = {
        workspace: folder,
        model: String(values.model),
        methods: given('methods', splitMethods) ?? cliDefault('methods'),
        // Imported sets run alone unless tasks are named too.
        tasks: tasks.filter((t) => t !== 'none'),
        imports: given('import') ?? [],
        importLimit: values['import-limit'] === undefined ? undefined : integer('import-limit', 0, 1),
        rulerTask: typeof values['ruler-task'] === 'string' ? values['ruler-task'] : undefined,
        lengths: given('lengths')?.map(parseLength) ?? cliDefault('lengths'),
        depths: given('depths')?.map(Number) ?? cliDefault('depths'),
        samples: integer('samples', cliDefault('samples'), RUN_SETTINGS.samples.min ?? 1, RUN_SETTINGS.samples.cliMax),
        seed: integer('seed', cliDefault('seed'), RUN_SETTINGS.seed.min ?? 0, RUN_SETTINGS.seed.cliMax),
        provider: providerOf(values),
        outFile: resolve(typeof values.out === 'string' ? values.out : 'kvlens-results.json'),
        shard: typeof values.shard === 'string' ? parseShard(values.shard) : null,
        maxNewTokens: values['max-new-tokens'] === undefined ? undefined : integer('max-new-tokens', 0, 1),
        allowLongContext: Boolean(values['allow-long-context']),
      };
      // Everything below is refused before the model loads, which can take minutes.
      const unknownTask = tasks.find((t) => t !== 'none' && !TASKS.some((info) => info.id === t));
      if (unknownTask !== undefined) throw new KvlensError(`unknown task "${unknownTask}" in --tasks (known: ${TASKS.map((t) => t.id).join(', ')}, or none with --import)`);
      checkRequestFlags(request);
      if (request.rulerTask !== undefined && rulerTask(request.rulerTask) === null) {
        throw new KvlensError(`--ruler-task: unknown RULER task "${request.rulerTask}" (known: ${[...RULER_TASKS.keys()].join(', ')})`);
      }
      checkDistinctMethods(request.methods, '--methods');
      checkDistinctOutputs([
        ['--out', request.outFile],
        ['--csv', typeof values.csv === 'string' ? resolve(values.csv) : null],
        ['--md', typeof values.md === 'string' ? resolve(values.md) : null],
        ['--paper-csv', typeof values['paper-csv'] === 'string' ? resolve(values['paper-csv']) : null],
      ]);
      // Claimed before the model loads: an existing file (without --force), a file another run is writing or an
      // unwritable folder is refused before minutes of loading.
      const force = Boolean(values.force);
      for (const flag of ['csv', 'md', 'paper-csv'] as const) if (typeof values[flag] === 'string') checkOverwrite(resolve(values[flag]), { force, flag: `--${flag}` });
      const output = claimOutputFile(request.outFile!, { force, lock: true, say: (line) => process.stderr.write(`${line}\n`) });
      // Listening from before the model loads: a job stopped while loading ends cleanly, not by the default handler.
      const { signal, received, release } = cancelOnSignals('finishing the current step, keeping every completed row');
      const sessions: Awaited<ReturnType<typeof open>>[] = [];
      try {
        // `--model default,<folder>`: one sweep, one results file, rows keyed by model.
        for (const model of modelList(String(values.model))) {
          sessions.push(await open({ ...values, model }, sweepContextTokens(request.lengths)));
          if (signal.aborted) break;
        }
        if (signal.aborted) {
          process.stderr.write(`kvlens bench: cancelled by ${received()} while the model loaded, before any sample ran\n`);
          process.exitCode = signalExitCode(received() ?? 'SIGINT');
          return;
        }
        let results;
        try {
          results = await runBench(sessions, request, {
            signal,
            output,
            onProgress: progressPrinter(Boolean(values.json)),
            onLog: values.json ? undefined : (line) => process.stderr.write(`${line}\n`),
          });
        } catch (error) {
          // Stopped while scanning the workspace, before the sweep had a results file to mark.
          if (!signal.aborted) throw error;
          process.stderr.write(`kvlens bench: cancelled by ${received()} before the sweep started\n`);
          process.exitCode = signalExitCode(received() ?? 'SIGINT');
          return;
        }
        if (process.stderr.isTTY) process.stderr.write('\n');
        if (typeof values.csv === 'string') writeFileAtomic(resolve(values.csv), toCsv(results));
        if (typeof values.md === 'string') writeFileAtomic(resolve(values.md), toMarkdown(results));
        if (typeof values['paper-csv'] === 'string') writeFileAtomic(resolve(values['paper-csv']), paperTableCsv(results));
        if (values.json) process.stdout.write(JSON.stringify(results, null, 1) + '\n');
        else {
          process.stdout.write(`\n${summaryMarkdown(results)}`);
          const paper = paperTableMarkdown(results);
          if (paper) process.stdout.write(`\nLongBench categories and needle (the paper's layout):\n\n${paper}`);
          process.stdout.write(`\n${results.rows.length} rows (${results.status}) on ${results.config.executionProvider} → ${request.outFile}\n`);
        }
        if (results.status === 'cancelled') process.exitCode = signalExitCode(received() ?? 'SIGINT');
      } finally {
        release();
        output.release();
        for (const session of sessions) await session.dispose();
      }
    },
  },
  merge: {
    summary: 'combine the results files of a sharded sweep',
    usage: 'kvlens merge a.json b.json ... [--out merged.json] [--force] [--allow-incomplete] [--json]',
    options: {
      out: { type: 'string' },
      force: { type: 'boolean', default: false },
      'allow-incomplete': { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
    },
    async run(values, positionals) {
      if (positionals.length === 0) throw new KvlensError('merge needs one or more results files');
      const out = resolve(typeof values.out === 'string' ? values.out : 'kvlens-merged.json');
      const inputs = positionals.map((path) => ({ path, results: readResultsFile(resolve(path)) }));
      if (inputs.some((input) => resolve(input.path) === out)) throw new KvlensError('--out names one of the files being merged: write the merge to a new file', out);
      const merged = mergeResults(inputs, { allowIncomplete: Boolean(values['allow-incomplete']) });
      const output = claimOutputFile(out, { force: Boolean(values.force), lock: true, say: (line) => process.stderr.write(`${line}\n`) });
      try {
        writeFileAtomic(out, JSON.stringify(merged, null, 1) + '\n');
      } finally {
        output.release();
      }
      print(values, `${summaryMarkdown(merged)}\n${merged.rows.length} rows (${merged.status}) → ${out}`, merged);
    },
  },
  download: {
    summary: 'fetch a model by Hugging Face repo id into the Hugging Face cache (resumable); prints its folder',
    usage: 'kvlens download <org/name> [--revision main] [--cache-dir D] [--endpoint URL] [--include "*.gguf,..."] [--json]',
    options: {
      revision: { type: 'string', default: 'main' },
      'cache-dir': { type: 'string' },
      endpoint: { type: 'string' },
      include: { type: 'string' },
      json: { type: 'boolean', default: false },
    },
    async run(values, positionals) {
      if (positionals.length !== 1) throw new KvlensError('download needs exactly one repo id, e.g. kvlens download Qwen/Qwen2.5-0.5B');
      const { signal, release } = cancelOnSignals('the partial file is kept and the next download resumes it');
      try {
        const result = await downloadModel(positionals[0], {
          revision: String(values.revision),
          cacheDir: typeof values['cache-dir'] === 'string' ? resolve(values['cache-dir']) : undefined,
          endpoint: typeof values.endpoint === 'string' ? values.endpoint : undefined,
          include: list(values.include, []),
          signal,
          onProgress: downloadProgressPrinter(),
        });
        if (process.stderr.isTTY) process.stderr.write('\n');
        const reused = result.files.filter((f) => f.reused).length;
        process.stderr.write(`${result.repo}@${result.commit.slice(0, 12)}: ${result.files.length} files, ${formatMiB(result.bytesDownloaded)} downloaded, ${reused} reused from the cache\n`);
        print(values, result.snapshotDir, result);
      } finally {
        release();
      }
    },
  },
  export: {
    summary: "write a results file as CSV or Markdown, or the paper's table of LongBench categories and needle as CSV",
    usage: 'kvlens export <results.json> (--csv F | --md F | --paper-csv F) [--force]',
    options: { csv: { type: 'string' }, md: { type: 'string' }, 'paper-csv': { type: 'string' }, force: { type: 'boolean', default: false } },
    async run(values, positionals) {
      if (!positionals[0]) throw new KvlensError('export needs a results file');
      if (typeof values.csv !== 'string' && typeof values.md !== 'string' && typeof values['paper-csv'] !== 'string') throw new KvlensError('export needs --csv F, --md F or --paper-csv F');
      const results = readResultsFile(resolve(positionals[0]));
      checkDistinctOutputs([
        ['results file', resolve(positionals[0])],
        ['--csv', typeof values.csv === 'string' ? resolve(values.csv) : null],
        ['--md', typeof values.md === 'string' ? resolve(values.md) : null],
        ['--paper-csv', typeof values['paper-csv'] === 'string' ? resolve(values['paper-csv']) : null],
      ]);
      for (const flag of ['csv', 'md', 'paper-csv'] as const) if (typeof values[flag] === 'string') checkOverwrite(resolve(values[flag]), { force: Boolean(values.force), flag: `--${flag}` });
      if (typeof values.csv === 'string') writeFileAtomic(resolve(values.csv), toCsv(results));
      if (typeof values.md === 'string') writeFileAtomic(resolve(values.md), toMarkdown(results));
      if (typeof values['paper-csv'] === 'string') writeFileAtomic(resolve(values['paper-csv']), paperTableCsv(results));
    },
  },
};

/** Two outputs on one path would leave only the last written (a CSV or Markdown export over the results JSON). */
function checkDistinctOutputs(outputs: [string, string | null][]): void {
  const given = outputs.filter((o): o is [string, string] => o[1] !== null);
  for (let i = 0; i < given.length; i++) {
    for (let j = i + 1; j < given.length; j++) {
      if (given[i][1] === given[j][1]) throw new KvlensError(`${given[i][0]} and ${given[j][0]} name the same file: each output needs its own path`, given[i][1]);
    }
  }
}

/** Signals that end a long job as Ctrl-C does: Kubernetes and Slurm stop jobs with SIGTERM, a closed terminal sends SIGHUP. */
const CANCEL_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
type CancelSignal = (typeof CANCEL_SIGNALS)[number];

/** The shell's convention for a process ended by a signal: 128 + its number (130 for SIGINT, 143 for SIGTERM). */
function signalExitCode(name: CancelSignal): number {
  return 128 + osConstants.signals[name];
}

/**
 * The first SIGINT, SIGTERM or SIGHUP cancels the long job (which then keeps what it finished); a second one
 * quits at once. `received` is the signal that cancelled it.
 */
function cancelOnSignals(whatHappens: string): { signal: AbortSignal; received: () => CancelSignal | null; release: () => void } {
  const controller = new AbortController();
  let received: CancelSignal | null = null;
  const handlers = CANCEL_SIGNALS.map((name) => {
    const handler = () => {
      if (controller.signal.aborted) process.exit(signalExitCode(name));
      received = name;
      const how = name === 'SIGINT' ? 'Ctrl-C' : name;
      process.stderr.write(`\ncancelling: ${whatHappens} (${name}; ${how} again to quit now)\n`);
      controller.abort();
    };
    process.on(name, handler);
    return [name, handler] as const;
  });
  return {
    signal: controller.signal,
    received: () => received,
    release: () => handlers.forEach(([name, handler]) => process.off(name, handler)),
  };
}

function progressPrinter(quiet: boolean): (p: ProgressEvent) => void {
  let lastLine = 0;
  return (p) => {
    if (quiet) return;
    const eta = p.etaSeconds === null ? '' : ` · ETA ${Math.ceil(p.etaSeconds)} s`;
    if (process.stderr.isTTY) {
      const width = 24;
      const filled = p.total > 0 ? Math.round((p.done / p.total) * width) : 0;
      process.stderr.write(`\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${p.done}/${p.total} ${p.message}${eta}`.padEnd(110).slice(0, 140));
    } else if (Date.now() - lastLine > 2000 || p.done === p.total) {
      lastLine = Date.now();
      process.stderr.write(`${p.done}/${p.total} ${p.message}${eta}\n`);
    }
  };
}

function formatMiB(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

function downloadProgressPrinter(): (p: DownloadProgress) => void {
  let lastLine = 0;
  let lastFile = '';
  return (p) => {
    const percent = p.bytesTotal > 0 ? Math.floor((100 * p.bytesDone) / p.bytesTotal) : 0;
    const line = `${formatMiB(p.bytesDone)} / ${formatMiB(p.bytesTotal)} (${percent}%) ${p.file}${p.reused ? ' (cached)' : ''}`;
    if (process.stderr.isTTY) process.stderr.write(`\r${line}`.padEnd(100).slice(0, 140));
    else if (p.file !== lastFile || Date.now() - lastLine > 2000) {
      lastLine = Date.now();
      lastFile = p.file;
      process.stderr.write(`${line}\n`);
    }
  };
}

function help(): string {
  const names = Object.keys(commands);
  return [
    `kvlens ${KVLENS_VERSION}: profile KV-cache compression on long-context queries built from your code`,
    '',
    'commands:',
    ...names.map((n) => `  ${n.padEnd(9)} ${commands[n].summary}`),
    '',
    'kvlens <command> --help for its options',
  ].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(help() + '\n');
    return 0;
  }
  if (name === '--version') {
    process.stdout.write(`${KVLENS_VERSION}\n`);
    return 0;
  }
  const command = commands[name];
  if (!command) {
    process.stderr.write(`kvlens: unknown command "${name}" (commands: ${Object.keys(commands).join(', ')})\n`);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(`${command.summary}\n\nusage: ${command.usage}\n`);
    return 0;
  }
  try {
    const { values, positionals } = parseArgs({ args: rest, options: command.options, allowPositionals: true, strict: true });
    await command.run(values as Values, positionals);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (error) {
    process.stderr.write(`kvlens ${name}: ${describeError(error).split('\n')[0]}\n`);
    return 1;
  }
}

/** Runs the CLI for this process's arguments and exits with its status (used by bin/kvlens.js and the bundle). */
export function runFromProcess(): void {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (error) => {
      process.stderr.write(`kvlens: ${describeError(error)}\n`);
      process.exit(1);
    },
  );
}

if (require.main === module) runFromProcess();

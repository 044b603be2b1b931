// Every run setting's default, choices and bounds, defined once. The `kvlens` flags (cli.ts), the kvlens.*
// settings (extension/settings.ts) and the run request's check (host/protocol.ts) are built from this table;
// package.json's contributes.configuration restates it for VS Code's settings editor and a test holds the two
// equal (test/unit/run-settings.test.ts).
//
// A new setting: a field in RunSettings and its entry in RUN_SETTINGS (kind, default, bounds), then its
// kvlens.<key> block in package.json with a description (the manifest test names what disagrees). The
// settings parser reads it by its kind with nothing more; a setting the engine needs also goes into the run
// request (BenchRequest and its check in host/protocol.ts, runRequest in extension/runController.ts, a flag in
// cli.ts).
import type { ProviderChoice } from '../model/onnx/onnxForward';
import { WEIGHT_CHOICES, type WeightsChoice } from '../model/weightFormat';
import { DEFAULT_KV_DTYPE, KV_DTYPES, type KvDtype } from '../kv/kv-dtype';
import type { SweepSpec } from './results';

/** Where the engine runs the model; `auto` tries CUDA, then WebGPU, then the CPU. */
export const EXECUTION_PROVIDERS = ['auto', 'cuda', 'webgpu', 'cpu'] as const satisfies readonly ProviderChoice[];
export type ExecutionProviderChoice = (typeof EXECUTION_PROVIDERS)[number];
// Every provider the engine can load is offered (a new one in onnxForward.ts fails to compile here until listed).
const _everyProviderListed: readonly ExecutionProviderChoice[] = [] as ProviderChoice[];
void _everyProviderListed;

/** The task generators (tasks/index.ts holds one per id; a test keeps the two lists equal). */
export const TASK_IDS = ['needle', 'multikey', 'vartrack', 'completion', 'crossfile'] as const;

export const RUN_LIMITS = {
  /** Shortest prompt a task can be built into. */
  minLength: 16,
  /** Samples per sweep cell; a sweep has tasks × lengths × depths cells, so this already allows millions of samples. */
  maxSamplesPerCell: 10_000,
  /** Seeds are 32-bit: a larger one would silently run the sweep of another seed. */
  maxSeed: 2 ** 32 - 1,
};

/** A sweep (methods, tasks, lengths, depths, samples, seed) and what it runs on. */
export interface RunSettings extends SweepSpec {
  model: string;
  executionProvider: ExecutionProviderChoice;
  /** How float-stored weight matrices are held: auto, fp32, int8 or int4. */
  weights: WeightsChoice;
  /** What full-precision caches hold keys and values in: fp16, bf16 or fp32. */
  kvDtype: KvDtype;
  /** Longest prompt the editor runs; longer lengths are skipped. */
  maxContextTokens: number;
  /** As configured: empty means `.kvlens` in the workspace; relative paths are resolved against the workspace. */
  resultsFolder: string;
}

/**
 * How a setting's value is read and checked: `text` a non-empty string, `path` any string (empty allowed),
 * `integer` and `choice` a single value, `specs` a list of method specs, `choices` a list of choices (both in
 * the order given), `integers` and `fractions` lists of numbers within the bounds (sorted: their order says nothing).
 */
export type RunSettingKind = 'text' | 'path' | 'integer' | 'choice' | 'specs' | 'choices' | 'integers' | 'fractions';

export interface RunSettingDefinition<T> {
  kind: RunSettingKind;
  /** What one item of an `integers` or `fractions` list is, for the warning about a bad one. */
  itemNoun?: string;
  /** The kvlens.<key> setting's default, and the CLI's unless `cli` is given. */
  default: T;
  /** The CLI's default where it differs from the editor's. */
  cli?: T;
  /** The allowed values (of each item, for a list). */
  choices?: readonly string[];
  /** Bounds of the value (of each item, for a list), inclusive, as the editor's settings allow them. */
  min?: number;
  max?: number;
  /** The CLI's upper bound where it allows more than the editor. */
  cliMax?: number;
}

/**
 * The editor's defaults are a sweep that answers in a few minutes inside VS Code (two lengths, every task, five
 * methods); the CLI's defaults are the sweep the README's evidence table comes from (three lengths up to 4k, the
 * needle and completion tasks, eight methods across the three families).
 */
export const RUN_SETTINGS: { [K in keyof RunSettings]: RunSettingDefinition<RunSettings[K]> } = {
  // In the order the settings parser reads them, which is the order of its warnings.
  model: { kind: 'text', default: 'default' },
  resultsFolder: { kind: 'path', default: '' },
  // An editor run stays interactive; the CLI, for batch jobs, allows the full range.
  samples: { kind: 'integer', default: 2, min: 1, max: 1000, cliMax: RUN_LIMITS.maxSamplesPerCell },
  seed: { kind: 'integer', default: 0, min: 0, max: 2 ** 31 - 1, cliMax: RUN_LIMITS.maxSeed },
  maxContextTokens: { kind: 'integer', default: 4096, min: 64, max: 1 << 20 },
  methods: {
    kind: 'specs',
    default: ['full', 'kivi:bits=2', 'streamingllm:ratio=0.5', 'snapkv:ratio=0.5', 'h2o:budget=512'],
    cli: ['full', 'kivi:bits=4', 'kivi:bits=2', 'int8', 'snapkv:ratio=0.75', 'h2o:ratio=0.75', 'streamingllm:ratio=0.75', 'llmlingua:ratio=0.5'],
  },
  tasks: { kind: 'choices', default: [...TASK_IDS], cli: ['needle', 'completion'], choices: TASK_IDS },
  lengths: { kind: 'integers', itemNoun: 'a token length', default: [1024, 2048], cli: [1024, 2048, 4096], min: RUN_LIMITS.minLength },
  depths: { kind: 'fractions', itemNoun: 'a relative depth', default: [0, 0.25, 0.5, 0.75, 1], min: 0, max: 1 },
  executionProvider: { kind: 'choice', default: 'auto', choices: EXECUTION_PROVIDERS },
  weights: { kind: 'choice', default: 'auto', choices: WEIGHT_CHOICES },
  kvDtype: { kind: 'choice', default: DEFAULT_KV_DTYPE, choices: KV_DTYPES },
};

/** The editor's defaults (fresh arrays, so a caller may change them). */
export function settingDefaults(): RunSettings {
  const copy = <T>(value: T): T => (Array.isArray(value) ? ([...value] as T) : value);
  const defaults = {} as Record<string, unknown>;
  for (const [key, definition] of Object.entries(RUN_SETTINGS)) defaults[key] = copy(definition.default);
  return defaults as unknown as RunSettings;
}

/** The CLI's default for a setting. */
export function cliDefault<K extends keyof RunSettings>(key: K): RunSettings[K] {
  const definition: RunSettingDefinition<RunSettings[K]> = RUN_SETTINGS[key];
  return definition.cli ?? definition.default;
}

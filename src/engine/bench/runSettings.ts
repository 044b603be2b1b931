// Every run setting's default, choices and bounds, defined once. The `kvlens` flags (cli.ts), the kvlens.*
// settings (extension/settings.ts) and the run request's check (host/protocol.ts) are built from this table;
// package.json's contributes.configuration restates it for VS Code's settings editor and a test holds the two
// equal (test/unit/run-settings.test.ts).
//
// A new setting is one entry here plus its kvlens.<key> block in package.json (the test names what is missing);
// settings.ts reads it by its kind, and the CLI takes it if it is a sweep option.
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

export interface RunSettingDefinition<T> {
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
  model: { default: 'default' },
  methods: {
    default: ['full', 'kivi:bits=2', 'streamingllm:ratio=0.5', 'snapkv:ratio=0.5', 'h2o:budget=512'],
    cli: ['full', 'kivi:bits=4', 'kivi:bits=2', 'int8', 'snapkv:ratio=0.75', 'h2o:ratio=0.75', 'streamingllm:ratio=0.75', 'llmlingua:ratio=0.5'],
  },
  tasks: { default: [...TASK_IDS], cli: ['needle', 'completion'], choices: TASK_IDS },
  lengths: { default: [1024, 2048], cli: [1024, 2048, 4096], min: RUN_LIMITS.minLength },
  depths: { default: [0, 0.25, 0.5, 0.75, 1], min: 0, max: 1 },
  // An editor run stays interactive; the CLI, for batch jobs, allows the full range.
  samples: { default: 2, min: 1, max: 1000, cliMax: RUN_LIMITS.maxSamplesPerCell },
  seed: { default: 0, min: 0, max: 2 ** 31 - 1, cliMax: RUN_LIMITS.maxSeed },
  executionProvider: { default: 'auto', choices: EXECUTION_PROVIDERS },
  weights: { default: 'auto', choices: WEIGHT_CHOICES },
  kvDtype: { default: DEFAULT_KV_DTYPE, choices: KV_DTYPES },
  maxContextTokens: { default: 4096, min: 64, max: 1 << 20 },
  resultsFolder: { default: '' },
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

// Reads the kvlens.* settings into one checked object. A bad value falls back to its default with a
// warning naming the setting, so one typo in settings.json does not block every run.
import type { ExecutionProviderChoice } from '../engine/host/protocol';
import { describeValue } from './validate';
import type { SweepSpec } from '../engine/bench/results';
import { WEIGHT_CHOICES, type WeightsChoice } from '../engine/model/weightFormat';
import { DEFAULT_KV_DTYPE, KV_DTYPES, type KvDtype } from '../engine/kv/kv-dtype';

export const EXECUTION_PROVIDERS: readonly ExecutionProviderChoice[] = ['auto', 'cuda', 'webgpu', 'cpu'];

export const KNOWN_TASKS = ['needle', 'multikey', 'vartrack', 'completion', 'crossfile'] as const;

/** Method specs offered by "Compare Methods"; any other syntactically valid spec can be typed into settings. */
export const METHOD_CATALOG = [
  'full',
  'kivi:bits=2',
  'kivi:bits=4',
  'streamingllm:ratio=0.25',
  'streamingllm:ratio=0.5',
  'streamingllm:ratio=0.75',
  'snapkv:ratio=0.25',
  'snapkv:ratio=0.5',
  'snapkv:ratio=0.75',
  'h2o:budget=256',
  'h2o:budget=512',
  'h2o:budget=1024',
] as const;

export interface KvlensSettings extends SweepSpec {
  model: string;
  executionProvider: ExecutionProviderChoice;
  /** How float-stored weight matrices are held: auto, fp32, int8 or int4. */
  weights: WeightsChoice;
  /** What full-precision caches hold keys and values in: fp16, bf16 or fp32. */
  kvDtype: KvDtype;
  maxContextTokens: number;
  /** As configured: empty means `.kvlens` in the workspace; relative paths are resolved against the workspace. */
  resultsFolder: string;
}

export const DEFAULT_SETTINGS: KvlensSettings = {
  model: 'default',
  methods: ['full', 'kivi:bits=2', 'streamingllm:ratio=0.5', 'snapkv:ratio=0.5', 'h2o:budget=512'],
  tasks: [...KNOWN_TASKS],
  lengths: [1024, 2048],
  depths: [0, 0.25, 0.5, 0.75, 1],
  samples: 2,
  seed: 0,
  executionProvider: 'auto',
  weights: 'auto',
  kvDtype: DEFAULT_KV_DTYPE,
  maxContextTokens: 4096,
  resultsFolder: '',
};

// family[:key=value[,key=value...]] with a lower-case family name, e.g. `kivi:bits=2` or `h2o:budget=512,recent=64`.
const METHOD_SPEC = /^[a-z][a-z0-9_-]*(:[A-Za-z_][A-Za-z0-9_]*=[^\s,:=]+(,[A-Za-z_][A-Za-z0-9_]*=[^\s,:=]+)*)?$/;

export function isMethodSpec(spec: string): boolean {
  return METHOD_SPEC.test(spec);
}

export interface ParsedSettings {
  settings: KvlensSettings;
  warnings: string[];
}

/** `read(key)` returns the raw value of `kvlens.<key>` (undefined when unset). */
export function parseSettings(read: (key: keyof KvlensSettings) => unknown): ParsedSettings {
  const warnings: string[] = [];
  const warn = (key: string, problem: string) => warnings.push(`kvlens.${key}: ${problem}; using the default`);

  const stringSetting = (key: 'model' | 'resultsFolder', allowEmpty: boolean): string => {
    const raw = read(key);
    if (raw === undefined || raw === null) return DEFAULT_SETTINGS[key];
    if (typeof raw !== 'string' || (!allowEmpty && raw.trim() === '')) {
      warn(key, `expected ${allowEmpty ? 'a string' : 'a non-empty string'}, found ${describeValue(raw)}`);
      return DEFAULT_SETTINGS[key];
    }
    return raw.trim();
  };

  const intSetting = (key: 'samples' | 'seed' | 'maxContextTokens', min: number, max: number): number => {
    const raw = read(key);
    if (raw === undefined || raw === null) return DEFAULT_SETTINGS[key];
    if (typeof raw !== 'number' || !Number.isInteger(raw) || raw < min || raw > max) {
      warn(key, `expected an integer from ${min} to ${max}, found ${describeValue(raw)}`);
      return DEFAULT_SETTINGS[key];
    }
    return raw;
  };

  const listSetting = <T>(key: 'methods' | 'tasks' | 'lengths' | 'depths', item: (v: unknown) => string | null): T[] => {
    const raw = read(key);
    if (raw === undefined || raw === null) return [...(DEFAULT_SETTINGS[key] as T[])];
    if (!Array.isArray(raw) || raw.length === 0) {
      warn(key, `expected a non-empty list, found ${describeValue(raw)}`);
      return [...(DEFAULT_SETTINGS[key] as T[])];
    }
    for (const v of raw) {
      const problem = item(v);
      if (problem) {
        warn(key, problem);
        return [...(DEFAULT_SETTINGS[key] as T[])];
      }
    }
    return [...new Set(raw as T[])];
  };

  const model = stringSetting('model', false);
  const resultsFolder = stringSetting('resultsFolder', true);
  const samples = intSetting('samples', 1, 1000);
  const seed = intSetting('seed', 0, 2 ** 31 - 1);
  const maxContextTokens = intSetting('maxContextTokens', 64, 1 << 20);

  const methods = listSetting<string>('methods', (v) =>
    typeof v === 'string' && isMethodSpec(v.trim()) ? null : `${describeValue(v)} is not a method spec like "full" or "kivi:bits=2"`,
  ).map((m) => m.trim());
  const tasks = listSetting<string>('tasks', (v) =>
    typeof v === 'string' && (KNOWN_TASKS as readonly string[]).includes(v) ? null : `${describeValue(v)} is not one of ${KNOWN_TASKS.join(', ')}`,
  );
  let lengths = listSetting<number>('lengths', (v) =>
    typeof v === 'number' && Number.isInteger(v) && v >= 16 ? null : `${describeValue(v)} is not a token length (an integer >= 16)`,
  ).sort((a, b) => a - b);
  const depths = listSetting<number>('depths', (v) =>
    typeof v === 'number' && v >= 0 && v <= 1 ? null : `${describeValue(v)} is not a relative depth in [0, 1]`,
  ).sort((a, b) => a - b);

  const tooLong = lengths.filter((l) => l > maxContextTokens);
  if (tooLong.length > 0) {
    warnings.push(`kvlens.lengths: ${tooLong.join(', ')} exceed kvlens.maxContextTokens (${maxContextTokens}) and are skipped`);
    lengths = lengths.filter((l) => l <= maxContextTokens);
    if (lengths.length === 0) lengths = [maxContextTokens];
  }

  const providerRaw = read('executionProvider');
  let executionProvider = DEFAULT_SETTINGS.executionProvider;
  if (providerRaw !== undefined && providerRaw !== null) {
    if (typeof providerRaw === 'string' && (EXECUTION_PROVIDERS as readonly string[]).includes(providerRaw)) {
      executionProvider = providerRaw as ExecutionProviderChoice;
    } else {
      warn('executionProvider', `expected one of ${EXECUTION_PROVIDERS.join(', ')}, found ${describeValue(providerRaw)}`);
    }
  }

  const weightsRaw = read('weights');
  let weights = DEFAULT_SETTINGS.weights;
  if (weightsRaw !== undefined && weightsRaw !== null) {
    if (typeof weightsRaw === 'string' && (WEIGHT_CHOICES as readonly string[]).includes(weightsRaw)) weights = weightsRaw as WeightsChoice;
    else warn('weights', `expected one of ${WEIGHT_CHOICES.join(', ')}, found ${describeValue(weightsRaw)}`);
  }

  const kvDtypeRaw = read('kvDtype');
  let kvDtype = DEFAULT_SETTINGS.kvDtype;
  if (kvDtypeRaw !== undefined && kvDtypeRaw !== null) {
    if (typeof kvDtypeRaw === 'string' && (KV_DTYPES as readonly string[]).includes(kvDtypeRaw)) kvDtype = kvDtypeRaw as KvDtype;
    else warn('kvDtype', `expected one of ${KV_DTYPES.join(', ')}, found ${describeValue(kvDtypeRaw)}`);
  }

  return {
    settings: { model, methods, tasks, lengths, depths, samples, seed, executionProvider, weights, kvDtype, maxContextTokens, resultsFolder },
    warnings,
  };
}

/** Where results go: the configured folder (absolute, or relative to the workspace) or `<workspace>/.kvlens`. */
export function resolveResultsFolder(workspaceFolder: string, configured: string, join: (...parts: string[]) => string, isAbsolute: (p: string) => boolean): string {
  if (configured === '') return join(workspaceFolder, '.kvlens');
  return isAbsolute(configured) ? configured : join(workspaceFolder, configured);
}

/** A results file name that sorts by time (to the millisecond, so back-to-back runs get their own file). */
export function resultsFileName(now: Date, label: string): string {
  const stamp = now.toISOString().replace(/[:.]/g, '-');
  const safeLabel = label.replace(/[^A-Za-z0-9_-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 40) || 'run';
  return `results-${stamp}-${safeLabel}.json`;
}

// Reads the kvlens.* settings into one checked object. A bad value falls back to its default with a
// warning naming the setting, so one typo in settings.json does not block every run.
import { describeValue } from './validate';
import { RUN_SETTINGS, TASK_IDS, settingDefaults, type RunSettings } from '../engine/bench/runSettings';

/** The kvlens.* settings: every run setting of engine/bench/runSettings.ts, with its defaults and bounds. */
export type KvlensSettings = RunSettings;

export const DEFAULT_SETTINGS: KvlensSettings = settingDefaults();

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

  const intSetting = (key: 'samples' | 'seed' | 'maxContextTokens'): number => {
    const { min = 0, max = Number.MAX_SAFE_INTEGER } = RUN_SETTINGS[key];
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
  const samples = intSetting('samples');
  const seed = intSetting('seed');
  const maxContextTokens = intSetting('maxContextTokens');

  const methods = listSetting<string>('methods', (v) =>
    typeof v === 'string' && isMethodSpec(v.trim()) ? null : `${describeValue(v)} is not a method spec like "full" or "kivi:bits=2"`,
  ).map((m) => m.trim());
  const tasks = listSetting<string>('tasks', (v) =>
    typeof v === 'string' && (TASK_IDS as readonly string[]).includes(v) ? null : `${describeValue(v)} is not one of ${TASK_IDS.join(', ')}`,
  );
  const minLength = RUN_SETTINGS.lengths.min ?? 1;
  let lengths = listSetting<number>('lengths', (v) =>
    typeof v === 'number' && Number.isInteger(v) && v >= minLength ? null : `${describeValue(v)} is not a token length (an integer >= ${minLength})`,
  ).sort((a, b) => a - b);
  const { min: minDepth = 0, max: maxDepth = 1 } = RUN_SETTINGS.depths;
  const depths = listSetting<number>('depths', (v) =>
    typeof v === 'number' && v >= minDepth && v <= maxDepth ? null : `${describeValue(v)} is not a relative depth in [${minDepth}, ${maxDepth}]`,
  ).sort((a, b) => a - b);

  const tooLong = lengths.filter((l) => l > maxContextTokens);
  if (tooLong.length > 0) {
    warnings.push(`kvlens.lengths: ${tooLong.join(', ')} exceed kvlens.maxContextTokens (${maxContextTokens}) and are skipped`);
    lengths = lengths.filter((l) => l <= maxContextTokens);
    if (lengths.length === 0) lengths = [maxContextTokens];
  }

  const choiceSetting = <K extends 'executionProvider' | 'weights' | 'kvDtype'>(key: K): KvlensSettings[K] => {
    const choices = RUN_SETTINGS[key].choices ?? [];
    const raw = read(key);
    if (raw === undefined || raw === null) return DEFAULT_SETTINGS[key];
    if (typeof raw === 'string' && choices.includes(raw)) return raw as KvlensSettings[K];
    warn(key, `expected one of ${choices.join(', ')}, found ${describeValue(raw)}`);
    return DEFAULT_SETTINGS[key];
  };
  const executionProvider = choiceSetting('executionProvider');
  const weights = choiceSetting('weights');
  const kvDtype = choiceSetting('kvDtype');

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

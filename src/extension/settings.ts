// Reads the kvlens.* settings into one checked object. A bad value falls back to its default with a
// warning naming the setting, so one typo in settings.json does not block every run.
import { describeValue } from './validate';
import { RUN_SETTINGS, settingDefaults, type RunSettingDefinition, type RunSettings } from '../engine/bench/runSettings';

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

/** Why one item of a list setting is refused, or null. */
function listItemProblem(definition: RunSettingDefinition<unknown>, v: unknown): string | null {
  const { min = -Infinity, max = Infinity, choices = [], itemNoun = 'a value' } = definition;
  switch (definition.kind) {
    case 'specs':
      return typeof v === 'string' && isMethodSpec(v.trim()) ? null : `${describeValue(v)} is not a method spec like "full" or "kivi:bits=2"`;
    case 'choices':
      return typeof v === 'string' && choices.includes(v) ? null : `${describeValue(v)} is not one of ${choices.join(', ')}`;
    case 'integers':
      return typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max ? null : `${describeValue(v)} is not ${itemNoun} (an integer >= ${min})`;
    default:
      return typeof v === 'number' && v >= min && v <= max ? null : `${describeValue(v)} is not ${itemNoun} in [${min}, ${max}]`;
  }
}

/** The value of one setting by its kind, or why it is refused. */
function readSetting(definition: RunSettingDefinition<unknown>, raw: unknown): { value: unknown } | { problem: string } {
  const { min = 0, max = Number.MAX_SAFE_INTEGER, choices = [] } = definition;
  switch (definition.kind) {
    case 'text':
    case 'path': {
      const allowEmpty = definition.kind === 'path';
      if (typeof raw !== 'string' || (!allowEmpty && raw.trim() === '')) return { problem: `expected ${allowEmpty ? 'a string' : 'a non-empty string'}, found ${describeValue(raw)}` };
      return { value: raw.trim() };
    }
    case 'integer':
      if (typeof raw !== 'number' || !Number.isInteger(raw) || raw < min || raw > max) return { problem: `expected an integer from ${min} to ${max}, found ${describeValue(raw)}` };
      return { value: raw };
    case 'choice':
      if (typeof raw === 'string' && choices.includes(raw)) return { value: raw };
      return { problem: `expected one of ${choices.join(', ')}, found ${describeValue(raw)}` };
    default: {
      if (!Array.isArray(raw) || raw.length === 0) return { problem: `expected a non-empty list, found ${describeValue(raw)}` };
      for (const v of raw) {
        const problem = listItemProblem(definition, v);
        if (problem) return { problem };
      }
      const items = [...new Set(raw)];
      if (definition.kind === 'specs') return { value: items.map((m: string) => m.trim()) };
      // Lengths and depths are sets: sorted, so the same sweep always reads the same.
      if (definition.kind === 'integers' || definition.kind === 'fractions') return { value: (items as number[]).sort((a, b) => a - b) };
      return { value: items };
    }
  }
}

/** `read(key)` returns the raw value of `kvlens.<key>` (undefined when unset). */
export function parseSettings(read: (key: keyof KvlensSettings) => unknown): ParsedSettings {
  const warnings: string[] = [];
  const settings = settingDefaults();
  const values = settings as unknown as Record<string, unknown>;
  for (const [key, definition] of Object.entries(RUN_SETTINGS) as [keyof KvlensSettings, RunSettingDefinition<unknown>][]) {
    const raw = read(key);
    if (raw !== undefined && raw !== null) {
      const outcome = readSetting(definition, raw);
      if ('value' in outcome) values[key] = outcome.value;
      else warnings.push(`kvlens.${key}: ${outcome.problem}; using the default`);
    }
    // The one setting bounded by another: lengths beyond maxContextTokens (read before it) are skipped.
    if (key === 'lengths') {
      const { maxContextTokens } = settings;
      const tooLong = settings.lengths.filter((l) => l > maxContextTokens);
      if (tooLong.length > 0) {
        warnings.push(`kvlens.lengths: ${tooLong.join(', ')} exceed kvlens.maxContextTokens (${maxContextTokens}) and are skipped`);
        settings.lengths = settings.lengths.filter((l) => l <= maxContextTokens);
        if (settings.lengths.length === 0) settings.lengths = [maxContextTokens];
      }
    }
  }
  return { settings, warnings };
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

// RULER as its authors run it: the task comes from the file's folder (`<task>/validation.jsonl`, as
// prepare.py writes it) or is named by the caller, and fixes the tokens to generate and the metric
// (string_match_all for needle, variable-tracking and word-extraction tasks, string_match_part for QA); the
// prompt is the row's `input` followed by its `answer_prefix`, used as it stands (prepare.py has already
// applied the model template it was asked for); predictions are cleaned as evaluate.py cleans them.
import type { ScoreRule } from './types';
import { pyStrip } from './pyText';

export type RulerBaseTask = 'niah' | 'variable_tracking' | 'common_words_extraction' | 'freq_words_extraction' | 'qa';

export interface RulerTask {
  base: RulerBaseTask;
  tokensToGenerate: number;
  metric: ScoreRule;
}

const BASE: Record<RulerBaseTask, RulerTask> = {
  niah: { base: 'niah', tokensToGenerate: 128, metric: 'string_match_all' },
  variable_tracking: { base: 'variable_tracking', tokensToGenerate: 30, metric: 'string_match_all' },
  common_words_extraction: { base: 'common_words_extraction', tokensToGenerate: 120, metric: 'string_match_all' },
  freq_words_extraction: { base: 'freq_words_extraction', tokensToGenerate: 50, metric: 'string_match_all' },
  qa: { base: 'qa', tokensToGenerate: 32, metric: 'string_match_part' },
};

/** The task names of RULER's synthetic.yaml and the base task each one runs. */
export const RULER_TASKS: ReadonlyMap<string, RulerBaseTask> = new Map<string, RulerBaseTask>([
  ['niah_single_1', 'niah'],
  ['niah_single_2', 'niah'],
  ['niah_single_3', 'niah'],
  ['niah_multikey_1', 'niah'],
  ['niah_multikey_2', 'niah'],
  ['niah_multikey_3', 'niah'],
  ['niah_multivalue', 'niah'],
  ['niah_multiquery', 'niah'],
  ['vt', 'variable_tracking'],
  ['cwe', 'common_words_extraction'],
  ['fwe', 'freq_words_extraction'],
  ['qa_1', 'qa'],
  ['qa_2', 'qa'],
  ...(Object.keys(BASE) as RulerBaseTask[]).map((b) => [b, b] as [string, RulerBaseTask]),
]);

/** The task of a name from synthetic.yaml (or a base task's own name), or null. */
export function rulerTask(name: string): (RulerTask & { name: string }) | null {
  const base = RULER_TASKS.get(name);
  return base ? { ...BASE[base], name } : null;
}

function segments(file: string): string[] {
  return file.split(/[\\/]/).filter((s) => s !== '');
}

/** The task folder of `<task>/validation.jsonl` (or any `<task>/<subset>.jsonl`) when it names a RULER task. */
export function rulerTaskFromPath(file: string): string | null {
  const parts = segments(file);
  const folder = parts.length >= 2 ? parts[parts.length - 2] : null;
  return folder !== null && RULER_TASKS.has(folder) ? folder : null;
}

/** The run's sequence length from run.sh's layout `<root>/<model>/<benchmark>/<max_seq_length>/data/<task>/...`. */
export function rulerLengthFromPath(file: string): number | null {
  const parts = segments(file).slice(0, -1);
  for (let i = parts.length - 1; i >= 0; i--) if (/^\d+$/.test(parts[i])) return Number(parts[i]);
  return null;
}

/** evaluate.py's postprocess_pred: stripped, control characters turned into newlines, stripped again. */
export function rulerPostprocess(prediction: string): string {
  return pyStrip(pyStrip(prediction).replace(/[\x00-\x1f]/g, '\n'));
}

/** string_match_all for one row: the share of references found in the prediction, case-insensitively. */
export function stringMatchAll(prediction: string, references: readonly string[]): number {
  const text = prediction.toLowerCase();
  return references.reduce((sum, r) => sum + (text.includes(r.toLowerCase()) ? 1.0 : 0.0), 0) / references.length;
}

/** string_match_part for one row: 1 when any reference is found in the prediction, case-insensitively. */
export function stringMatchPart(prediction: string, references: readonly string[]): number {
  const text = prediction.toLowerCase();
  return Math.max(...references.map((r) => (text.includes(r.toLowerCase()) ? 1.0 : 0.0)));
}

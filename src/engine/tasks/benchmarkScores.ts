// Benchmark scores as their authors report them, from result rows: the mean per-row metric × 100, rounded to
// two decimals (Python's round), per method and dataset — LongBench-E also per length group, RULER per task
// and sequence length; LongBench v2 as its result.py reports it: accuracy × 100 to one decimal, overall, by
// difficulty and by length.
import { SCORE_RULES, type ResultRow, type ScoreRule } from '../bench/results';
import { pyRound1, pyRound2 } from './pyText';
import { longBenchV2Columns } from './longbenchV2';

// Every rule but kvlens' own two is a benchmark's metric.
const BENCHMARK_METRICS = new Set<ScoreRule>(SCORE_RULES.filter((rule) => rule !== 'exact' && rule !== 'edit-similarity'));

export interface BenchmarkScore {
  method: string;
  /** e.g. `longbench/hotpotqa`, `longbench-e/qasper`, `ruler/niah_multivalue`. */
  task: string;
  /**
   * LongBench-E's length group, RULER's sequence length, LongBench v2's easy / hard / short / medium / long
   * column, or null for a dataset as a whole.
   */
  group: string | null;
  metric: ScoreRule;
  rows: number;
  /** Rows that failed (scored 0, as a missing prediction scores in the benchmark's own evaluation). */
  errors: number;
  /** mean(score) × 100, rounded to 2 decimals (LongBench v2: 1 decimal). */
  score: number;
}

function groupOf(row: ResultRow): string | null {
  if (row.group !== null) return row.group;
  return row.task.startsWith('ruler/') ? String(row.targetLength) : null;
}

/** The groups a row is reported under: its one group, or for LongBench v2 the whole set, its difficulty and its length. */
function groupsOf(row: ResultRow): (string | null)[] {
  if (row.metric === 'choice_accuracy') return [null, ...longBenchV2Columns(row.group)];
  return [groupOf(row)];
}

function finalScore(entry: BenchmarkScore, total: number): number {
  // In each benchmark's own order of operations: LongBench 100 * total / n, RULER total / n * 100.
  if (entry.metric === 'choice_accuracy') return pyRound1((100 * total) / entry.rows);
  return pyRound2(entry.task.startsWith('ruler/') ? (total / entry.rows) * 100 : (100 * total) / entry.rows);
}

/** One entry per (method, task, group) over the rows scored by a benchmark metric, in first-seen order. */
export function benchmarkScores(rows: readonly ResultRow[]): BenchmarkScore[] {
  const cells = new Map<string, { entry: BenchmarkScore; total: number }>();
  for (const row of rows) {
    if (row.metric === null || !BENCHMARK_METRICS.has(row.metric)) continue;
    for (const group of groupsOf(row)) {
      const key = JSON.stringify([row.method, row.task, group]);
      let cell = cells.get(key);
      if (!cell) {
        cell = { entry: { method: row.method, task: row.task, group, metric: row.metric, rows: 0, errors: 0, score: 0 }, total: 0 };
        cells.set(key, cell);
      }
      cell.entry.rows++;
      if (row.error !== null) cell.entry.errors++;
      else cell.total += row.score;
    }
  }
  return [...cells.values()].map(({ entry, total }) => ({ ...entry, score: finalScore(entry, total) }));
}

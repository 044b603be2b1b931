// Aggregates of a results file shared by the CLI summary, the exports, the panel and the editor annotations.
// Rows that carry an engine error are counted but left out of the means, so one failed sample
// does not read as a score of zero.
import type { ResultRow } from './results';

export { formatBytes, formatNumber } from '../format';

export interface MethodSummary {
  /** The method, or with several models in the rows `<model> · <method>` (seriesNamer). */
  method: string;
  /** The model the series ran on. */
  model: string;
  family: string;
  rows: number;
  errors: number;
  meanScore: number;
  exactRate: number;
  meanBytesHeld: number;
  meanBytesFull: number;
  /** bytesFull / bytesHeld over the summed bytes (how many times smaller the cache is). */
  compressionRatio: number;
  meanPrefillMs: number;
  meanCompressMs: number;
  meanDecodeTokensPerSecond: number;
  allVerified: boolean;
}

function mean(values: number[]): number {
  if (values.length === 0) return Number.NaN;
  let sum = 0;
  for (const v of values) sum += v;
  return sum / values.length;
}

/** The configured names that occur, in their order, then the others in order of first appearance. */
function configuredFirst(occurring: string[], configured: string[]): string[] {
  const present = new Set(occurring);
  return [...new Set([...configured.filter((name) => present.has(name)), ...occurring])];
}

/**
 * What a row's series (a line of the summary, a point of the Pareto chart) is called: its method, or with
 * several models in the rows `<model> · <method>`, so each model's rows are summarized apart.
 */
export function seriesNamer(rows: readonly ResultRow[]): (row: ResultRow) => string {
  const first = rows[0]?.model;
  const several = rows.some((r) => r.model !== first);
  return several ? (row) => `${row.model} · ${row.method}` : (row) => row.method;
}

/** Methods (series, with several models) in the order the run listed them, falling back to first appearance in the rows. */
export function methodOrder(rows: ResultRow[], configured: string[] = []): string[] {
  const name = seriesNamer(rows);
  return configuredFirst(rows.map(name), configured);
}

/** The rows of one series of methodOrder. */
export function seriesRows(rows: ResultRow[], series: string): ResultRow[] {
  const name = seriesNamer(rows);
  return rows.filter((r) => name(r) === series);
}

export function taskOrder(rows: ResultRow[], configured: string[] = []): string[] {
  return configuredFirst(rows.map((r) => r.task), configured);
}

export function summarizeMethod(method: string, rows: ResultRow[]): MethodSummary {
  const mine = seriesRows(rows, method);
  const ok = mine.filter((r) => r.error === null);
  const held = ok.reduce((s, r) => s + r.bytesHeld, 0);
  const full = ok.reduce((s, r) => s + r.bytesFull, 0);
  return {
    method,
    family: mine[0]?.family ?? '',
    model: mine[0]?.model ?? '',
    rows: mine.length,
    errors: mine.length - ok.length,
    meanScore: mean(ok.map((r) => r.score)),
    exactRate: mean(ok.map((r) => (r.exact ? 1 : 0))),
    meanBytesHeld: mean(ok.map((r) => r.bytesHeld)),
    meanBytesFull: mean(ok.map((r) => r.bytesFull)),
    compressionRatio: held > 0 ? full / held : Number.NaN,
    meanPrefillMs: mean(ok.map((r) => r.prefillMs)),
    meanCompressMs: mean(ok.map((r) => r.compressMs)),
    meanDecodeTokensPerSecond: mean(ok.map((r) => r.decodeTokensPerSecond)),
    allVerified: ok.length > 0 && ok.every((r) => r.verified),
  };
}

export function summarizeMethods(rows: ResultRow[], configuredMethods: string[] = []): MethodSummary[] {
  return methodOrder(rows, configuredMethods).map((m) => summarizeMethod(m, rows));
}

/** Mean score per (method, task); NaN where a method has no usable row for a task. */
export function taskScores(rows: ResultRow[], methods: string[], tasks: string[]): Map<string, Map<string, number>> {
  const table = new Map<string, Map<string, number>>();
  for (const m of methods) {
    const byTask = new Map<string, number>();
    const mine = seriesRows(rows, m);
    for (const t of tasks) byTask.set(t, mean(mine.filter((r) => r.task === t && r.error === null).map((r) => r.score)));
    table.set(m, byTask);
  }
  return table;
}

/**
 * Methods not dominated on (bytes held, score): no other method holds no more bytes and scores at least as
 * well with one of the two strictly better. Returned sorted by bytes held, ready to draw as a line.
 */
export function paretoFrontier(points: Array<{ method: string; bytes: number; score: number }>): string[] {
  const usable = points.filter((p) => Number.isFinite(p.bytes) && Number.isFinite(p.score));
  const frontier = usable.filter(
    (p) => !usable.some((q) => q !== p && q.bytes <= p.bytes && q.score >= p.score && (q.bytes < p.bytes || q.score > p.score)),
  );
  return frontier.sort((a, b) => a.bytes - b.bytes || b.score - a.score).map((p) => p.method);
}

export interface NeedleGrid {
  lengths: number[];
  depths: number[];
  /** cells[lengthIndex][depthIndex] = mean score, NaN where no sample ran. */
  cells: number[][];
}

/** Mean score of one method's rows for a depth-carrying task, by target length and needle depth. */
export function needleGrid(rows: ResultRow[], method: string, task = 'needle'): NeedleGrid {
  const mine = seriesRows(rows, method).filter((r) => r.task === task && r.depth !== null && r.error === null);
  const all = rows.filter((r) => r.task === task && r.depth !== null);
  const lengths = [...new Set(all.map((r) => r.targetLength))].sort((a, b) => a - b);
  const depths = [...new Set(all.map((r) => r.depth as number))].sort((a, b) => a - b);
  const cells = lengths.map((len) =>
    depths.map((d) => mean(mine.filter((r) => r.targetLength === len && r.depth === d).map((r) => r.score))),
  );
  return { lengths, depths, cells };
}

/** Methods, full first, that have at least one needle row. */
export function needleMethods(rows: ResultRow[], configured: string[] = [], task = 'needle'): string[] {
  const name = seriesNamer(rows);
  const withNeedle = methodOrder(rows, configured).filter((m) => rows.some((r) => name(r) === m && r.task === task && r.depth !== null));
  const isFull = (series: string) => series === 'full' || series.endsWith(' · full');
  return withNeedle.sort((a, b) => (isFull(a) === isFull(b) ? 0 : isFull(a) ? -1 : 1));
}

import type { ResultRow } from './results';

/** One method's aggregate over every row it produced. */
export interface MethodSummary {
  method: string;
  family: string;
  rows: number;
  errors: number;
  meanScore: number;
  exactRate: number;
  /** Mean over rows of bytesHeld / bytesFull: the fraction of the full cache the method holds. */
  memoryFraction: number;
  meanBytesHeld: number;
  meanCompressMs: number;
  meanDecodeTokensPerSecond: number;
  verified: boolean;
  paretoOptimal: boolean;
}

const mean = (values: number[]): number => (values.length === 0 ? 0 : values.reduce((a, b) => a + b, 0) / values.length);

export function summarizeByMethod(rows: ResultRow[]): MethodSummary[] {
  const groups = new Map<string, ResultRow[]>();
  for (const row of rows) {
    const list = groups.get(row.method) ?? [];
    list.push(row);
    groups.set(row.method, list);
  }
  const summaries: MethodSummary[] = [];
  for (const [method, group] of groups) {
    const ok = group.filter((r) => r.error === null);
    summaries.push({
      method,
      family: group[0].family,
      rows: group.length,
      errors: group.length - ok.length,
      meanScore: mean(ok.map((r) => r.score)),
      exactRate: mean(ok.map((r) => (r.exact ? 1 : 0))),
      memoryFraction: mean(ok.filter((r) => r.bytesFull > 0).map((r) => r.bytesHeld / r.bytesFull)),
      meanBytesHeld: mean(ok.map((r) => r.bytesHeld)),
      meanCompressMs: mean(ok.map((r) => r.compressMs)),
      meanDecodeTokensPerSecond: mean(ok.map((r) => r.decodeTokensPerSecond)),
      verified: ok.length > 0 && ok.every((r) => r.verified),
      paretoOptimal: false,
    });
  }
  markParetoFrontier(summaries);
  return summaries;
}

/** A method is Pareto-optimal when no other holds at most as much memory with at least the score, better in one. */
export function markParetoFrontier(summaries: MethodSummary[]): void {
  for (const candidate of summaries) {
    candidate.paretoOptimal =
      candidate.rows > candidate.errors &&
      !summaries.some(
        (other) =>
          other !== candidate &&
          other.rows > other.errors &&
          other.memoryFraction <= candidate.memoryFraction &&
          other.meanScore >= candidate.meanScore &&
          (other.memoryFraction < candidate.memoryFraction || other.meanScore > candidate.meanScore),
      );
  }
}

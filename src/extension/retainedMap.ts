// The retained-context map: which source lines a compressed cache still held, as line ranges to decorate.
import type { ProfiledRow } from './resultsModel';
import { normalizeRelativePath } from './codeLensText';

export type LineRange = [number, number];

/** Sorts and unions inclusive line ranges, joining ranges that touch (e.g. [1,3] and [4,6]). */
export function mergeRanges(ranges: LineRange[]): LineRange[] {
  const sorted = ranges.map((r) => [r[0], r[1]] as LineRange).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  const out: LineRange[] = [];
  for (const range of sorted) {
    const last = out[out.length - 1];
    if (last && range[0] <= last[1] + 1) last[1] = Math.max(last[1], range[1]);
    else out.push(range);
  }
  return out;
}

/** The lines between kept ranges (what the method evicted inside the span it saw). */
export function gapsBetween(kept: LineRange[]): LineRange[] {
  const merged = mergeRanges(kept);
  const gaps: LineRange[] = [];
  for (let i = 1; i < merged.length; i++) gaps.push([merged[i - 1][1] + 1, merged[i][0] - 1]);
  return gaps;
}

export interface RetainedView {
  /** Lines the method kept in every sample whose context held them. */
  kept: LineRange[];
  /** Lines it kept in some of those samples but not all. */
  partial: LineRange[];
  /** Lines it dropped in every sample whose context held them. */
  dropped: LineRange[];
  samples: number;
}

function keptLinesOf(row: ProfiledRow, method: string, file: string): LineRange[] | null {
  if (!row.retained) return null;
  const ranges = row.retained.filter((e) => e.method === method && normalizeRelativePath(e.file) === file).flatMap((e) => e.keptLines);
  return ranges.length > 0 ? ranges : null;
}

/** Runs of consecutive lines whose class matches, as inclusive ranges. */
function runsWhere(first: number, last: number, matches: (line: number) => boolean): LineRange[] {
  const out: LineRange[] = [];
  let start = -1;
  for (let line = first; line <= last + 1; line++) {
    const hit = line <= last && matches(line);
    if (hit && start < 0) start = line;
    if (!hit && start >= 0) {
      out.push([start, line - 1]);
      start = -1;
    }
  }
  return out;
}

/**
 * How `method` treated the lines of `file` over the samples given (one sample, or all of them). A sample's
 * context is what `full` kept of the file in that sample (everything the prompt held); without a `full` row it is
 * the span from the method's first to last kept line. Returns null when no row maps `method` onto `file`.
 */
export function retainedView(rows: ProfiledRow[], method: string, file: string, sampleId?: string): RetainedView | null {
  const target = normalizeRelativePath(file);
  const bySample = new Map<string, { kept: LineRange[]; context: LineRange[] | null }>();
  for (const row of rows) {
    if (sampleId !== undefined && row.sampleId !== sampleId) continue;
    const key = `${row.task}\u0000${row.sampleId}`;
    if (row.method === method) {
      const kept = keptLinesOf(row, method, target);
      if (kept) bySample.set(key, { kept: mergeRanges(kept), context: bySample.get(key)?.context ?? null });
    }
  }
  if (bySample.size === 0) return null;
  for (const row of rows) {
    if (row.method !== 'full' || method === 'full') continue;
    const entry = bySample.get(`${row.task}\u0000${row.sampleId}`);
    const context = entry ? keptLinesOf(row, 'full', target) : null;
    if (entry && context) entry.context = mergeRanges(context);
  }
  const keptCount = new Map<number, number>();
  const seenCount = new Map<number, number>();
  let first = Number.POSITIVE_INFINITY;
  let last = -1;
  const bump = (map: Map<number, number>, from: number, to: number) => {
    for (let line = from; line <= to; line++) map.set(line, (map.get(line) ?? 0) + 1);
  };
  for (const { kept, context } of bySample.values()) {
    const span: LineRange[] = context ?? [[kept[0][0], kept[kept.length - 1][1]]];
    for (const [a, b] of span) {
      bump(seenCount, a, b);
      first = Math.min(first, a);
      last = Math.max(last, b);
    }
    for (const [a, b] of kept) {
      bump(keptCount, a, b);
      first = Math.min(first, a);
      last = Math.max(last, b);
    }
  }
  const keptIn = (line: number) => keptCount.get(line) ?? 0;
  const seenIn = (line: number) => Math.max(seenCount.get(line) ?? 0, keptIn(line));
  return {
    kept: runsWhere(first, last, (l) => keptIn(l) > 0 && keptIn(l) === seenIn(l)),
    partial: runsWhere(first, last, (l) => keptIn(l) > 0 && keptIn(l) < seenIn(l)),
    dropped: runsWhere(first, last, (l) => keptIn(l) === 0 && seenIn(l) > 0),
    samples: bySample.size,
  };
}

/** Methods for which some row carries a retained map. */
export function methodsWithRetained(rows: ProfiledRow[]): string[] {
  return [...new Set(rows.filter((r) => r.retained && r.retained.length > 0).map((r) => r.method))];
}

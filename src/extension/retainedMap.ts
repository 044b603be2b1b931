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
  kept: LineRange[];
  dropped: LineRange[];
  samples: number;
}

/**
 * Kept and dropped lines of `file` for `method`, over the rows given (one sample, or all of them).
 * Returns null when no row carries a retained map for that method and file.
 */
export function retainedView(rows: ProfiledRow[], method: string, file: string, sampleId?: string): RetainedView | null {
  const target = normalizeRelativePath(file);
  const kept: LineRange[] = [];
  const samples = new Set<string>();
  for (const row of rows) {
    if (row.method !== method || !row.retained) continue;
    if (sampleId !== undefined && row.sampleId !== sampleId) continue;
    for (const entry of row.retained) {
      if (entry.method !== method || normalizeRelativePath(entry.file) !== target) continue;
      kept.push(...entry.keptLines);
      samples.add(`${row.task}\u0000${row.sampleId}`);
    }
  }
  if (samples.size === 0) return null;
  const merged = mergeRanges(kept);
  return { kept: merged, dropped: gapsBetween(merged), samples: samples.size };
}

/** Methods for which some row carries a retained map. */
export function methodsWithRetained(rows: ProfiledRow[]): string[] {
  return [...new Set(rows.filter((r) => r.retained && r.retained.length > 0).map((r) => r.method))];
}

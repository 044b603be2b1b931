// What the editor shows above each profiled site: one verdict per method, e.g. `full ✓ · kivi:bits=2 ✓ · streamingllm:ratio=0.5 ✗`.
import type { ProfiledRow } from './resultsModel';
import { formatBytes, methodOrder } from '../engine/bench/summary';

export interface ProfiledSite {
  file: string;
  line: number;
  rows: ProfiledRow[];
  /** The first sample at this site, which a click on the lens opens in the panel. */
  task: string;
  sampleId: string;
}

/** Normalises a workspace-relative path so rows and editor documents compare equal on every platform. */
export function normalizeRelativePath(path: string): string {
  return path.replace(/\\/g, '/').replace(/^\.\//, '');
}

/** Rows grouped by source site, sites ordered by file then line. */
export function profiledSites(rows: ProfiledRow[]): ProfiledSite[] {
  const byKey = new Map<string, ProfiledSite>();
  for (const row of rows) {
    if (!row.source) continue;
    const file = normalizeRelativePath(row.source.file);
    const key = `${file}\u0000${row.source.line}`;
    let site = byKey.get(key);
    if (!site) {
      site = { file, line: row.source.line, rows: [], task: row.task, sampleId: row.sampleId };
      byKey.set(key, site);
    }
    site.rows.push(row);
  }
  return [...byKey.values()].sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : a.line - b.line));
}

/**
 * One method's verdict over its rows at a site: ✓ when every sample was answered exactly, ✗ when none was,
 * `k/n` when some were; an edit-similarity score (completion) shows as a number when it is neither 0 nor 1;
 * ⚠ when the engine failed on every row.
 */
export function methodVerdict(rows: ProfiledRow[]): string {
  const ok = rows.filter((r) => r.error === null);
  if (ok.length === 0) return '⚠';
  const exact = ok.filter((r) => r.exact).length;
  if (exact === ok.length) return '✓';
  if (exact > 0) return `${exact}/${ok.length}`;
  const partial = ok.filter((r) => r.score > 0 && r.score < 1);
  if (partial.length > 0) {
    const meanScore = ok.reduce((s, r) => s + r.score, 0) / ok.length;
    return meanScore.toFixed(2);
  }
  return '✗';
}

export function codeLensTitle(site: ProfiledSite, configuredMethods: string[] = []): string {
  return methodOrder(site.rows, configuredMethods)
    .map((m) => `${m} ${methodVerdict(site.rows.filter((r) => r.method === m))}`)
    .join(' · ');
}

function escapeMarkdownCell(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\|/g, '\\|').replace(/[\r\n]+/g, ' ').replace(/([`*_[\]<>])/g, '\\$1');
}

/** The hover over a retained-context decoration: which method kept (or evicted) these lines, over how many samples. */
export function retainedHoverMarkdown(method: string, what: string, start: number, end: number, samples: number): string {
  return `kvlens: ${escapeMarkdownCell(method)} ${what}: lines ${start + 1}–${end + 1} (over ${samples} sample${samples === 1 ? '' : 's'})`;
}

function clip(text: string, max = 40): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** Markdown for the hover over a profiled site: one line per row with answer, score and memory. */
export function siteHoverMarkdown(site: ProfiledSite, configuredMethods: string[] = []): string {
  const lines = [
    `**kvlens** — ${escapeMarkdownCell(site.file)}:${site.line + 1}`,
    '',
    '| method | task | length | score | answer | expected | held | ratio | prefill |',
    '| --- | --- | ---: | ---: | --- | --- | ---: | ---: | ---: |',
  ];
  for (const method of methodOrder(site.rows, configuredMethods)) {
    for (const r of site.rows.filter((row) => row.method === method)) {
      const answer = r.error === null ? escapeMarkdownCell(clip(r.answer)) : `error: ${escapeMarkdownCell(clip(r.error))}`;
      lines.push(
        `| ${escapeMarkdownCell(method)} | ${escapeMarkdownCell(r.task)} | ${r.length} | ${r.score.toFixed(2)} | ${answer} | ${escapeMarkdownCell(clip(r.expected))} | ${formatBytes(r.bytesHeld)} | ${r.compressionRatio.toFixed(2)}× | ${r.prefillMs.toFixed(0)} ms |`,
      );
    }
  }
  return lines.join('\n');
}

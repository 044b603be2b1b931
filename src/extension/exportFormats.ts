// Exports of a results file: JSON (as stored), CSV (one line per row) and Markdown (summary tables).
import type { ProfiledResults, ProfiledRow } from './resultsModel';
import { formatBytes, formatNumber, summarizeMethods, taskOrder, taskScores } from './resultsSummary';
import type { ExportFormat } from './panelMessages';

export const CSV_COLUMNS = [
  'task', 'sampleId', 'method', 'family', 'length', 'targetLength', 'depth', 'score', 'exact', 'answer', 'expected',
  'tokensKept', 'tokensKeptPerHead', 'tokensFull', 'bytesHeld', 'bytesFull', 'bytesActive', 'compressionRatio', 'verified',
  'prefillMs', 'compressMs', 'decodeTokensPerSecond', 'peakRssBytes', 'sourceFile', 'sourceLine', 'note', 'error',
] as const;

function csvCell(value: unknown): string {
  if (value === null || value === undefined) return '';
  const text = String(value);
  // RFC 4180: quote fields holding a separator, a quote or a line break, doubling inner quotes.
  return /[",\r\n]/.test(text) || text !== text.trim() ? `"${text.replace(/"/g, '""')}"` : text;
}

function csvRecord(row: ProfiledRow): unknown[] {
  return CSV_COLUMNS.map((column) => {
    if (column === 'sourceFile') return row.source?.file ?? null;
    if (column === 'sourceLine') return row.source?.line ?? null;
    return row[column];
  });
}

export function toCsv(results: ProfiledResults): string {
  const lines = [CSV_COLUMNS.join(',')];
  for (const row of results.rows) lines.push(csvRecord(row).map(csvCell).join(','));
  return lines.join('\r\n') + '\r\n';
}

function mdCell(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\|/g, '\\|').replace(/[\r\n]+/g, ' ');
}

export function toMarkdown(results: ProfiledResults): string {
  const config = results.config;
  const summaries = summarizeMethods(results.rows, config.methods);
  const tasks = taskOrder(results.rows, config.tasks);
  const methods = summaries.map((s) => s.method);
  const scores = taskScores(results.rows, methods, tasks);
  const out: string[] = [];
  out.push(`# kvlens results — ${mdCell(results.createdAt)}`, '');
  out.push(
    `Status: ${results.status} · model ${mdCell(config.model.path)} (${mdCell(config.model.architecture ?? '')}) · provider ${mdCell(config.executionProvider)} · ` +
      `lengths ${config.lengths.join(', ')} · samples ${config.samples} · seed ${config.seed}`,
    '',
  );
  out.push('## Methods', '');
  out.push('| method | mean score | exact | held (mean) | full (mean) | ratio | prefill ms | compress ms | decode tok/s | rows | errors |');
  out.push('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const s of summaries) {
    out.push(
      `| ${mdCell(s.method)} | ${formatNumber(s.meanScore)} | ${formatNumber(s.exactRate * 100, 1)}% | ${formatBytes(s.meanBytesHeld)} | ${formatBytes(s.meanBytesFull)} | ` +
        `${formatNumber(s.compressionRatio, 2)}× | ${formatNumber(s.meanPrefillMs, 1)} | ${formatNumber(s.meanCompressMs, 1)} | ${formatNumber(s.meanDecodeTokensPerSecond, 1)} | ${s.rows} | ${s.errors} |`,
    );
  }
  out.push('', '## Mean score by task', '');
  out.push(`| method | ${tasks.map(mdCell).join(' | ')} |`);
  out.push(`| --- |${tasks.map(() => ' ---: |').join('')}`);
  for (const m of methods) {
    out.push(`| ${mdCell(m)} | ${tasks.map((t) => formatNumber(scores.get(m)?.get(t) ?? Number.NaN)).join(' | ')} |`);
  }
  out.push('');
  return out.join('\n');
}

export function exportResults(results: ProfiledResults, format: ExportFormat): string {
  switch (format) {
    case 'json':
      return JSON.stringify(results, null, 2) + '\n';
    case 'csv':
      return toCsv(results);
    case 'markdown':
      return toMarkdown(results);
  }
}

export const EXPORT_EXTENSIONS: Record<ExportFormat, string> = { json: 'json', csv: 'csv', markdown: 'md' };

import type { ResultRow, ResultsFile } from './results';
import { formatBytes, formatNumber, paretoFrontier, summarizeMethods } from './summary';

const ROW_COLUMNS: (keyof ResultRow)[] = [
  'task', 'sampleId', 'length', 'targetLength', 'depth', 'group', 'method', 'family', 'score', 'metric', 'exact', 'answer', 'expected', 'prediction',
  'tokensKept', 'tokensKeptPerHead', 'tokensFull', 'bytesHeld', 'bytesFull', 'bytesActive', 'compressionRatio',
  'verified', 'note', 'prefillMs', 'compressMs', 'decodeTokensPerSecond', 'peakRssBytes', 'error',
];

function csvCell(value: unknown): string {
  if (value === null || value === undefined) return '';
  let text = typeof value === 'object' ? JSON.stringify(value) : String(value);
  // A text cell a spreadsheet would run as a formula (= + - @, or a leading tab/CR) is kept as text by a quote
  // mark, as OWASP recommends; numbers stay numbers.
  if (typeof value === 'string' && /^[=+\-@\t\r]/.test(text)) text = `'${text}`;
  return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

export function toCsv(results: ResultsFile): string {
  const lines = [ROW_COLUMNS.join(',')];
  for (const row of results.rows) lines.push(ROW_COLUMNS.map((c) => csvCell(row[c])).join(','));
  return lines.join('\n') + '\n';
}

/** Text from a results file (answers, paths, task and method names) as literal Markdown: no markup, links or HTML. */
function mdCell(text: string): string {
  return text.replace(/[\\`*_{}[\]()<>#+!|~]/g, (c) => `\\${c}`).replace(/\r?\n|\r/g, ' ');
}

/** The method summary as a Markdown table: score and memory per method, Pareto-optimal ones marked. */
export function summaryMarkdown(results: ResultsFile): string {
  const lines = [
    '| method | family | score | exact | memory vs full | bytes held (mean) | decode tok/s | verified | Pareto |',
    '|---|---|---:|---:|---:|---:|---:|---|---|',
  ];
  const summaries = summarizeMethods(results.rows, results.config.methods);
  const frontier = new Set(paretoFrontier(summaries.map((s) => ({ method: s.method, bytes: s.meanBytesHeld, score: s.meanScore }))));
  for (const s of summaries) {
    const memory = Number.isFinite(s.compressionRatio) ? `${(100 / s.compressionRatio).toFixed(1)}%` : '–';
    lines.push(
      `| ${mdCell(s.method)} | ${mdCell(s.family)} | ${formatNumber(s.meanScore)} | ${Number.isFinite(s.exactRate) ? `${(s.exactRate * 100).toFixed(0)}%` : '–'} | ${memory} | ${formatBytes(s.meanBytesHeld)} | ${formatNumber(s.meanDecodeTokensPerSecond, 1)} | ${s.allVerified ? 'yes' : 'NO'} | ${frontier.has(s.method) ? '★' : ''} |` +
        (s.errors > 0 ? ` ${s.errors} errors` : ''),
    );
  }
  return lines.join('\n') + '\n';
}

export function toMarkdown(results: ResultsFile): string {
  const c = results.config;
  const header = [
    `# kvlens results (${results.status})`,
    '',
    `Model ${mdCell(c.model.path)} (${mdCell(c.model.architecture)}, ${mdCell(c.model.dtype)}, ${c.model.parameters.toLocaleString('en-US')} parameters) on ${mdCell(c.executionProvider)}; ` +
      `tasks ${mdCell(c.tasks.join(', '))}; lengths ${c.lengths.join(', ')}; seed ${c.seed}; kvlens ${mdCell(c.kvlensVersion)}.`,
    '',
    '## Summary',
    '',
    summaryMarkdown(results),
    '## Rows',
    '',
    '| task | sample | length | depth | method | score | answer | expected | kept/head | bytes held | ratio | verified |',
    '|---|---|---:|---:|---|---:|---|---|---:|---:|---:|---|',
  ];
  for (const r of results.rows) {
    header.push(
      `| ${mdCell(r.task)} | ${mdCell(r.sampleId)} | ${r.length} | ${r.depth ?? ''} | ${mdCell(r.method)} | ${r.score.toFixed(3)} | ${mdCell(r.answer)} | ${mdCell(r.expected)} | ${r.tokensKeptPerHead.toFixed(1)} | ${r.bytesHeld} | ${r.compressionRatio.toFixed(2)} | ${r.verified ? 'yes' : 'NO'} |`,
    );
  }
  return header.join('\n') + '\n';
}

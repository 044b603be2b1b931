import type { ResultRow, ResultsFile } from './results';
import { formatBytes, formatNumber, paretoFrontier, seriesNamer, summarizeMethods } from './summary';
import { csvCell, mdCell } from './exportCells';
import { paperTableMarkdown } from './paperTable';

const ROW_COLUMNS: (keyof ResultRow)[] = [
  'model', 'task', 'sampleId', 'length', 'targetLength', 'depth', 'group', 'method', 'family', 'score', 'metric', 'exact', 'answer', 'expected', 'prediction',
  'tokensKept', 'tokensKeptPerHead', 'tokensFull', 'bytesHeld', 'bytesFull', 'bytesActive', 'compressionRatio',
  'verified', 'note', 'prefillMs', 'compressMs', 'decodeTokensPerSecond', 'peakRssBytes', 'error',
];

export function toCsv(results: ResultsFile): string {
  const lines = [ROW_COLUMNS.join(',')];
  for (const row of results.rows) lines.push(ROW_COLUMNS.map((c) => csvCell(row[c])).join(','));
  return lines.join('\n') + '\n';
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
    // A recurrent model's memory is its state, not a share of a KV cache: the same bytes at every length.
    const memory = s.family === 'recurrent' ? 'constant state' : Number.isFinite(s.compressionRatio) ? `${(100 / s.compressionRatio).toFixed(1)}%` : '–';
    lines.push(
      `| ${mdCell(s.method)} | ${mdCell(s.family)} | ${formatNumber(s.meanScore)} | ${Number.isFinite(s.exactRate) ? `${(s.exactRate * 100).toFixed(0)}%` : '–'} | ${memory} | ${formatBytes(s.meanBytesHeld)} | ${formatNumber(s.meanDecodeTokensPerSecond, 1)} | ${s.allVerified ? 'yes' : 'NO'} | ${frontier.has(s.method) ? '★' : ''} |` +
        (s.errors > 0 ? ` ${s.errors} errors` : ''),
    );
  }
  return lines.join('\n') + '\n';
}

/** The paper-layout table of LongBench categories and needle, when the results have such rows. */
function paperSection(results: ResultsFile): string[] {
  const table = paperTableMarkdown(results);
  return table ? ['## LongBench categories and needle (the paper\'s layout)', '', table] : [];
}

export function toMarkdown(results: ResultsFile): string {
  const c = results.config;
  const header = [
    `# kvlens results (${results.status})`,
    '',
    `${c.models.length > 1 ? 'Models' : 'Model'} ${c.models.map((m) => `${mdCell(m.path)} (${c.models.length > 1 ? `rows ${mdCell(m.label)}, ` : ''}${mdCell(m.architecture)}, ${mdCell(m.dtype)}, ${m.parameters.toLocaleString('en-US')} parameters)`).join('; ')} on ${mdCell(c.executionProvider)}; ` +
      `tasks ${mdCell(c.tasks.join(', '))}; lengths ${c.lengths.join(', ')}; seed ${c.seed}; kvlens ${mdCell(c.kvlensVersion)}.`,
    '',
    '## Summary',
    '',
    summaryMarkdown(results),
    ...paperSection(results),
    '## Rows',
    '',
    '| task | sample | length | depth | method | score | answer | expected | kept/head | bytes held | ratio | verified |',
    '|---|---|---:|---:|---|---:|---|---|---:|---:|---:|---|',
  ];
  const series = seriesNamer(results.rows);
  for (const r of results.rows) {
    header.push(
      `| ${mdCell(r.task)} | ${mdCell(r.sampleId)} | ${r.length} | ${r.depth ?? ''} | ${mdCell(series(r))} | ${r.score.toFixed(3)} | ${mdCell(r.answer)} | ${mdCell(r.expected)} | ${r.tokensKeptPerHead.toFixed(1)} | ${r.bytesHeld} | ${r.compressionRatio.toFixed(2)} | ${r.verified ? 'yes' : 'NO'} |`,
    );
  }
  return header.join('\n') + '\n';
}

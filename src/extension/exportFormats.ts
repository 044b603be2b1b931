// Exports of a results file. CSV, Markdown and the paper-layout table come from the engine's exporters so the
// CLI and the extension write identical files; JSON is the file as stored.
import { toCsv, toMarkdown } from '../engine/bench/export';
import { paperTableCsv } from '../engine/bench/paperTable';
import type { ProfiledResults } from './resultsModel';
import type { ExportFormat } from './panelMessages';

export function exportResults(results: ProfiledResults, format: ExportFormat): string {
  switch (format) {
    case 'json':
      return JSON.stringify(results, null, 2) + '\n';
    case 'csv':
      return toCsv(results);
    case 'markdown':
      return toMarkdown(results);
    case 'paper-csv':
      return paperTableCsv(results);
  }
}

export const EXPORT_EXTENSIONS: Record<ExportFormat, string> = { json: 'json', csv: 'csv', markdown: 'md', 'paper-csv': 'paper.csv' };

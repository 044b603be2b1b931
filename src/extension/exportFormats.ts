// Exports of a results file. CSV and Markdown come from the engine's exporter so the CLI and the
// extension write identical files; JSON is the file as stored.
import { toCsv, toMarkdown } from '../engine/bench/export';
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
  }
}

export const EXPORT_EXTENSIONS: Record<ExportFormat, string> = { json: 'json', csv: 'csv', markdown: 'md' };

// The layout of Yuan et al. 2024's main table: one row per method; LongBench's six task categories (each the
// mean of its datasets' scores, as LongBench's leaderboard averages them), the needle test, and their average.
// A dataset's score is LongBench's: the mean row score × 100 to two decimals, a failed row scoring 0 as a
// missing prediction does in eval.py. The needle column is the share of needle rows answered right × 100.
import { LONGBENCH_DATASETS, type LongBenchCategory } from '../tasks/longbench';
import { pyRound2 } from '../tasks/pyText';
import type { ResultRow, ResultsFile } from './results';
import { methodOrder, seriesNamer } from './summary';
import { csvCell, mdCell } from './exportCells';

export const PAPER_COLUMNS = ['single-doc QA', 'multi-doc QA', 'summarization', 'few-shot', 'synthetic', 'code', 'needle'] as const;
export type PaperColumn = (typeof PAPER_COLUMNS)[number];

export const PAPER_HEADINGS: Record<PaperColumn, string> = {
  'single-doc QA': 'Single-Doc QA',
  'multi-doc QA': 'Multi-Doc QA',
  summarization: 'Summarization',
  'few-shot': 'Few-shot',
  synthetic: 'Synthetic',
  code: 'Code',
  needle: 'Needle',
};

export interface PaperTableRow {
  method: string;
  /** Per column in `columns` order; null where the method has no row of that column. */
  cells: (number | null)[];
  /** Mean of the cells, or null when the method lacks one of the table's columns. */
  average: number | null;
}

export interface PaperTable {
  /**
   * The columns some method has rows for, in the paper's order; none when the rows hold no LongBench set (needle
   * rows alone are kvlens' own sweep, not the paper's table).
   */
  columns: PaperColumn[];
  /** For each column, the datasets (tasks) averaged into it. */
  datasets: Record<string, string[]>;
  rows: PaperTableRow[];
}

/** The column a result row counts towards: a LongBench (or LongBench-E) set's category, the needle test, or none. */
export function paperColumnOf(task: string): PaperColumn | null {
  if (task === 'needle') return 'needle';
  const match = /^longbench(?:-e)?\/(.+)$/.exec(task);
  const category: LongBenchCategory | undefined = match ? LONGBENCH_DATASETS.get(match[1])?.category : undefined;
  return category ?? null;
}

function mean(values: number[]): number {
  return values.reduce((sum, v) => sum + v, 0) / values.length;
}

export function paperTable(rows: readonly ResultRow[], configuredMethods: string[] = []): PaperTable {
  // method → column → dataset → [total, count]
  const tally = new Map<string, Map<PaperColumn, Map<string, [number, number]>>>();
  const datasets = new Map<PaperColumn, Set<string>>();
  const name = seriesNamer(rows);
  for (const row of rows) {
    const column = paperColumnOf(row.task);
    if (column === null) continue;
    let byColumn = tally.get(name(row));
    if (!byColumn) tally.set(name(row), (byColumn = new Map()));
    let byDataset = byColumn.get(column);
    if (!byDataset) byColumn.set(column, (byDataset = new Map()));
    const cell = byDataset.get(row.task) ?? [0, 0];
    cell[0] += row.error === null ? row.score : 0;
    cell[1] += 1;
    byDataset.set(row.task, cell);
    if (!datasets.has(column)) datasets.set(column, new Set());
    datasets.get(column)!.add(row.task);
  }
  const hasLongBench = PAPER_COLUMNS.some((c) => c !== 'needle' && datasets.has(c));
  const columns = hasLongBench ? PAPER_COLUMNS.filter((c) => datasets.has(c)) : [];
  const methods = hasLongBench ? methodOrder([...rows], configuredMethods).filter((m) => tally.has(m)) : [];
  const tableRows = methods.map((method) => {
    const byColumn = tally.get(method)!;
    const cells = columns.map((column) => {
      const byDataset = byColumn.get(column);
      if (!byDataset) return null;
      return mean([...byDataset.values()].map(([total, count]) => pyRound2((100 * total) / count)));
    });
    const complete = cells.every((c): c is number => c !== null);
    return { method, cells, average: complete && cells.length > 0 ? mean(cells) : null };
  });
  return { columns, datasets: Object.fromEntries([...datasets].map(([c, set]) => [c, [...set]])), rows: tableRows };
}

/** A score as the Markdown table and the panel show it: two decimals, "–" where the method has none. */
export function formatPaperCell(value: number | null): string {
  return value === null ? '–' : value.toFixed(2);
}

/** The table in Markdown, or "" when the results hold no LongBench rows. */
export function paperTableMarkdown(results: Pick<ResultsFile, 'rows' | 'config'>): string {
  const table = paperTable(results.rows, results.config.methods);
  if (table.columns.length === 0) return '';
  const lines = [
    `| method | ${table.columns.map((c) => PAPER_HEADINGS[c]).join(' | ')} | Average |`,
    `|---|${table.columns.map(() => '---:|').join('')}---:|`,
    ...table.rows.map((r) => `| ${mdCell(r.method)} | ${r.cells.map(formatPaperCell).join(' | ')} | ${formatPaperCell(r.average)} |`),
  ];
  return lines.join('\n') + '\n';
}

/** The table as CSV (empty cells where a method has no rows of a column), header only when nothing fits it. */
export function paperTableCsv(results: Pick<ResultsFile, 'rows' | 'config'>): string {
  const table = paperTable(results.rows, results.config.methods);
  const cell = (value: number | null) => (value === null ? '' : String(pyRound2(value)));
  const lines = [
    ['method', ...table.columns.map((c) => PAPER_HEADINGS[c]), 'Average'].join(','),
    ...table.rows.map((r) => [csvCell(r.method), ...r.cells.map(cell), cell(r.average)].join(',')),
  ];
  return lines.join('\n') + '\n';
}

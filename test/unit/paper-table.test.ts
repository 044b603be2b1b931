// The paper's layout: methods as rows; LongBench categories (mean of their datasets' scores), needle and the
// average as columns; in the Markdown export and as CSV.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { paperColumnOf, paperTable, paperTableCsv, paperTableMarkdown } from '../../src/engine/bench/paperTable';
import { toMarkdown } from '../../src/engine/bench/export';
import type { ResultRow, ResultsFile } from '../../src/engine/bench/results';

const base = { model: 'default', sampleId: 's', length: 10, targetLength: 10, depth: null, family: 'baseline', exact: false, answer: '', expected: '', prediction: '', group: null, metric: null, tokensKept: 0, tokensKeptPerHead: 0, tokensFull: 0, bytesHeld: 0, bytesFull: 0, bytesActive: 0, compressionRatio: 1, verified: true, note: null, prefillMs: 0, compressMs: 0, decodeTokensPerSecond: 0, peakRssBytes: 0, source: null };
const row = (method: string, task: string, score: number, error: string | null = null): ResultRow => ({ ...base, method, task, score, error });

const rows: ResultRow[] = [
  row('full', 'longbench/narrativeqa', 0.2),
  row('full', 'longbench/hotpotqa', 1),
  row('full', 'longbench/hotpotqa', 0.5),
  row('full', 'longbench-e/2wikimqa', 0),
  row('full', 'longbench/lcc', 0.6),
  row('full', 'needle', 1),
  row('full', 'needle', 1),
  row('full', 'needle', 0),
  row('full', 'needle', 1, 'engine failed'),
  row('full', 'ruler/vt', 1),
  row('full', 'longbench-v2', 1),
  row('full', 'completion', 1),
  row('snapkv:ratio=0.5', 'longbench/hotpotqa', 1),
];
const results = { rows, config: { methods: ['full', 'snapkv:ratio=0.5'] } } as unknown as ResultsFile;

test('columns by LongBench category (LongBench-E sets too) and needle; other tasks are not in the layout', () => {
  assert.equal(paperColumnOf('longbench/qasper'), 'single-doc QA');
  assert.equal(paperColumnOf('longbench-e/samsum'), 'few-shot');
  assert.equal(paperColumnOf('longbench/passage_count'), 'synthetic');
  assert.equal(paperColumnOf('longbench/repobench-p'), 'code');
  assert.equal(paperColumnOf('needle'), 'needle');
  assert.equal(paperColumnOf('ruler/niah_single_1'), null);
  assert.equal(paperColumnOf('longbench-v2'), null);
  assert.equal(paperColumnOf('longbench/unknown_set'), null);
});

test('a category is the mean of its datasets; a failed row scores 0; the average needs every column', () => {
  const table = paperTable(rows, ['full', 'snapkv:ratio=0.5']);
  assert.deepEqual(table.columns, ['single-doc QA', 'multi-doc QA', 'code', 'needle']);
  assert.deepEqual(table.datasets['multi-doc QA'], ['longbench/hotpotqa', 'longbench-e/2wikimqa']);
  // narrativeqa 20; hotpotqa (1 + 0.5) / 2 = 75 and 2wikimqa 0, so multi-doc 37.5; lcc 60; needle 2 of 4 = 50.
  assert.deepEqual(table.rows[0], { method: 'full', cells: [20, 37.5, 60, 50], average: (20 + 37.5 + 60 + 50) / 4 });
  assert.deepEqual(table.rows[1], { method: 'snapkv:ratio=0.5', cells: [null, 100, null, null], average: null });
});

test('Markdown and CSV in the paper layout, and the Markdown export carries the table', () => {
  assert.equal(
    paperTableMarkdown(results),
    '| method | Single-Doc QA | Multi-Doc QA | Code | Needle | Average |\n' +
      '|---|---:|---:|---:|---:|---:|\n' +
      '| full | 20.00 | 37.50 | 60.00 | 50.00 | 41.88 |\n' +
      '| snapkv:ratio=0.5 | – | 100.00 | – | – | – |\n',
  );
  assert.equal(paperTableCsv(results), 'method,Single-Doc QA,Multi-Doc QA,Code,Needle,Average\nfull,20,37.5,60,50,41.88\nsnapkv:ratio=0.5,,100,,,\n');
  assert.equal(paperTableMarkdown({ ...results, rows: [row('full', 'completion', 1)] }), '');
  // kvlens' own needle sweep alone is not the paper's table.
  assert.equal(paperTableMarkdown({ ...results, rows: [row('full', 'needle', 1), row('full', 'completion', 1)] }), '');
  assert.equal(paperTableCsv({ ...results, rows: [row('full', 'needle', 1)] }), 'method,Average\n');
  const file = {
    ...results,
    schemaVersion: 3,
    status: 'complete',
    createdAt: '2026-01-01T00:00:00Z',
    config: { methods: ['full'], tasks: [], lengths: [1024], seed: 0, kvlensVersion: '0', executionProvider: 'cpu', model: { path: 'm', architecture: 'a', dtype: 'f32', parameters: 1 }, models: [{ label: 'm', path: 'm', architecture: 'a', dtype: 'f32', parameters: 1, methods: ['full'] }] },
  } as unknown as ResultsFile;
  const markdown = toMarkdown(file);
  assert.ok(markdown.includes("## LongBench categories and needle (the paper's layout)\n\n| method | Single-Doc QA |"));
  assert.ok(markdown.indexOf('## LongBench categories') < markdown.indexOf('## Rows'));
});

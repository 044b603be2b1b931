// CSV and Markdown exports keep hostile text from a results file inert: no spreadsheet formulas, no Markdown
// markup, links or HTML, and table cells that stay cells.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { toCsv, toMarkdown } from '../../src/engine/bench/export';
import type { ResultsFile } from '../../src/engine/bench/results';

function fixture(): ResultsFile {
  return JSON.parse(readFileSync(join(__dirname, '..', 'fixtures', 'extension', 'results-fixture.json'), 'utf8')) as ResultsFile;
}

test('csv: text cells a spreadsheet would evaluate start with a quote mark; numbers stay numbers', () => {
  const results = fixture();
  results.rows = results.rows.slice(0, 1);
  results.rows[0].answer = '=HYPERLINK("http://x","y")';
  results.rows[0].expected = '@SUM(A1)';
  results.rows[0].prediction = '-2+3';
  results.rows[0].score = -0.5;
  const [header, line] = toCsv(results).trim().split('\n');
  const columns = header.split(',');
  // Quoted fields may hold commas: split on commas outside quotes.
  const cells = line.split(/,(?=(?:[^"]*"[^"]*")*[^"]*$)/);
  assert.equal(cells[columns.indexOf('answer')], `"'=HYPERLINK(""http://x"",""y"")"`);
  assert.equal(cells[columns.indexOf('expected')], `'@SUM(A1)`);
  assert.equal(cells[columns.indexOf('prediction')], `'-2+3`);
  assert.equal(cells[columns.indexOf('score')], '-0.5');
});

test('markdown: names, paths and answers are literal text, one table cell each', () => {
  const results = fixture();
  results.rows = results.rows.slice(0, 1);
  results.config.model.path = results.config.models[0].path = '/models/`evil`<img src=x onerror=alert(1)>';
  results.rows[0].task = '[click](http://x) | *bold*';
  results.rows[0].answer = 'line one\nline two | <b>x</b>';
  const markdown = toMarkdown(results);
  assert.ok(!/(?<!\\)</.test(markdown), 'an unescaped < survived');
  assert.ok(markdown.includes('\\<img src=x onerror=alert\\(1\\)\\>'));
  assert.ok(markdown.includes('\\`evil\\`'));
  const row = markdown.split('\n').find((l) => l.includes('click'));
  assert.ok(row, 'the row is there');
  assert.ok(row.startsWith('| \\[click\\]\\(http://x\\) \\| \\*bold\\* |'), row);
  assert.ok(row.includes('line one line two \\| \\<b\\>x\\</b\\>'), row);
  // Unescaped pipes delimit cells: the row keeps the table's 12 columns.
  assert.equal(row.split(/(?<!\\)\|/).length - 2, 12);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ProfiledResults } from '../../src/extension/resultsModel';
import { exportResults } from '../../src/extension/exportFormats';

const text = readFileSync(join(__dirname, '..', 'fixtures', 'extension', 'results-fixture.json'), 'utf8');
const fixture = () => JSON.parse(text) as ProfiledResults;

// A small RFC 4180 reader written for this test, independent of the exporter (accepts LF or CRLF records).
function parseCsv(input: string): string[][] {
  const records: string[][] = [];
  let record: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < input.length; i++) {
    const c = input[i];
    if (quoted) {
      if (c === '"' && input[i + 1] === '"') { field += '"'; i++; }
      else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') { record.push(field); field = ''; }
    else if (c === '\n' || (c === '\r' && input[i + 1] === '\n')) {
      if (c === '\r') i++;
      record.push(field); records.push(record); record = []; field = '';
    } else field += c;
  }
  if (field !== '' || record.length > 0) { record.push(field); records.push(record); }
  return records;
}

test('CSV export has a header and one record per row with the row values', () => {
  const records = parseCsv(exportResults(fixture(), 'csv'));
  const header = records[0];
  assert.equal(records.length, 1 + 36);
  for (const column of ['task', 'sampleId', 'method', 'score', 'exact', 'bytesHeld', 'depth', 'error']) assert.ok(header.includes(column), column);
  const kiviMiss = records.find((r) => r[header.indexOf('sampleId')] === 'needle-2048-d50' && r[header.indexOf('method')] === 'kivi:bits=2')!;
  assert.equal(kiviMiss[header.indexOf('score')], '0');
  assert.equal(kiviMiss[header.indexOf('exact')], 'false');
  assert.equal(kiviMiss[header.indexOf('bytesHeld')], '1310720');
  assert.equal(kiviMiss[header.indexOf('error')], '');
  const completion = records.find((r) => r[header.indexOf('task')] === 'completion')!;
  assert.equal(completion[header.indexOf('depth')], '');
});

test('CSV export quotes commas, quotes and line breaks so they survive a round trip', () => {
  const results = fixture();
  results.rows = [results.rows[0]];
  results.rows[0].answer = 'say "hi", then\nleave';
  const records = parseCsv(exportResults(results, 'csv'));
  assert.equal(records.length, 2);
  assert.equal(records[1][records[0].indexOf('answer')], 'say "hi", then\nleave');
});

test('Markdown export has the hand-computed method means and marks the frontier', () => {
  const md = exportResults(fixture(), 'markdown');
  assert.match(md, /^# kvlens results \(complete\)/);
  const line = (method: string) => md.split('\n').find((l) => l.startsWith(`| ${method} |`)) ?? '';
  assert.match(line('full'), /\| 0\.978 \| 89% \| 100\.0% \|.*\| ★ \|$/);
  assert.match(line('streamingllm:ratio=0.5'), /\| 0\.522 \| 44% \| 50\.0% \|.*\|  \|$/);
  assert.match(line('kivi:bits=2'), /\| 0\.856 \| 78% \| 15\.6% \|.*\| ★ \|$/);
});

test('Markdown export escapes pipes in method names', () => {
  const results = fixture();
  for (const r of results.rows) if (r.method === 'full') r.method = 'odd|name';
  assert.ok(exportResults(results, 'markdown').includes('| odd\\|name |'));
});

test('JSON export round-trips the file', () => {
  assert.deepEqual(JSON.parse(exportResults(fixture(), 'json')), fixture());
});

test('CSV export carries the metric, the reporting group and the raw prediction', () => {
  const results = fixture();
  results.rows = [results.rows[0]];
  Object.assign(results.rows[0], { task: 'longbench-e/qasper', metric: 'qa_f1_score', group: '4-8k', prediction: 'Ada, "the keeper"\nand more' });
  const records = parseCsv(exportResults(results, 'csv'));
  const column = (name: string) => records[1][records[0].indexOf(name)];
  assert.equal(column('metric'), 'qa_f1_score');
  assert.equal(column('group'), '4-8k');
  assert.equal(column('prediction'), 'Ada, "the keeper"\nand more');
});

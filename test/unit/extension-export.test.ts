import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ProfiledResults } from '../../src/extension/resultsModel';
import { CSV_COLUMNS, exportResults, toCsv, toMarkdown } from '../../src/extension/exportFormats';

const text = readFileSync(join(__dirname, '..', 'fixtures', 'extension', 'results-fixture.json'), 'utf8');
const fixture = () => JSON.parse(text) as ProfiledResults;

// A small RFC 4180 reader written for this test, independent of the exporter.
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
    else if (c === '\r' && input[i + 1] === '\n') { record.push(field); records.push(record); record = []; field = ''; i++; }
    else field += c;
  }
  if (field !== '' || record.length > 0) { record.push(field); records.push(record); }
  return records;
}

test('CSV has a header and one record per row with the row values', () => {
  const results = fixture();
  const records = parseCsv(toCsv(results));
  assert.deepEqual(records[0], [...CSV_COLUMNS]);
  assert.equal(records.length, 1 + 36);
  const header = records[0];
  const kiviMiss = records.find((r) => r[header.indexOf('sampleId')] === 'needle-2048-d50' && r[header.indexOf('method')] === 'kivi:bits=2')!;
  assert.equal(kiviMiss[header.indexOf('score')], '0');
  assert.equal(kiviMiss[header.indexOf('exact')], 'false');
  assert.equal(kiviMiss[header.indexOf('bytesHeld')], '1310720');
  assert.equal(kiviMiss[header.indexOf('sourceFile')], 'src/db/pool.ts');
  assert.equal(kiviMiss[header.indexOf('sourceLine')], '120');
  assert.equal(kiviMiss[header.indexOf('error')], '');
  assert.equal(records[1][header.indexOf('depth')], '0');
  const completion = records.find((r) => r[header.indexOf('task')] === 'completion')!;
  assert.equal(completion[header.indexOf('depth')], '');
});

test('CSV quotes commas, quotes, line breaks and edge spaces so they survive a round trip', () => {
  const results = fixture();
  results.rows = [results.rows[0]];
  results.rows[0].answer = 'say "hi", then\r\nleave';
  results.rows[0].expected = ' padded ';
  results.rows[0].source = null;
  const records = parseCsv(toCsv(results));
  const header = records[0];
  assert.equal(records.length, 2);
  assert.equal(records[1][header.indexOf('answer')], 'say "hi", then\r\nleave');
  assert.equal(records[1][header.indexOf('expected')], ' padded ');
  assert.equal(records[1][header.indexOf('sourceFile')], '');
});

test('Markdown summary has the hand-computed method means and task table', () => {
  const md = toMarkdown(fixture());
  assert.match(md, /^# kvlens results — 2026-11-20T10:15:00\.000Z/);
  assert.ok(md.includes('| full | 0.978 | 88.9% | 5.78 MiB | 5.78 MiB | 1.00× | 182.2 | 0.0 | 40.0 | 9 | 0 |'), md);
  assert.ok(md.includes('| streamingllm:ratio=0.5 | 0.522 | 44.4% | 2.89 MiB | 5.78 MiB | 2.00× |'), md);
  assert.ok(md.includes('| method | needle | completion | vartrack |'));
  assert.ok(md.includes('| kivi:bits=2 | 0.833 | 0.850 | 1.000 |'), md);
});

test('Markdown escapes pipes in method names', () => {
  const results = fixture();
  for (const r of results.rows) if (r.method === 'full') r.method = 'odd|name';
  assert.ok(toMarkdown(results).includes('| odd\\|name |'));
});

test('JSON export round-trips the file', () => {
  assert.deepEqual(JSON.parse(exportResults(fixture(), 'json')), fixture());
});

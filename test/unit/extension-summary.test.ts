import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkResultsFile, type ProfiledResults } from '../../src/extension/resultsModel';
import { formatBytes, needleGrid, needleMethods, paretoFrontier, summarizeMethods, taskScores } from '../../src/engine/bench/summary';
import { gapsBetween, mergeRanges, retainedView } from '../../src/extension/retainedMap';
import { resultsSchemaErrors } from '../../src/engine/bench/validate';

const fixturePath = join(__dirname, '..', 'fixtures', 'extension', 'results-fixture.json');
function fixture(): ProfiledResults {
  return JSON.parse(readFileSync(fixturePath, 'utf8')) as ProfiledResults;
}

test('the hand-made fixture is a valid results file', () => {
  assert.equal(checkResultsFile(fixture()), null);
});

test('results validation names the bad field', () => {
  const bad = fixture() as unknown as { rows: Array<Record<string, unknown>> };
  bad.rows[3].score = 'high';
  assert.equal(checkResultsFile(bad), 'rows[3].score must be a finite number, found "high"');
  const wrongVersion = { ...fixture(), schemaVersion: 1 };
  assert.match(checkResultsFile(wrongVersion) ?? '', /schemaVersion must be 3, found 1/);
  const badRetained = fixture() as unknown as { rows: Array<Record<string, unknown>> };
  badRetained.rows[0].retained = [{ method: 'full', file: 'a.ts', keptLines: [[5, 2]] }];
  assert.match(checkResultsFile(badRetained) ?? '', /rows\[0\]\.retained\[0\]\.keptLines\[0\] ends before it starts/);
  assert.match(checkResultsFile(null) ?? '', /results must be an object/);
});

test('method means match the fixture numbers worked out by hand', () => {
  const results = fixture();
  const summaries = summarizeMethods(results.rows, results.config.methods);
  assert.deepEqual(summaries.map((s) => s.method), ['full', 'kivi:bits=2', 'streamingllm:ratio=0.5', 'snapkv:ratio=0.5']);
  const byMethod = new Map(summaries.map((s) => [s.method, s]));
  assert.ok(Math.abs(byMethod.get('full')!.meanScore - 8.8 / 9) < 1e-12);
  assert.ok(Math.abs(byMethod.get('kivi:bits=2')!.meanScore - 7.7 / 9) < 1e-12);
  assert.ok(Math.abs(byMethod.get('streamingllm:ratio=0.5')!.meanScore - 4.7 / 9) < 1e-12);
  assert.ok(Math.abs(byMethod.get('snapkv:ratio=0.5')!.meanScore - 7.8 / 9) < 1e-12);
  // 13312 prompt tokens over 9 samples at 4096 bytes per token.
  assert.ok(Math.abs(byMethod.get('full')!.meanBytesHeld - (13312 * 4096) / 9) < 1e-6);
  assert.ok(Math.abs(byMethod.get('streamingllm:ratio=0.5')!.compressionRatio - 2) < 1e-9);
  assert.equal(byMethod.get('full')!.meanDecodeTokensPerSecond, 40);
  // Prefill: 5 samples at 1024 tokens (120 ms), 4 at 2048 (260 ms).
  assert.ok(Math.abs(byMethod.get('full')!.meanPrefillMs - (5 * 120 + 4 * 260) / 9) < 1e-9);
});

test('error rows are counted but kept out of the means', () => {
  const results = fixture();
  const row = results.rows.find((r) => r.method === 'full' && r.sampleId === 'completion-2048-0')!;
  row.error = 'onnxruntime: out of memory';
  row.score = 0;
  const full = summarizeMethods(results.rows).find((s) => s.method === 'full')!;
  assert.equal(full.errors, 1);
  assert.ok(Math.abs(full.meanScore - 8.0 / 8) < 1e-12);
});

test('per-task means', () => {
  const results = fixture();
  const table = taskScores(results.rows, ['streamingllm:ratio=0.5', 'snapkv:ratio=0.5'], ['needle', 'completion', 'vartrack']);
  assert.ok(Math.abs(table.get('streamingllm:ratio=0.5')!.get('needle')! - 4 / 6) < 1e-12);
  assert.ok(Math.abs(table.get('snapkv:ratio=0.5')!.get('completion')! - 0.9) < 1e-12);
  assert.equal(table.get('streamingllm:ratio=0.5')!.get('vartrack'), 0);
});

test('Pareto frontier keeps only undominated methods, by bytes', () => {
  const results = fixture();
  const points = summarizeMethods(results.rows).map((s) => ({ method: s.method, bytes: s.meanBytesHeld, score: s.meanScore }));
  assert.deepEqual(paretoFrontier(points), ['kivi:bits=2', 'snapkv:ratio=0.5', 'full']);
  // Ties: equal bytes and score are both kept; a strictly worse twin is not.
  assert.deepEqual(paretoFrontier([{ method: 'a', bytes: 1, score: 1 }, { method: 'b', bytes: 1, score: 1 }, { method: 'c', bytes: 1, score: 0.5 }]), ['a', 'b']);
  assert.deepEqual(paretoFrontier([{ method: 'nan', bytes: Number.NaN, score: 1 }, { method: 'x', bytes: 5, score: 0 }]), ['x']);
});

test('needle grid by length and depth', () => {
  const results = fixture();
  assert.deepEqual(needleMethods(results.rows, ['kivi:bits=2', 'full']), ['full', 'kivi:bits=2', 'streamingllm:ratio=0.5', 'snapkv:ratio=0.5']);
  const grid = needleGrid(results.rows, 'streamingllm:ratio=0.5');
  assert.deepEqual(grid.lengths, [1024, 2048]);
  assert.deepEqual(grid.depths, [0, 0.5, 1]);
  assert.deepEqual(grid.cells, [[1, 0, 1], [1, 0, 1]]);
  assert.deepEqual(needleGrid(results.rows, 'snapkv:ratio=0.5').cells, [[1, 1, 1], [0, 1, 1]]);
  const none = needleGrid(results.rows, 'h2o:budget=512');
  assert.ok(none.cells.flat().every((v) => Number.isNaN(v)));
});

test('retained-context ranges merge and leave the evicted gaps', () => {
  assert.deepEqual(mergeRanges([[10, 12], [0, 3], [4, 6], [11, 20]]), [[0, 6], [10, 20]]);
  assert.deepEqual(gapsBetween([[0, 6], [10, 20], [25, 25]]), [[7, 9], [21, 24]]);
  const results = fixture();
  // No `full` map in the fixture: each sample's context is the span of what the method kept.
  assert.deepEqual(retainedView(results.rows, 'streamingllm:ratio=0.5', 'src/server/router.ts'), { kept: [[0, 15], [90, 110]], partial: [], dropped: [[16, 89]], samples: 3 });
  assert.deepEqual(retainedView(results.rows, 'snapkv:ratio=0.5', './src/db/pool.ts', 'needle-2048-d0')?.dropped, [[5, 114], [126, 229]]);
  assert.equal(retainedView(results.rows, 'full', 'src/server/router.ts'), null);
});

test('retained-context view: full gives each sample its context, lines split into kept, partly kept and dropped', () => {
  const base = fixture().rows[0];
  const row = (sampleId: string, method: string, keptLines: Array<[number, number]>) => ({
    ...base, sampleId, method, retained: [{ method, file: 'a.ts', keptLines }],
  });
  const rows = [
    row('A', 'full', [[0, 30]]), row('A', 'snapkv:ratio=0.5', [[0, 10]]),
    row('B', 'full', [[0, 30]]), row('B', 'snapkv:ratio=0.5', [[0, 20]]),
    // Sample C only saw lines 40-50 of the file, and the method kept all of them.
    row('C', 'full', [[40, 50]]), row('C', 'snapkv:ratio=0.5', [[40, 50]]),
  ];
  assert.deepEqual(retainedView(rows, 'snapkv:ratio=0.5', 'a.ts'), { kept: [[0, 10], [40, 50]], partial: [[11, 20]], dropped: [[21, 30]], samples: 3 });
  assert.deepEqual(retainedView(rows, 'snapkv:ratio=0.5', 'a.ts', 'B'), { kept: [[0, 20]], partial: [], dropped: [[21, 30]], samples: 1 });
  assert.equal(retainedView(rows, 'snapkv:ratio=0.5', 'b.ts'), null);
});

test('byte formatting', () => {
  assert.equal(formatBytes(512), '512 B');
  assert.equal(formatBytes(4 * 1024 * 1024), '4.00 MiB');
  assert.equal(formatBytes(655360), '640 KiB');
  assert.equal(formatBytes(Number.NaN), '–');
});

test('the fixture follows the engine results schema, retained-context map included', () => {
  assert.deepEqual(resultsSchemaErrors(fixture()), []);
});

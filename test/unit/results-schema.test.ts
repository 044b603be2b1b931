// The results file's schemaVersion 2 row fields (prediction, metric, group) and the migration of version-1
// files, which did not record them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { migrateResults, readResultsFile, resultsSchemaErrors } from '../../src/engine/bench/validate';
import { RESULTS_SCHEMA_VERSION, type ResultsFile } from '../../src/engine/bench/results';
import { modelLabel } from '../../src/engine/bench/migrate';

const fixtureText = readFileSync(join(__dirname, '..', 'fixtures', 'extension', 'results-fixture.json'), 'utf8');

function asVersion1(): Record<string, unknown> {
  const file = JSON.parse(fixtureText) as { schemaVersion: number; config: Record<string, unknown>; rows: Record<string, unknown>[] };
  file.schemaVersion = 1;
  delete file.config.models;
  for (const row of file.rows) {
    delete row.model;
    delete row.prediction;
    delete row.metric;
    delete row.group;
  }
  return file as unknown as Record<string, unknown>;
}

test('rows carry the raw prediction, the metric and the reporting group', () => {
  assert.equal(RESULTS_SCHEMA_VERSION, 3);
  const file = JSON.parse(fixtureText);
  assert.deepEqual(resultsSchemaErrors(file), []);
  const withoutPrediction = structuredClone(file);
  delete withoutPrediction.rows[0].prediction;
  assert.match(resultsSchemaErrors(withoutPrediction).join('; '), /rows\/0 must have required property 'prediction'/);
  const badMetric = structuredClone(file);
  badMetric.rows[0].metric = 'bleu';
  assert.notDeepEqual(resultsSchemaErrors(badMetric), []);
  const longbench = structuredClone(file);
  Object.assign(longbench.rows[0], { task: 'longbench-e/qasper', metric: 'qa_f1_score', group: '4-8k', prediction: 'The answer is Ada.\nMore text' });
  assert.deepEqual(resultsSchemaErrors(longbench), []);
});

test('a version 1 file is migrated on reading: the new fields are null and the log says so', () => {
  const v1 = asVersion1();
  assert.notDeepEqual(resultsSchemaErrors(v1), [], 'version 1 is not the current schema');
  const migrated = migrateResults(v1) as { schemaVersion: number; rows: Record<string, unknown>[]; log: string[] };
  assert.equal(migrated.schemaVersion, 3);
  assert.deepEqual(resultsSchemaErrors(migrated), []);
  assert.ok(migrated.rows.every((r) => r.prediction === null && r.metric === null && r.group === null));
  assert.match(migrated.log.at(-2) ?? '', /migrated from results schemaVersion 1/);
  assert.equal(migrateResults(migrated), migrated, 'a current file is left alone');
  const dir = mkdtempSync(join(tmpdir(), 'kvlens-migrate-'));
  try {
    const path = join(dir, 'old.json');
    writeFileSync(path, JSON.stringify(v1));
    const read = readResultsFile(path);
    assert.equal(read.schemaVersion, 3);
    assert.equal(read.rows.length, (v1.rows as unknown[]).length);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a version 2 file (one model) reads as version 3: every row is keyed by that model, config.models lists it', () => {
  const v2 = JSON.parse(fixtureText) as { schemaVersion: number; config: Record<string, unknown>; rows: Record<string, unknown>[] };
  v2.schemaVersion = 2;
  delete v2.config.models;
  for (const row of v2.rows) delete row.model;
  assert.match(resultsSchemaErrors(v2).join('; '), /schemaVersion|models|model/);
  const migrated = migrateResults(v2) as ResultsFile;
  assert.deepEqual(resultsSchemaErrors(migrated), []);
  assert.equal(migrated.schemaVersion, 3);
  assert.ok(migrated.rows.every((r) => r.model === 'default'));
  assert.deepEqual(migrated.config.models.map((m) => [m.label, m.path, m.methods]), [['default', 'default', migrated.config.methods]]);
  assert.match(migrated.log.at(-1) ?? '', /migrated from results schemaVersion 2 \(one model, default\)/);
  const withoutModel = structuredClone(migrated) as unknown as { rows: Record<string, unknown>[] };
  delete withoutModel.rows[0].model;
  assert.match(resultsSchemaErrors(withoutModel).join('; '), /rows\/0 must have required property 'model'/);
  assert.equal(modelLabel('/models/hf/mamba-130m/'), 'mamba-130m');
  assert.equal(modelLabel('C:\\m\\tiny.Q8_0.gguf'), 'tiny.Q8_0');
});

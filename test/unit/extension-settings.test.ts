import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isAbsolute, join } from 'node:path';
import { mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { listResultsFiles, readProfiledResults, resultsFromAnswer } from '../../src/extension/resultsFiles';
import { DEFAULT_SETTINGS, isMethodSpec, parseSettings, resolveResultsFolder, resultsFileName } from '../../src/extension/settings';

function read(values: Record<string, unknown>) {
  return (key: string) => values[key];
}

test('unset settings give the defaults and no warnings', () => {
  const { settings, warnings } = parseSettings(read({}));
  assert.deepEqual(settings, DEFAULT_SETTINGS);
  assert.deepEqual(warnings, []);
});

test('valid settings are taken, lists deduplicated and sorted where order has no meaning', () => {
  const { settings, warnings } = parseSettings(read({
    model: ' /models/qwen ', methods: ['full', 'kivi:bits=4', 'full', 'h2o:budget=256,recent=32'], tasks: ['crossfile'], lengths: [2048, 512],
    depths: [1, 0], samples: 5, seed: 42, executionProvider: 'webgpu', maxContextTokens: 8192, resultsFolder: 'out/kv',
  }));
  assert.deepEqual(warnings, []);
  assert.equal(settings.model, '/models/qwen');
  assert.deepEqual(settings.methods, ['full', 'kivi:bits=4', 'h2o:budget=256,recent=32']);
  assert.deepEqual(settings.lengths, [512, 2048]);
  assert.deepEqual(settings.depths, [0, 1]);
  assert.equal(settings.executionProvider, 'webgpu');
  assert.equal(settings.resultsFolder, 'out/kv');
});

test('bad values fall back to defaults with a warning naming the setting', () => {
  const { settings, warnings } = parseSettings(read({
    methods: ['full', 'kivi bits=2'], tasks: ['needle', 'haystack'], samples: 0, executionProvider: 'tpu', lengths: 'long', model: '',
  }));
  assert.deepEqual(settings.methods, DEFAULT_SETTINGS.methods);
  assert.deepEqual(settings.tasks, DEFAULT_SETTINGS.tasks);
  assert.equal(settings.samples, DEFAULT_SETTINGS.samples);
  assert.equal(settings.executionProvider, 'auto');
  assert.equal(settings.model, 'default');
  assert.deepEqual(warnings, [
    'kvlens.model: expected a non-empty string, found ""; using the default',
    'kvlens.samples: expected an integer from 1 to 1000, found 0; using the default',
    'kvlens.methods: "kivi bits=2" is not a method spec like "full" or "kivi:bits=2"; using the default',
    'kvlens.tasks: "haystack" is not one of needle, multikey, vartrack, completion, crossfile; using the default',
    'kvlens.lengths: expected a non-empty list, found "long"; using the default',
    'kvlens.executionProvider: expected one of auto, cuda, webgpu, cpu, found "tpu"; using the default',
  ]);
});

test('lengths beyond maxContextTokens are skipped with a warning', () => {
  const { settings, warnings } = parseSettings(read({ lengths: [1024, 4096, 8192], maxContextTokens: 2048 }));
  assert.deepEqual(settings.lengths, [1024]);
  assert.deepEqual(warnings, ['kvlens.lengths: 4096, 8192 exceed kvlens.maxContextTokens (2048) and are skipped']);
  assert.deepEqual(parseSettings(read({ lengths: [8192], maxContextTokens: 2048 })).settings.lengths, [2048]);
});

test('method spec syntax', () => {
  for (const ok of ['full', 'kivi:bits=2', 'streamingllm:ratio=0.75', 'snapkv:ratio=0.5', 'h2o:budget=512', 'h2o:budget=512,recent=64']) assert.ok(isMethodSpec(ok), ok);
  for (const bad of ['', 'Full', 'kivi:', 'kivi:bits', 'kivi:bits=2,', 'kivi:bits=2 ', 'a:b=1:c=2']) assert.ok(!isMethodSpec(bad), bad);
});

test('results folder and file names', () => {
  assert.equal(resolveResultsFolder('/w', '', join, isAbsolute), join('/w', '.kvlens'));
  assert.equal(resolveResultsFolder('/w', 'out/r', join, isAbsolute), join('/w', 'out/r'));
  assert.equal(resolveResultsFolder('/w', '/tmp/r', join, isAbsolute), '/tmp/r');
  assert.equal(resultsFileName(new Date('2026-11-25T12:01:02.345Z'), 'current file: a/b.ts'), 'results-2026-11-25T12-01-02-345Z-current-file-a-b-ts.json');
  assert.equal(resultsFileName(new Date('2026-11-25T12:01:02.345Z'), '***'), 'results-2026-11-25T12-01-02-345Z-run.json');
});

test('results files: newest first, clear errors for bad files, engine answers resolved to a path', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kvlens-results-files-'));
  try {
    const fixture = readFileSync(join(__dirname, '..', 'fixtures', 'extension', 'results-fixture.json'), 'utf8');
    writeFileSync(join(dir, 'results-a.json'), fixture);
    writeFileSync(join(dir, 'results-b.json'), fixture);
    writeFileSync(join(dir, 'notes.txt'), 'x');
    utimesSync(join(dir, 'results-a.json'), new Date(2026, 0, 2), new Date(2026, 0, 2));
    utimesSync(join(dir, 'results-b.json'), new Date(2026, 0, 1), new Date(2026, 0, 1));
    assert.deepEqual(listResultsFiles(dir), [join(dir, 'results-a.json'), join(dir, 'results-b.json')]);
    assert.deepEqual(listResultsFiles(join(dir, 'missing')), []);
    assert.equal(readProfiledResults(join(dir, 'results-a.json')).rows.length, 36);
    writeFileSync(join(dir, 'broken.json'), '{"schemaVersion": 2,');
    assert.throws(() => readProfiledResults(join(dir, 'broken.json')), /broken\.json: the results file is not valid JSON/);
    writeFileSync(join(dir, 'other.json'), '{"name": "package"}');
    assert.throws(() => readProfiledResults(join(dir, 'other.json')), /other\.json: not a kvlens results file: results schemaVersion must be 3, found nothing/);
    assert.throws(() => readProfiledResults(join(dir, 'nope.json')), /nope\.json: cannot read the results file \(ENOENT\)/);
    // A file an older kvlens wrote (schemaVersion 1: rows without prediction, metric and group) still opens.
    const old = JSON.parse(fixture);
    old.schemaVersion = 1;
    delete old.config.models;
    for (const row of old.rows) for (const key of ['model', 'prediction', 'metric', 'group']) delete row[key];
    writeFileSync(join(dir, 'old.json'), JSON.stringify(old));
    const migrated = readProfiledResults(join(dir, 'old.json'));
    assert.equal(migrated.schemaVersion, 3);
    assert.equal(migrated.rows.length, 36);
    assert.equal(migrated.rows[0].prediction, null);
    assert.match(migrated.log.at(-2) ?? '', /migrated from results schemaVersion 1/);
    const parsed = JSON.parse(fixture);
    assert.equal(resultsFromAnswer(parsed, '/w/r.json').results?.rows.length, 36);
    assert.deepEqual(resultsFromAnswer({ status: 'complete', outFile: '/w/out.json', rows: 36 }, '/w/r.json'), { results: null, path: '/w/out.json' });
    assert.deepEqual(resultsFromAnswer(null, '/w/r.json'), { results: null, path: '/w/r.json' });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('package.json declares every registered command and the same setting defaults the parser uses', () => {
  const root = join(__dirname, '..', '..');
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  const declared = (pkg.contributes.commands as Array<{ command: string }>).map((c) => c.command).sort();
  const source = readFileSync(join(root, 'src', 'extension', 'extension.ts'), 'utf8');
  const registered = [...source.matchAll(/registerCommand\(\s*'([^']+)'/g)].map((m) => m[1]).sort();
  assert.deepEqual(declared, registered);
  for (const required of ['kvlens.profileWorkspace', 'kvlens.profileCurrentFile', 'kvlens.profileSelection', 'kvlens.compareMethods', 'kvlens.selectModel', 'kvlens.showResults', 'kvlens.exportResults', 'kvlens.cancelRun', 'kvlens.clearDecorations']) {
    assert.ok(declared.includes(required), required);
  }
  const properties = pkg.contributes.configuration.properties as Record<string, { default: unknown; description?: string; markdownDescription?: string }>;
  const defaults: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(properties)) {
    assert.ok(spec.description || spec.markdownDescription, `${key} has no description`);
    defaults[key.replace(/^kvlens\./, '')] = spec.default;
  }
  assert.deepEqual(Object.keys(defaults).sort(), Object.keys(DEFAULT_SETTINGS).sort());
  const parsed = parseSettings((key) => defaults[key]);
  assert.deepEqual(parsed.warnings, []);
  assert.deepEqual(parsed.settings, DEFAULT_SETTINGS);
  // The settings editor validates with the schema pattern; it must agree with the parser.
  const pattern = new RegExp(pkg.contributes.configuration.properties['kvlens.methods'].items.pattern as string);
  for (const spec of ['full', 'kivi:bits=2', 'h2o:budget=512,recent=64']) assert.ok(pattern.test(spec) && isMethodSpec(spec), spec);
  for (const spec of ['kivi bits', 'a:b=1:c=2']) assert.ok(!pattern.test(spec) && !isMethodSpec(spec), spec);
});

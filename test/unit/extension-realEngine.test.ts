// The extension's engine client against the real engine child process (dist/engineProcess.js) on a
// tiny fixture checkpoint and the fixture workspace: the two sides of the protocol agree.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { spawnSync } from 'node:child_process';
import { EngineClient, type EngineProgress } from '../../src/extension/engineClient';
import { readProfiledResults, resultsFromAnswer } from '../../src/extension/resultsFiles';
import { resultsSchemaErrors } from '../../src/engine/bench/validate';
import { profiledSites } from '../../src/extension/codeLensText';
import type { BenchRequest } from '../../src/engine/host/protocol';

const repo = resolve(__dirname, '..', '..');
const enginePath = join(repo, 'dist', 'engineProcess.js');
const model = join(repo, 'test', 'fixtures', 'models', 'llama-gqa-tied-rope3-f32');
const workspace = join(repo, 'test', 'fixtures', 'workspace-shop');
const skip = existsSync(model) && existsSync(workspace) ? undefined : 'fixture model or workspace missing';

function ensureBuilt(): void {
  if (existsSync(enginePath)) return;
  const build = spawnSync(process.execPath, ['scripts/build.mjs'], { cwd: repo, stdio: 'inherit' });
  assert.equal(build.status, 0, 'build failed');
}

test('a real engine run reports progress and writes results the extension can show', { skip }, async () => {
  ensureBuilt();
  const dir = mkdtempSync(join(tmpdir(), 'kvlens-real-engine-'));
  const client = new EngineClient({ enginePath, log: () => {} });
  try {
    const request: BenchRequest = {
      workspace, model, methods: ['full', 'kivi:bits=2', 'streamingllm:ratio=0.5'], tasks: ['needle', 'completion'],
      lengths: [256], depths: [0.5], samples: 1, seed: 0, provider: 'cpu', outFile: join(dir, 'results.json'),
    };
    const progress: EngineProgress[] = [];
    const outcome = await client.run(request, (p) => progress.push(p)).done;
    assert.equal(outcome.status, 'completed');
    assert.ok(progress.length >= 3, `only ${progress.length} progress events`);
    for (let i = 1; i < progress.length; i++) assert.ok(progress[i].done >= progress[i - 1].done, 'progress went backwards');
    assert.equal(progress[progress.length - 1].done, progress[progress.length - 1].total);
    const answer = resultsFromAnswer(outcome.results, request.outFile);
    assert.equal(answer.path, request.outFile);
    const results = answer.results ?? readProfiledResults(answer.path!);
    assert.deepEqual(resultsSchemaErrors(JSON.parse(readFileSync(request.outFile!, 'utf8'))), []);
    // Two samples (one per task) times three methods.
    assert.equal(results.rows.length, 6);
    assert.deepEqual([...new Set(results.rows.map((r) => r.method))], request.methods);
    for (const site of profiledSites(results.rows)) {
      const lines = readFileSync(join(workspace, site.file), 'utf8').split('\n').length;
      assert.ok(site.line < lines, `${site.file}:${site.line} is past the end (${lines} lines)`);
    }
  } finally {
    client.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a bad model path comes back as a clear engine error; the registry, model info and estimate answer in the protocol\'s shapes', { skip }, async () => {
  ensureBuilt();
  const client = new EngineClient({ enginePath, log: () => {} });
  try {
    // Every answer passes the protocol table's check on the way in (a mismatch would reject).
    const methods = await client.methods();
    for (const name of ['full', 'kivi', 'streamingllm', 'snapkv', 'h2o']) assert.ok(methods.some((m) => m.name === name), name);
    const info = await client.info(model, 'cpu');
    assert.equal(info.executionProvider, 'cpu');
    assert.ok(info.layers > 0 && info.parameters > 0);
    const estimate = await client.estimate(model, [256], ['full', 'kivi:bits=2']);
    assert.deepEqual(estimate.methods.map((m) => m.method), ['full', 'kivi:bits=2']);
    await assert.rejects(client.info(join(tmpdir(), 'kvlens-no-such-model'), 'cpu'), /kvlens-no-such-model/);
  } finally {
    client.dispose();
  }
});

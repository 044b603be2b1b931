import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EngineClient, type EngineProgress } from '../../src/extension/engineClient';
import type { RunRequestBody } from '../../src/extension/engineProtocolDraft';
import { checkResultsFile } from '../../src/extension/resultsModel';

const fakeEngine = join(__dirname, '..', 'fixtures', 'extension', 'fakeEngine.js');

function setup(cancelGraceMs = 5000) {
  const dir = mkdtempSync(join(tmpdir(), 'kvlens-engine-client-'));
  const logs: string[] = [];
  const client = new EngineClient({ enginePath: fakeEngine, log: (l) => logs.push(l), cancelGraceMs });
  const request = (model: string): RunRequestBody => ({
    workspace: dir, model, methods: ['full', 'kivi:bits=2'], tasks: ['needle'], lengths: [1024], depths: [0.5], samples: 1, seed: 0, provider: 'cpu', outFile: join(dir, 'out.json'),
  });
  const cleanup = () => {
    client.dispose();
    rmSync(dir, { recursive: true, force: true });
  };
  return { dir, logs, client, request, cleanup };
}

test('a run reports progress and resolves with the results file the engine wrote', async () => {
  const { client, request, cleanup } = setup();
  try {
    const progress: EngineProgress[] = [];
    const handle = client.run(request('ok'), (p) => progress.push(p));
    const outcome = await handle.done;
    assert.equal(outcome.status, 'completed');
    assert.equal(checkResultsFile(JSON.parse(readFileSync(outcome.resultsFile!, 'utf8'))), null);
    assert.deepEqual(progress.map((p) => [p.done, p.total]), [[1, 3], [2, 3], [3, 3]]);
    assert.equal(progress[2].etaSeconds, 0);
    assert.equal(client.running, false);
  } finally {
    cleanup();
  }
});

test('an engine error rejects the run with the engine message', async () => {
  const { client, request, cleanup } = setup();
  try {
    await assert.rejects(client.run(request('fail'), () => {}).done, /engine: model directory \/nope has no config\.json/);
  } finally {
    cleanup();
  }
});

test('a crash rejects with the exit code and stderr, and the next request starts a new engine', async () => {
  const { client, request, cleanup, logs } = setup();
  try {
    const firstPid = (await client.info('default')).pid;
    await assert.rejects(client.run(request('crash'), () => {}).done, (error: Error) => {
      assert.match(error.message, /fakeEngine\.js: the engine process exited with code 3 before it answered; last engine output: fatal: onnxruntime could not allocate 2 GiB/);
      return true;
    });
    assert.match(client.lastCrash ?? '', /exited with code 3/);
    const info = await client.info('default');
    assert.equal(info.model, 'default');
    assert.notEqual(info.pid, firstPid);
    assert.ok(logs.some((l) => l.startsWith('restarting the engine after: the engine process exited with code 3')), logs.join('\n'));
    assert.equal((await client.run(request('ok'), () => {}).done).status, 'completed');
  } finally {
    cleanup();
  }
});

test('cancel stops a run that honours it, and the engine stays up', async () => {
  const { client, request, cleanup } = setup();
  try {
    let seen = 0;
    const handle = client.run(request('slow'), () => {
      seen++;
      if (seen === 2) client.cancel(handle.id);
    });
    const pidBefore = client.pid;
    assert.deepEqual(await handle.done, { status: 'cancelled', resultsFile: null });
    assert.equal(client.pid, pidBefore);
    assert.equal((await client.info('default')).pid, pidBefore);
  } finally {
    cleanup();
  }
});

test('a run that ignores cancel is killed after the grace period', async () => {
  const { client, request, cleanup, logs } = setup(300);
  try {
    let cancelledAt = 0;
    const handle = client.run(request('stubborn'), () => {
      if (!cancelledAt) {
        cancelledAt = Date.now();
        client.cancel(handle.id);
      }
    });
    const pidBefore = client.pid;
    assert.deepEqual(await handle.done, { status: 'cancelled', resultsFile: null });
    const waited = Date.now() - cancelledAt;
    assert.ok(waited >= 290 && waited < 3000, `waited ${waited} ms`);
    assert.ok(logs.some((l) => /did not stop within 300 ms/.test(l)));
    // A deliberate kill is not a crash, and the next request gets a fresh process.
    const info = await client.info('default');
    assert.notEqual(info.pid, pidBefore);
    assert.equal(client.lastCrash, null);
  } finally {
    cleanup();
  }
});

test('malformed engine messages are dropped and logged, and the run still completes', async () => {
  const { client, request, cleanup, logs } = setup();
  try {
    const progress: EngineProgress[] = [];
    const outcome = await client.run(request('garbage'), (p) => progress.push(p)).done;
    assert.equal(outcome.status, 'completed');
    assert.equal(progress.length, 3);
    assert.ok(logs.includes('dropped a malformed engine message: progress.done must be an integer >= 0, found "one"'), logs.join('\n'));
    assert.ok(logs.includes('dropped a malformed engine message: engine message must be an object, found "not even an object"'));
    assert.ok(logs.includes('dropped an engine result message for unknown request someone-else'));
  } finally {
    cleanup();
  }
});

test('bad requests and a missing engine fail with clear errors', async () => {
  const { client, request, cleanup } = setup();
  try {
    await assert.rejects(client.run({ ...request('ok'), methods: [] }, () => {}).done, /run request: run\.methods must name at least one method/);
    const missing = new EngineClient({ enginePath: '/nonexistent/engineProcess.js', log: () => {} });
    await assert.rejects(missing.info('default'), /\/nonexistent\/engineProcess\.js: engine entry not found/);
  } finally {
    cleanup();
  }
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EngineClient, type EngineCrash, type EngineProgress } from '../../src/extension/engineClient';
import { checkAnswer, checkBenchRequest as checkRequest, type BenchRequest } from '../../src/engine/host/protocol';
import { checkResultsFile } from '../../src/extension/resultsModel';

const checkBenchRequest = (request: BenchRequest) => checkRequest(request, '');

const fakeEngine = join(__dirname, '..', 'fixtures', 'extension', 'fakeEngine.js');
const pidOf = (info: unknown) => (info as { pid: number }).pid;

function setup(cancelGraceMs = 5000, killGraceMs = 3000) {
  const dir = mkdtempSync(join(tmpdir(), 'kvlens-engine-client-'));
  const logs: string[] = [];
  const crashes: EngineCrash[] = [];
  const client = new EngineClient({ enginePath: fakeEngine, log: (l) => logs.push(l), cancelGraceMs, killGraceMs, onCrash: (crash) => crashes.push(crash) });
  const request = (model: string): BenchRequest => ({
    workspace: dir, model, methods: ['full', 'kivi:bits=2'], tasks: ['needle'], lengths: [1024], depths: [0.5], samples: 1, seed: 0, provider: 'cpu', outFile: join(dir, 'out.json'),
  });
  const cleanup = () => {
    client.dispose();
    rmSync(dir, { recursive: true, force: true });
  };
  return { dir, logs, crashes, client, request, cleanup };
}

/** Whether a process with this pid still exists (a zombie counts as gone: it has exited). */
function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true;
  }
}

async function waitForLog(logs: string[], line: string, timeoutMs = 5000): Promise<void> {
  const started = Date.now();
  while (!logs.includes(line)) {
    if (Date.now() - started > timeoutMs) throw new Error(`no log line "${line}" in:\n${logs.join('\n')}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function waitUntilGone(pid: number, timeoutMs: number): Promise<number> {
  const started = Date.now();
  while (processExists(pid)) {
    if (Date.now() - started > timeoutMs) throw new Error(`process ${pid} still runs after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return Date.now() - started;
}

test('a run reports progress and resolves with the results the engine answered', async () => {
  const { client, request, cleanup, logs } = setup();
  try {
    const progress: EngineProgress[] = [];
    const handle = client.run(request('ok'), (p) => progress.push(p));
    const outcome = await handle.done;
    assert.equal(outcome.status, 'completed');
    assert.deepEqual(outcome.results, { status: 'complete', outFile: request('ok').outFile, rows: 36 });
    assert.equal(checkResultsFile(JSON.parse(readFileSync(request('ok').outFile!, 'utf8'))), null);
    assert.deepEqual(progress.map((p) => [p.done, p.total]), [[1, 3], [2, 3], [3, 3]]);
    assert.equal(progress[2].etaSeconds, 0);
    assert.equal(client.running, false);
    assert.ok(logs.includes('[engine] scanned 42 files'), logs.join('\n'));
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
    const firstPid = pidOf(await client.info('default', 'cpu'));
    await assert.rejects(client.run(request('crash'), () => {}).done, (error: Error) => {
      assert.match(error.message, /fakeEngine\.js: the engine process exited with code 3 before it answered; last engine output: fatal: onnxruntime could not allocate 2 GiB/);
      return true;
    });
    assert.match(client.lastCrash ?? '', /exited with code 3/);
    const info = (await client.info('default', 'cpu')) as unknown as { model: string; pid: number };
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
    const outcome = await handle.done;
    assert.equal(outcome.status, 'cancelled');
    assert.equal(outcome.results?.status, 'cancelled');
    assert.equal(outcome.results?.rows, 4);
    assert.equal(JSON.parse(readFileSync(request('slow').outFile!, 'utf8')).rows.length, 4);
    assert.equal(client.pid, pidBefore);
    assert.equal(pidOf(await client.info('default', 'cpu')), pidBefore);
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
    assert.deepEqual(await handle.done, { status: 'cancelled', results: null });
    const waited = Date.now() - cancelledAt;
    assert.ok(waited >= 290 && waited < 3000, `waited ${waited} ms`);
    assert.ok(logs.some((l) => /did not stop within 300 ms/.test(l)));
    // Stopped with SIGTERM first (the engine then saves what it finished); this one did not need the SIGKILL.
    assert.ok(logs.some((l) => l === `stopping engine process ${pidBefore} (SIGTERM; SIGKILL after 3000 ms)`), logs.join('\n'));
    await waitForLog(logs, `engine process ${pidBefore} was killed by SIGTERM`);
    // A deliberate kill is not a crash, and the next request gets a fresh process.
    const info = (await client.info('default', 'cpu')) as unknown as { model: string; pid: number };
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
    assert.ok(logs.some((l) => l.startsWith('dropped a malformed engine message: {"type":"progress"')), logs.join('\n'));
    assert.ok(logs.includes('dropped a malformed engine message: "not even an object"'));
    assert.ok(logs.includes('dropped an engine result message for unknown request 999'));
  } finally {
    cleanup();
  }
});

test('bad requests and a missing engine fail with clear errors', async () => {
  const { client, request, cleanup } = setup();
  try {
    await assert.rejects(client.run({ ...request('ok'), methods: [] }, () => {}).done, /run request: methods must name at least one method/);
    const missing = new EngineClient({ enginePath: '/nonexistent/engineProcess.js', log: () => {} });
    await assert.rejects(missing.info('default', 'auto'), /\/nonexistent\/engineProcess\.js: engine entry not found/);
  } finally {
    cleanup();
  }
});

test('bench requests are checked before they are sent', () => {
  const good: BenchRequest = {
    workspace: '/w', model: 'default', methods: ['full'], tasks: ['needle'], lengths: [1024], depths: [0, 0.5], samples: 1, seed: 0, provider: 'cpu', outFile: '/w/.kvlens/r.json',
  };
  assert.equal(checkBenchRequest(good), null);
  assert.equal(checkBenchRequest({ ...good, outFile: null }), null);
  assert.equal(checkBenchRequest({ ...good, depths: [1.5] }), 'depths[0] must be within [0, 1], found 1.5');
  assert.equal(checkBenchRequest({ ...good, samples: 0 }), 'samples must be an integer >= 1, found 0');
  assert.equal(checkBenchRequest({ ...good, lengths: [] }), 'lengths must list at least one length');
  assert.equal(checkBenchRequest({ ...good, files: [''] }), 'files[0] must be a non-empty string, found ""');
});

test('answers are checked against the protocol table: a misshapen one rejects naming the field, and typed ones arrive whole', async () => {
  const { client, request, cleanup, logs } = setup();
  try {
    await assert.rejects(client.run(request('misshapen'), () => {}).done, /engine: answered outside the protocol: bench answer\.status must be one of running, complete, cancelled, failed, found "done"/);
    await assert.rejects(client.info('misshapen', 'cpu'), /info answer\.dir must be a string, found nothing/);
    assert.ok(logs.some((l) => /does not fit the protocol: info answer\.dir/.test(l)), logs.join('\n'));
    const methods = await client.methods();
    assert.deepEqual(methods.map((m) => m.name), ['full', 'kivi', 'snapkv', 'tova']);
    assert.deepEqual(methods[1].params[0].choices, [2, 4]);
    const estimate = await client.estimate('default', [1024], ['full']);
    assert.equal(estimate.fits, true);
    assert.equal((await client.info('default', 'cpu')).architecture, 'llama');
  } finally {
    cleanup();
  }
});

test('the answer checks name what is wrong', () => {
  assert.equal(checkAnswer('bench', { status: 'complete', outFile: null, rows: 3 }), null);
  assert.equal(checkAnswer('bench', { status: 'complete', outFile: null, rows: -1 }), 'bench answer.rows must be an integer >= 0, found -1');
  assert.equal(checkAnswer('methods', [{ name: 'x', family: 'magic', phases: [], summary: '', params: [], paper: null }]), 'methods answer[0].family must be one of baseline, quantization, token-dropping, prompt-compression, found "magic"');
  assert.equal(checkAnswer('estimate', null), 'estimate answer must be an object, found null');
});

test('an engine that ignores SIGTERM too gets SIGKILL after the kill grace', async () => {
  const { client, request, cleanup, logs, crashes } = setup(100, 300);
  try {
    let cancelled = false;
    const handle = client.run(request('deaf'), () => {
      if (!cancelled) {
        cancelled = true;
        client.cancel(handle.id);
      }
    });
    const pid = client.pid!;
    assert.deepEqual(await handle.done, { status: 'cancelled', results: null });
    const waited = await waitUntilGone(pid, 5000);
    assert.ok(waited >= 200, `gone after ${waited} ms: SIGKILL came before the grace was over`);
    assert.ok(logs.some((l) => l === `engine process ${pid} did not exit within 300 ms of SIGTERM; sending SIGKILL`), logs.join('\n'));
    await waitForLog(logs, `engine process ${pid} was killed by SIGKILL`);
    assert.deepEqual(crashes, [], 'a process the client stopped did not crash');
  } finally {
    cleanup();
  }
});

test('disposing the client (the window closing) ends the engine process, during a run too', async () => {
  for (const model of ['slow', 'deaf']) {
    const { client, request, cleanup, logs } = setup(5000, 300);
    try {
      // Disposed once the run is going (the engine has its handlers by then).
      let started: () => void = () => undefined;
      const going = new Promise<void>((resolve) => (started = resolve));
      const handle = client.run(request(model), () => started());
      await going;
      const pid = client.pid!;
      assert.ok(processExists(pid));
      const stopped = client.dispose();
      await assert.rejects(handle.done, /the engine was shut down because the extension is stopping/);
      // dispose resolves once the process has exited: a deactivating extension waits on it.
      await stopped;
      assert.equal(processExists(pid), false, `${model}: process ${pid} still runs after dispose resolved`);
      await client.dispose();
      await waitForLog(logs, `engine process ${pid} was killed by ${model === 'deaf' ? 'SIGKILL' : 'SIGTERM'}`);
    } finally {
      cleanup();
    }
  }
});

test('a crash is reported with its stderr tail: while idle on its own, during a run through the run too', async () => {
  const { client, request, cleanup, crashes } = setup();
  try {
    assert.equal((await client.run(request('crash-idle'), () => {}).done).status, 'completed');
    const pid = client.pid!;
    await waitUntilGone(pid, 5000);
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.deepEqual(crashes, [{ pid, reason: 'the engine process was killed by SIGSEGV', stderrTail: ['warming the cache', 'Segmentation fault in MatMulNBits'], interrupted: 0 }]);
    await assert.rejects(client.run(request('crash'), () => {}).done, /exited with code 3 before it answered; last engine output: fatal: onnxruntime could not allocate 2 GiB/);
    assert.equal(crashes.length, 2);
    assert.equal(crashes[1].interrupted, 1);
    assert.deepEqual(crashes[1].stderrTail, ['fatal: onnxruntime could not allocate 2 GiB']);
  } finally {
    cleanup();
  }
});

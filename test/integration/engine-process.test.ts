import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fork, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseEngineMessage, type EngineMessage, type ClientMessage, type BenchRequest } from '../../src/engine/host/protocol';

const ROOT = join(__dirname, '..', '..');
const BUNDLE = join(ROOT, 'dist', 'engineProcess.js');
const FIXTURE = join(ROOT, 'test', 'fixtures', 'models', 'llama-gqa-tied-rope3-f32');
const CODEBASE = join(ROOT, 'test', 'fixtures', 'codebase');

function start(): { child: ChildProcess; messages: EngineMessage[]; next: (pred: (m: EngineMessage) => boolean) => Promise<EngineMessage> } {
  const child = fork(BUNDLE, [], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
  const messages: EngineMessage[] = [];
  const waiters: { pred: (m: EngineMessage) => boolean; resolve: (m: EngineMessage) => void }[] = [];
  child.on('message', (raw) => {
    const message = parseEngineMessage(raw);
    assert.ok(message, `the engine sent a message outside the protocol: ${JSON.stringify(raw)}`);
    messages.push(message);
    for (const w of waiters.splice(0)) {
      if (w.pred(message)) w.resolve(message);
      else waiters.push(w);
    }
  });
  const next = (pred: (m: EngineMessage) => boolean) =>
    new Promise<EngineMessage>((resolve, reject) => {
      const seen = messages.find(pred);
      if (seen) return resolve(seen);
      waiters.push({ pred, resolve });
      child.once('exit', (code) => reject(new Error(`engine exited with ${code}`)));
    });
  return { child, messages, next };
}

const idOf = (m: EngineMessage): number | null => ('id' in m ? m.id : null);
const send = (child: ChildProcess, message: ClientMessage) => child.send(message);

function benchRequest(outFile: string, extra: Partial<BenchRequest> = {}): BenchRequest {
  return {
    workspace: CODEBASE,
    model: FIXTURE,
    methods: ['full', 'kivi:bits=2', 'snapkv:ratio=0.5'],
    tasks: ['needle'],
    lengths: [160],
    depths: [0, 0.5, 1],
    samples: 2,
    seed: 1,
    provider: 'cpu',
    outFile,
    maxNewTokens: 3,
    ...extra,
  };
}

test('the engine process runs a sweep over IPC with progress events and a result', { skip: !existsSync(BUNDLE) && 'dist/engineProcess.js is built by `npm test`' }, async () => {
  const { child, messages, next } = start();
  try {
    await next((m) => m.type === 'ready');
    const out = join(mkdtempSync(join(tmpdir(), 'kvlens-ipc-')), 'r.json');
    send(child, { type: 'bench', id: 1, request: benchRequest(out) });
    const result = await next((m) => (m.type === 'result' || m.type === 'error') && m.id === 1);
    assert.equal(result.type, 'result', JSON.stringify(result));
    assert.ok(messages.some((m) => m.type === 'progress' && m.id === 1), 'progress events arrived');
    const file = JSON.parse(readFileSync(out, 'utf8'));
    assert.equal(file.rows.length, 6 * 3);
    // A malformed message is dropped, not fatal: the next request still answers.
    child.send({ type: 'bench', id: 2, request: { workspace: 42 } });
    send(child, { type: 'methods', id: 3 });
    const methods = await next((m) => m.type === 'result' && m.id === 3);
    assert.ok(Array.isArray((methods as { result: unknown }).result));
    assert.equal(messages.some((m) => idOf(m) === 2), false);
  } finally {
    child.kill();
  }
});

test('cancel over IPC stops the sweep and keeps the finished rows', { skip: !existsSync(BUNDLE) && 'dist/engineProcess.js is built by `npm test`' }, async () => {
  const { child, next } = start();
  try {
    await next((m) => m.type === 'ready');
    const out = join(mkdtempSync(join(tmpdir(), 'kvlens-ipc-')), 'r.json');
    send(child, { type: 'bench', id: 7, request: benchRequest(out, { samples: 6 }) });
    await next((m) => m.type === 'progress' && m.id === 7 && m.progress.done >= 3);
    send(child, { type: 'cancel', id: 7 });
    const result = await next((m) => (m.type === 'result' || m.type === 'error') && m.id === 7);
    assert.equal(result.type, 'result');
    assert.equal((result as { result: { status: string } }).result.status, 'cancelled');
    const file = JSON.parse(readFileSync(out, 'utf8'));
    assert.equal(file.status, 'cancelled');
    assert.ok(file.rows.length >= 3 && file.rows.length < 18 * 3, `kept ${file.rows.length} rows`);
  } finally {
    child.kill();
  }
});

test('an unknown model comes back as an error message naming it, and the process stays up', { skip: !existsSync(BUNDLE) && 'dist/engineProcess.js is built by `npm test`' }, async () => {
  const { child, next } = start();
  try {
    await next((m) => m.type === 'ready');
    send(child, { type: 'info', id: 4, model: '/no/such/model', provider: 'cpu' });
    const error = await next((m) => idOf(m) === 4);
    assert.equal(error.type, 'error');
    assert.match((error as { message: string }).message, /\/no\/such\/model/);
    send(child, { type: 'info', id: 5, model: FIXTURE, provider: 'cpu' });
    const info = await next((m) => idOf(m) === 5);
    assert.equal(info.type, 'result');
  } finally {
    child.kill();
  }
});

test('SIGTERM (the client stopping the engine) cancels the running sweep, keeps its rows and exits 143', { skip: !existsSync(BUNDLE) && 'dist/engineProcess.js is built by `npm test`' }, async () => {
  const { child, next } = start();
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  try {
    await next((m) => m.type === 'ready');
    const dir = mkdtempSync(join(tmpdir(), 'kvlens-ipc-'));
    const out = join(dir, 'r.json');
    send(child, { type: 'bench', id: 8, request: benchRequest(out, { samples: 6 }) });
    await next((m) => m.type === 'progress' && m.id === 8 && m.progress.done >= 3);
    child.kill('SIGTERM');
    assert.equal(await exited, 143);
    const file = JSON.parse(readFileSync(out, 'utf8'));
    assert.equal(file.status, 'cancelled');
    assert.ok(file.rows.length >= 3 && file.rows.length < 18 * 3, `kept ${file.rows.length} rows`);
    assert.equal(existsSync(`${out}.lock`), false, 'the lock went with the process');
  } finally {
    child.kill('SIGKILL');
  }
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync, mkdirSync, utimesSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { FOREIGN_LOCK_STALE_MS, checkOverwrite, claimOutputFile, lockPathOf } from '../../src/engine/bench/outputLock';
import { KvlensError } from '../../src/engine/errors';

const ROOT = join(__dirname, '..', '..');

function fresh(): string {
  return join(mkdtempSync(join(tmpdir(), 'kvlens-lock-')), 'results.json');
}

/** The pid of a process that has exited (and so cannot hold a lock). */
function deadPid(): number {
  const run = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(run.stdout);
}

function writeLock(path: string, owner: { pid: number; host?: string }): void {
  writeFileSync(lockPathOf(path), JSON.stringify({ pid: owner.pid, host: owner.host ?? hostname(), startedAt: '2026-01-01T00:00:00.000Z', token: 'x' }));
}

function refuses(fn: () => unknown, file: string, pattern: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof KvlensError, String(error));
    assert.ok(error.message.startsWith(`${file}: `), error.message);
    assert.match(error.message, pattern);
    return true;
  });
}

test('a claim holds a lock naming this pid; a second claim is refused; release removes the lock', () => {
  const path = fresh();
  const claim = claimOutputFile(path, { lock: true });
  const owner = JSON.parse(readFileSync(lockPathOf(path), 'utf8'));
  assert.equal(owner.pid, process.pid);
  assert.equal(owner.host, hostname());
  refuses(() => claimOutputFile(path, { lock: true, force: true }), path, /this process is already writing it; two runs on one results file would interleave/);
  claim.release();
  claim.release();
  assert.equal(existsSync(lockPathOf(path)), false);
  claimOutputFile(path, { lock: true }).release();
  assert.deepEqual(readdirSync(join(path, '..')), [], 'no lock or temporary file left behind');
});

test('an existing file is refused unless forced, saying whether it is a results file', () => {
  const path = fresh();
  writeFileSync(path, JSON.stringify({ schemaVersion: 3, createdAt: 'x', status: 'complete', rows: [] }));
  refuses(() => claimOutputFile(path, { lock: true }), path, /^.*: --out would replace a kvlens results file \(status complete\): pass --force to replace it/);
  assert.equal(existsSync(lockPathOf(path)), false, 'a refused claim leaves no lock');
  const other = join(path, '..', 'notes.txt');
  writeFileSync(other, 'my notes');
  refuses(() => checkOverwrite(other, { flag: '--csv' }), other, /--csv would replace a file that is not a kvlens results file/);
  claimOutputFile(path, { lock: true, force: true }).release();
  const folder = join(path, '..', 'folder.json');
  mkdirSync(folder);
  refuses(() => checkOverwrite(folder, { force: true }), folder, /--out names a folder/);
});

test('a lock left by a dead process is taken over with a message', () => {
  const path = fresh();
  const pid = deadPid();
  writeLock(path, { pid });
  const said: string[] = [];
  const claim = claimOutputFile(path, { lock: true, say: (line) => said.push(line) });
  assert.equal(JSON.parse(readFileSync(lockPathOf(path), 'utf8')).pid, process.pid);
  assert.equal(said.length, 1);
  assert.match(said[0], new RegExp(`taking over the lock .*: its owner, pid ${pid} \\(started 2026-01-01T00:00:00.000Z\\), is no longer running`));
  claim.release();
});

test('a lock held by a live process, or by a process on another host, is refused naming it', async () => {
  const path = fresh();
  const sleeper = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
  try {
    writeLock(path, { pid: sleeper.pid! });
    refuses(() => claimOutputFile(path, { lock: true, force: true }), path, new RegExp(`another process \\(pid ${sleeper.pid}, started 2026-01-01T00:00:00.000Z\\) is writing it`));
  } finally {
    sleeper.kill('SIGKILL');
  }
  writeLock(path, { pid: 1, host: 'node-7.cluster' });
  refuses(() => claimOutputFile(path, { lock: true }), path, /locked by pid 1 on host node-7\.cluster \(started [^,]+, last heartbeat \d+ s ago\): another run is writing it; .* delete .*results\.json\.lock/);
  // Without a heartbeat for longer than the limit, a lock from another host (a pod killed outright) is taken over.
  const old = new Date(Date.now() - FOREIGN_LOCK_STALE_MS - 60_000);
  utimesSync(lockPathOf(path), old, old);
  const said: string[] = [];
  claimOutputFile(path, { lock: true, say: (line) => said.push(line) }).release();
  assert.match(said.join('\n'), /taking over the lock .*: pid 1 on host node-7\.cluster \(started [^)]+\) has not refreshed it for \d+ s/);
  writeFileSync(lockPathOf(path), 'garbage');
  refuses(() => claimOutputFile(path, { lock: true }), path, /is not a kvlens lock/);
});

test('an unwritable folder is refused when claimed, not after the first sample', { skip: process.getuid?.() === 0 ? 'root writes anywhere' : false }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'kvlens-ro-'));
  spawnSync('chmod', ['555', dir]);
  const path = join(dir, 'results.json');
  try {
    refuses(() => claimOutputFile(path, { lock: true }), path, /cannot create the lock file .*EACCES/);
  } finally {
    spawnSync('chmod', ['755', dir]);
  }
});

test('of several processes claiming one file at once (over a stale lock too), exactly one gets it', async () => {
  for (const stale of [false, true]) {
    const path = fresh();
    if (stale) writeLock(path, { pid: deadPid() });
    // Each child holds what it got until every child has answered, so a late starter cannot find the lock released.
    const script = `
      const { claimOutputFile } = require(${JSON.stringify(join(ROOT, 'src', 'engine', 'bench', 'outputLock.ts'))});
      let claim = null;
      try {
        claim = claimOutputFile(${JSON.stringify(path)}, { lock: true });
        process.stdout.write('claimed\\n');
      } catch (error) {
        process.stdout.write('refused: ' + error.message + '\\n');
      }
      process.stdin.resume();
      process.stdin.on('end', () => { claim?.release(); process.exit(0); });`;
    const children = Array.from({ length: 4 }, () => spawn(process.execPath, ['--import', 'tsx', '-e', script], { cwd: ROOT }));
    const answers = children.map(
      (child) =>
        new Promise<string>((resolve) => {
          let out = '';
          child.stdout.on('data', (chunk) => {
            out += chunk;
            if (out.endsWith('\n')) resolve(out.trim());
          });
          child.on('close', () => resolve(out.trim()));
        }),
    );
    const runs = await Promise.all(answers);
    await Promise.all(children.map((child) => new Promise((resolve) => child.on('close', resolve).stdin.end())));
    assert.equal(runs.filter((r) => r === 'claimed').length, 1, runs.join('\n'));
    for (const refused of runs.filter((r) => r !== 'claimed')) assert.match(refused, /is writing it|taking over the stale lock/);
    assert.equal(existsSync(lockPathOf(path)), false, 'the winner released its lock');
  }
});

// Claiming an output file before a run writes it: an existing file is never replaced unless the caller says so
// (--force), and a results file has one writer at a time, by a lock file next to it naming its owner's pid.
import { closeSync, existsSync, linkSync, mkdirSync, openSync, readFileSync, readSync, rmSync, statSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { KvlensError, describeError } from '../errors';

export interface OutputClaim {
  readonly path: string;
  /** Removes the lock (if this claim holds one and it is still ours). Safe to call twice. */
  release(): void;
}

export interface ClaimOptions {
  /** Replace an existing file instead of refusing it. */
  force?: boolean;
  /** The flag that named the path, for messages (e.g. "--out"). */
  flag?: string;
  /** Take the writer lock too (results files written during a run); exports written once need none. */
  lock?: boolean;
  /** Where a taken-over stale lock is reported. */
  say?: (line: string) => void;
}

/** What a lock file holds: enough to tell whether its owner still runs, and to say who it is. */
interface LockOwner {
  pid: number;
  host: string;
  startedAt: string;
  /** Distinguishes this claim's lock from a later one by the same pid (a reused pid, a second claim). */
  token: string;
}

export function lockPathOf(path: string): string {
  return `${path}.lock`;
}

/** "a kvlens results file (status complete, 36 rows)" or "a file that is not a kvlens results file". */
function describeExisting(path: string): string {
  let head = '';
  try {
    const fd = openSync(path, 'r');
    try {
      const buffer = Buffer.alloc(4096);
      head = buffer.subarray(0, readSync(fd, buffer, 0, buffer.length, 0)).toString('utf8');
    } finally {
      closeSync(fd);
    }
  } catch {
    return 'a file that cannot be read';
  }
  if (!/"schemaVersion"\s*:/.test(head)) return 'a file that is not a kvlens results file';
  const status = /"status"\s*:\s*"(\w+)"/.exec(head)?.[1];
  return `a kvlens results file${status ? ` (status ${status})` : ''}`;
}

/** Refuses an output path that exists (unless `force`) or is a folder, before any work is done. */
export function checkOverwrite(path: string, options: Pick<ClaimOptions, 'force' | 'flag'> = {}): void {
  if (!existsSync(path)) return;
  const flag = options.flag ?? '--out';
  if (statSync(path).isDirectory()) throw new KvlensError(`${flag} names a folder, not a file`, path);
  if (!options.force) {
    throw new KvlensError(`${flag} would replace ${describeExisting(path)}: pass --force to replace it, or name another file`, path);
  }
}

/**
 * Claims `path` for writing: refuses an existing file unless `force`, and with `lock` takes `path.lock`, refusing
 * while a live process holds it and taking over (with a message) a lock whose owner is gone.
 */
export function claimOutputFile(path: string, options: ClaimOptions = {}): OutputClaim {
  const flag = options.flag ?? '--out';
  try {
    mkdirSync(dirname(path), { recursive: true });
  } catch (error) {
    throw new KvlensError(`cannot create the folder for ${flag} (${errnoOf(error)})`, path);
  }
  if (!options.lock) {
    checkOverwrite(path, options);
    return { path, release: () => {} };
  }
  const claim = lockFile(path, { say: options.say });
  try {
    checkOverwrite(path, options);
  } catch (error) {
    claim.release();
    throw error;
  }
  return claim;
}

/**
 * Takes `path.lock` for one writer of `path`: refused while a live process holds it (`clash` says why two
 * writers would be wrong), taken over with a message when its owner is gone. Removed by release or at exit.
 */
export function lockFile(path: string, options: { say?: (line: string) => void; clash?: string } = {}): OutputClaim {
  const owner: LockOwner = { pid: process.pid, host: hostname(), startedAt: new Date().toISOString(), token: randomBytes(8).toString('hex') };
  const lockPath = lockPathOf(path);
  acquireLock(path, lockPath, owner, options.say ?? (() => {}), options.clash ?? 'two runs on one results file would interleave their rows');
  let held = true;
  // The lock's modification time is its owner's heartbeat: the only liveness a process on another host can see.
  const heartbeat = setInterval(() => {
    try {
      const now = new Date();
      utimesSync(lockPath, now, now);
    } catch {
      // Removed by hand: the claim goes on; release finds nothing to remove.
    }
  }, HEARTBEAT_MS);
  heartbeat.unref();
  const release = () => {
    if (!held) return;
    held = false;
    clearInterval(heartbeat);
    process.off('exit', release);
    // Only our own lock: a lock taken over after ours was wrongly judged stale belongs to someone else now.
    if (readOwner(lockPath)?.token === owner.token) rmSync(lockPath, { force: true });
  };
  // A process that exits without unwinding (a second Ctrl-C) still removes its lock.
  process.on('exit', release);
  return { path, release };
}

function errnoOf(error: unknown): string {
  return (error as NodeJS.ErrnoException).code ?? describeError(error);
}

function readOwner(lockPath: string): LockOwner | null {
  try {
    const parsed = JSON.parse(readFileSync(lockPath, 'utf8')) as Partial<LockOwner>;
    if (typeof parsed.pid !== 'number' || typeof parsed.host !== 'string') return null;
    return { pid: parsed.pid, host: parsed.host, startedAt: String(parsed.startedAt), token: String(parsed.token) };
  } catch {
    return null;
  }
}

/** Whether `pid` runs on this machine (EPERM: it runs as another user). */
function isRunning(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Creates `target` holding `contents` only if it does not exist, and never as an empty or half-written file:
 * the contents go to a private temporary file first, which is then hard-linked under the target name (link
 * fails if the name exists). Filesystems without hard links fall back to an exclusive create.
 */
function createExclusive(target: string, contents: string): boolean {
  const temp = join(dirname(target), `.${basename(target)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  writeFileSync(temp, contents, { flag: 'wx' });
  try {
    linkSync(temp, target);
    return true;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return false;
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'ENOSYS') throw error;
    try {
      writeFileSync(target, contents, { flag: 'wx' });
      return true;
    } catch (fallback) {
      if ((fallback as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw fallback;
    }
  } finally {
    rmSync(temp, { force: true });
  }
}

/** A takeover file older than this was left by a process that died inside the few lines that hold it. */
const TAKEOVER_STALE_MS = 30_000;
/** How often a held lock is touched. */
const HEARTBEAT_MS = 30_000;
/**
 * A lock from another host (a shared volume) whose pid this machine cannot check counts as stale after this long
 * without a heartbeat: a pod killed outright is then taken over by its retry instead of blocking it for ever.
 */
export const FOREIGN_LOCK_STALE_MS = 10 * 60_000;

function acquireLock(path: string, lockPath: string, owner: LockOwner, say: (line: string) => void, clash: string): void {
  const contents = JSON.stringify(owner) + '\n';
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      if (createExclusive(lockPath, contents)) return;
    } catch (error) {
      throw new KvlensError(`cannot create the lock file ${lockPath} (${errnoOf(error)}): is the folder writable?`, path);
    }
    let raw: string;
    try {
      raw = readFileSync(lockPath, 'utf8');
    } catch {
      continue; // removed between our attempt and the read: try again
    }
    const holder = readOwner(lockPath);
    if (!holder) throw new KvlensError(`the lock file ${lockPath} is not a kvlens lock (${JSON.stringify(raw.slice(0, 60))}): remove it if no run is writing this file`, path);
    const since = `started ${holder.startedAt}`;
    let why: string;
    if (holder.host !== owner.host) {
      let silentMs = 0;
      try {
        silentMs = Date.now() - statSync(lockPath).mtimeMs;
      } catch {
        continue;
      }
      const silent = `${Math.round(silentMs / 1000)} s`;
      if (silentMs < FOREIGN_LOCK_STALE_MS) {
        throw new KvlensError(
          `locked by pid ${holder.pid} on host ${holder.host} (${since}, last heartbeat ${silent} ago): another run is writing it; ` +
            `the lock counts as abandoned after ${FOREIGN_LOCK_STALE_MS / 60_000} minutes without a heartbeat, or delete ${lockPath} if that run has stopped`,
          path,
        );
      }
      why = `pid ${holder.pid} on host ${holder.host} (${since}) has not refreshed it for ${silent}`;
    } else if (isRunning(holder.pid)) {
      const who = holder.pid === process.pid ? 'this process is already writing it' : `another process (pid ${holder.pid}, ${since}) is writing it`;
      throw new KvlensError(`${who}; ${clash} (lock ${lockPath}): wait for it, stop it, or name another file`, path);
    } else why = `its owner, pid ${holder.pid} (${since}), is no longer running`;
    takeOver(path, lockPath, raw);
    say(`taking over the lock ${lockPath}: ${why}`);
  }
  throw new KvlensError(`could not take the lock ${lockPath}: other processes keep claiming it`, path);
}

/** Removes a stale lock, with a second lock around the removal so two processes cannot both take it over. */
function takeOver(path: string, lockPath: string, staleContents: string): void {
  const takeoverPath = `${lockPath}.takeover`;
  if (!createExclusive(takeoverPath, `${process.pid}\n`)) {
    let age = 0;
    try {
      age = Date.now() - statSync(takeoverPath).mtimeMs;
    } catch {
      return; // finished meanwhile: the caller tries again
    }
    if (age < TAKEOVER_STALE_MS) throw new KvlensError(`another process is taking over the stale lock ${lockPath}; try again`, path);
    rmSync(takeoverPath, { force: true });
    return;
  }
  try {
    // Still the lock judged stale (not one a faster process has just created in its place).
    let current: string | null = null;
    try {
      current = readFileSync(lockPath, 'utf8');
    } catch {
      current = null;
    }
    if (current === staleContents) unlinkSync(lockPath);
  } finally {
    rmSync(takeoverPath, { force: true });
  }
}

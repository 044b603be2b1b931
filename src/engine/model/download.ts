// Downloads a model by Hugging Face repo id into the standard Hugging Face cache layout, so files
// fetched here are shared with huggingface_hub / transformers and the reverse.
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readFileSync, statSync } from 'node:fs';
import { copyFile, mkdir, open, rename, rm, stat, symlink, unlink, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join, relative, sep } from 'node:path';
import { KvlensError, describeError } from '../errors';
import { lockFile } from '../bench/outputLock';

export const DEFAULT_ENDPOINT = 'https://huggingface.co';

/** What a model folder needs; other weight formats are skipped unless asked for. */
const MODEL_FILES = ['config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json'];
const REPO_ID = /^[\w.-]+\/[\w.-]+$/;
const REVISION = /^[\w.-]+(\/[\w.-]+)*$/;

export interface DownloadProgress {
  /** Bytes of all selected files that are on disk and verified, plus the current file's progress. */
  bytesDone: number;
  bytesTotal: number;
  /** The file being fetched or checked (repo-relative). */
  file: string;
  /** Set when the file came from the cache without a download. */
  reused?: boolean;
}

export interface DownloadOptions {
  revision?: string;
  cacheDir?: string;
  endpoint?: string;
  token?: string;
  /** Extra glob patterns (e.g. `*.gguf`) on top of the files a model folder needs. */
  include?: string[];
  signal?: AbortSignal;
  onProgress?: (progress: DownloadProgress) => void;
  /** Environment to read HF_ENDPOINT / HF_TOKEN / HF_HUB_CACHE / HF_HOME from (tests pass their own). */
  env?: NodeJS.ProcessEnv;
  /** Largest file accepted when neither the metadata nor the server declares its size (default UNDECLARED_SIZE_CAP). */
  undeclaredSizeCap?: number;
}

export interface DownloadedFile {
  name: string;
  size: number;
  blob: string;
  reused: boolean;
}

export interface DownloadResult {
  repo: string;
  revision: string;
  commit: string;
  /** `{cache}/models--org--name/snapshots/{commit}`: a model folder kvlens can load. */
  snapshotDir: string;
  files: DownloadedFile[];
  bytesDownloaded: number;
}

interface RemoteFile {
  name: string;
  size: number | null;
  /** sha256 for LFS files, the git blob id otherwise: the name of the blob in the cache. */
  blobId: string | null;
  sha256: string | null;
  /** Git's blob id of the content (sha1 of "blob {size}\0" + bytes), which the Hub gives for files not in LFS. */
  gitSha1: string | null;
}

/** A file whose size neither the metadata nor the server declares is cut off here rather than filling the disk. */
export const UNDECLARED_SIZE_CAP = 2 * 2 ** 30;
const MAX_REDIRECTS = 10;
const SHA256_HEX = /^[0-9a-f]{64}$/;
const SHA1_HEX = /^[0-9a-f]{40}$/;

/** `--cache-dir`, else HF_HUB_CACHE, else HF_HOME/hub, else the platform default huggingface_hub uses. */
export function hfCacheDir(explicit?: string, env: NodeJS.ProcessEnv = process.env): string {
  if (explicit) return explicit;
  if (env.HF_HUB_CACHE) return env.HF_HUB_CACHE;
  if (env.HF_HOME) return join(env.HF_HOME, 'hub');
  if (env.XDG_CACHE_HOME) return join(env.XDG_CACHE_HOME, 'huggingface', 'hub');
  return join(homedir(), '.cache', 'huggingface', 'hub');
}

export function isRepoId(spec: string): boolean {
  return REPO_ID.test(spec) && !spec.split('/').some((part) => part === '.' || part === '..');
}

export function repoCacheDir(cacheDir: string, repo: string): string {
  return join(cacheDir, `models--${repo.replace('/', '--')}`);
}

/** The snapshot folder a previous download left for `repo` at `revision`, or null when there is none. */
export function cachedSnapshotDir(repo: string, options: { revision?: string; cacheDir?: string; env?: NodeJS.ProcessEnv } = {}): string | null {
  const repoDir = repoCacheDir(hfCacheDir(options.cacheDir, options.env), repo);
  const revision = options.revision ?? 'main';
  const refFile = join(repoDir, 'refs', revision);
  const commit = existsSync(refFile) ? readFileSync(refFile, 'utf8').trim() : revision;
  const snapshot = join(repoDir, 'snapshots', commit);
  return existsSync(snapshot) && statSync(snapshot).isDirectory() ? snapshot : null;
}

function globToRegExp(pattern: string): RegExp {
  const body = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]');
  return new RegExp(`^${body}$`);
}

/** Top-level config, tokenizer and safetensors files, plus whatever `include` names. */
export function selectModelFiles(names: string[], include: string[] = []): string[] {
  const extra = include.map(globToRegExp);
  return names.filter((name) => {
    if (extra.some((re) => re.test(name))) return true;
    if (name.includes('/')) return false;
    return MODEL_FILES.includes(name) || name.endsWith('.safetensors') || name.endsWith('.safetensors.index.json');
  });
}

function safeRelativeName(name: string, repo: string): string {
  const parts = name.split('/');
  if (name.startsWith('/') || parts.some((p) => p === '' || p === '.' || p === '..') || name.includes('\\')) {
    throw new KvlensError(`the repo metadata lists an unsafe file name ${JSON.stringify(name)}`, repo);
  }
  return parts.join(sep);
}

function authHeaders(token: string | undefined): Record<string, string> {
  return token ? { Authorization: `Bearer ${token}` } : {};
}

function httpProblem(status: number, what: string, hasToken: boolean): string {
  if (status === 404 || status === 401) {
    return `${what} not found (HTTP ${status})${hasToken ? '' : '; if it is private or gated, set HF_TOKEN'}`;
  }
  if (status === 403) return `access to ${what} denied (HTTP 403): accept the model's terms on its page and set HF_TOKEN`;
  return `${what} failed with HTTP ${status}`;
}

function isAbort(error: unknown, signal: AbortSignal | undefined): boolean {
  return Boolean(signal?.aborted) || (error instanceof Error && error.name === 'AbortError');
}

function cancelled(repo: string): KvlensError {
  return new KvlensError('download cancelled; partial files are kept and the next download resumes them', repo);
}

async function fetchOnce(url: string, headers: Record<string, string>, repo: string, signal: AbortSignal | undefined): Promise<Response> {
  try {
    return await fetch(url, { headers, signal, redirect: 'manual' });
  } catch (error) {
    if (isAbort(error, signal)) throw cancelled(repo);
    const cause = error instanceof Error && error.cause instanceof Error ? `: ${error.cause.message}` : '';
    throw new KvlensError(`cannot reach ${new URL(url).origin}${cause} (set --endpoint or HF_ENDPOINT for a mirror)`, repo);
  }
}

/**
 * Why a redirect from `from` to `to` must not be followed, or null: only http(s), and never from https down to
 * plain http (a weights file or token would then cross the network unencrypted and unauthenticated).
 */
export function redirectProblem(from: URL, to: URL): string | null {
  if (to.protocol !== 'https:' && to.protocol !== 'http:') return `refused a redirect from ${from.origin} to a ${to.protocol} URL`;
  if (from.protocol === 'https:' && to.protocol === 'http:') return `refused a redirect from ${from.origin} to plain http (${to.origin}): the download would no longer be encrypted`;
  return null;
}

/** The final response after redirects (each one checked), and the first response's headers (the Hub's X-Linked-*). */
async function fetchOrExplain(url: string, init: { headers: Record<string, string> }, repo: string, signal: AbortSignal | undefined): Promise<{ response: Response; first: Headers }> {
  let current = new URL(url);
  let headers = { ...init.headers };
  let first: Headers | null = null;
  for (let hop = 0; ; hop++) {
    const response = await fetchOnce(current.href, headers, repo, signal);
    first ??= response.headers;
    if (![301, 302, 303, 307, 308].includes(response.status)) return { response, first };
    await response.body?.cancel();
    const location = response.headers.get('location');
    if (!location) throw new KvlensError(`${current.origin} answered HTTP ${response.status} without saying where to (no Location header)`, repo);
    if (hop >= MAX_REDIRECTS) throw new KvlensError(`more than ${MAX_REDIRECTS} redirects from ${new URL(url).origin}`, repo);
    let next: URL;
    try {
      next = new URL(location, current);
    } catch {
      throw new KvlensError(`${current.origin} redirected to an invalid URL ${JSON.stringify(location.slice(0, 200))}`, repo);
    }
    const problem = redirectProblem(current, next);
    if (problem) throw new KvlensError(problem, repo);
    // The token is for the Hub: a CDN or any other origin never sees it.
    if (next.origin !== current.origin) {
      const { Authorization: _dropped, ...rest } = headers;
      headers = rest;
    }
    current = next;
  }
}

async function fetchMetadata(endpoint: string, repo: string, revision: string, token: string | undefined, signal: AbortSignal | undefined): Promise<{ commit: string; files: RemoteFile[] }> {
  const url = `${endpoint}/api/models/${repo}/revision/${encodeURIComponent(revision)}?blobs=true`;
  const { response } = await fetchOrExplain(url, { headers: authHeaders(token) }, repo, signal);
  if (!response.ok) {
    await response.body?.cancel();
    throw new KvlensError(httpProblem(response.status, `model repo ${repo} at revision ${revision} on ${endpoint}`, Boolean(token)), repo);
  }
  let body: unknown;
  try {
    body = await response.json();
  } catch {
    throw new KvlensError(`the metadata from ${url} is not JSON`, repo);
  }
  const record = body as { sha?: unknown; siblings?: unknown };
  if (typeof record?.sha !== 'string' || !/^[0-9a-f]{40}$/i.test(record.sha) || !Array.isArray(record.siblings)) {
    throw new KvlensError(`the metadata from ${url} lacks a commit sha or a siblings list`, repo);
  }
  const files: RemoteFile[] = [];
  for (const sibling of record.siblings as Array<Record<string, unknown>>) {
    if (typeof sibling?.rfilename !== 'string') continue;
    const lfs = sibling.lfs as { sha256?: unknown; size?: unknown } | undefined;
    const sha256 = typeof lfs?.sha256 === 'string' && /^[0-9a-f]{64}$/i.test(lfs.sha256) ? lfs.sha256.toLowerCase() : null;
    const sizeValue = typeof lfs?.size === 'number' ? lfs.size : sibling.size;
    const size = typeof sizeValue === 'number' && Number.isSafeInteger(sizeValue) && sizeValue >= 0 ? sizeValue : null;
    const gitBlob = typeof sibling.blobId === 'string' && /^[0-9a-f]{40}$/i.test(sibling.blobId) ? sibling.blobId.toLowerCase() : null;
    // An LFS file's blobId is the id of its pointer, not of the content: only files outside LFS can be checked by it.
    files.push({ name: sibling.rfilename, size, sha256, blobId: sha256 ?? gitBlob, gitSha1: lfs ? null : gitBlob });
  }
  return { commit: record.sha, files };
}

async function sha256OfFile(path: string, signal: AbortSignal | undefined, repo: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { signal })) hash.update(chunk as Buffer);
  if (signal?.aborted) throw cancelled(repo);
  return hash.digest('hex');
}

/** Git's blob id of a file: sha1 over "blob {size}\0" and the bytes (what the Hub lists for files outside LFS). */
async function gitSha1OfFile(path: string, signal: AbortSignal | undefined, repo: string): Promise<string> {
  const size = (await stat(path)).size;
  const hash = createHash('sha1').update(`blob ${size}\0`);
  for await (const chunk of createReadStream(path, { signal })) hash.update(chunk as Buffer);
  if (signal?.aborted) throw cancelled(repo);
  return hash.digest('hex');
}

async function sizeOf(path: string): Promise<number | null> {
  try {
    return (await stat(path)).size;
  } catch {
    return null;
  }
}

/** A blob already in the cache counts only when its size (and sha256, for LFS files) match the metadata. */
async function blobIsGood(path: string, file: RemoteFile, signal: AbortSignal | undefined, repo: string): Promise<boolean> {
  const size = await sizeOf(path);
  if (size === null || (file.size !== null && size !== file.size)) return false;
  if (file.sha256 || file.gitSha1) {
    try {
      if (file.sha256) return (await sha256OfFile(path, signal, repo)) === file.sha256;
      return (await gitSha1OfFile(path, signal, repo)) === file.gitSha1;
    } catch (error) {
      if (isAbort(error, signal)) throw cancelled(repo);
      return false;
    }
  }
  return true;
}

/** Links the snapshot entry to its blob the way huggingface_hub does; copies where symlinks are not allowed. */
async function linkIntoSnapshot(blob: string, target: string): Promise<void> {
  await mkdir(dirname(target), { recursive: true });
  await rm(target, { force: true });
  try {
    await symlink(relative(dirname(target), blob), target);
  } catch {
    const temporary = `${target}.copying`;
    try {
      await copyFile(blob, temporary);
      await rename(temporary, target);
    } catch (error) {
      await rm(temporary, { force: true });
      throw error;
    }
  }
}

/**
 * The content id a server's ETag carries, if it is one: a sha256 (the Hub's X-Linked-Etag for LFS files) or a
 * git blob sha1. Anything else (a CDN's md5, an overlong or path-like value) is no name for a file and no check.
 */
function etagIdOf(headers: Headers): { sha256: string } | { gitSha1: string } | null {
  const raw = headers.get('x-linked-etag') ?? headers.get('etag');
  if (!raw || raw.length > 80) return null;
  const value = raw.replace(/^W\//, '').replace(/"/g, '').toLowerCase();
  if (SHA256_HEX.test(value)) return { sha256: value };
  if (SHA1_HEX.test(value)) return { gitSha1: value };
  return null;
}

/** A size header as a byte count, or null when absent or not a plain non-negative integer. */
function byteCount(text: string | null): number | null {
  if (text === null || !/^\d{1,16}$/.test(text.trim())) return null;
  const value = Number(text.trim());
  return Number.isSafeInteger(value) ? value : null;
}

/** Fetches one file into `blobs/{id}.incomplete` (resuming what is there), verifies it, and renames it into place. */
async function fetchBlob(
  context: { endpoint: string; repo: string; commit: string; token?: string; signal?: AbortSignal; blobsDir: string; undeclaredSizeCap: number },
  file: RemoteFile,
  report: (fileBytes: number) => void,
): Promise<{ blob: string; bytes: number }> {
  const { endpoint, repo, commit, token, signal, blobsDir, undeclaredSizeCap } = context;
  const url = `${endpoint}/${repo}/resolve/${commit}/${file.name.split('/').map(encodeURIComponent).join('/')}`;
  // Without a blob id in the metadata the name comes from the response's ETag; partial data then has nowhere stable to live.
  const provisionalId = file.blobId;
  const partial = provisionalId ? join(blobsDir, `${provisionalId}.incomplete`) : null;
  const locks = [partial ? lockPartial(partial, file.name) : null];
  try {
    let offset = partial ? (await sizeOf(partial)) ?? 0 : 0;
    if (file.size !== null && offset > file.size) {
      await rm(partial!, { force: true });
      offset = 0;
    }
    const headers: Record<string, string> = authHeaders(token);
    if (offset > 0) headers.Range = `bytes=${offset}-`;
    const { response, first } = await fetchOrExplain(url, { headers }, repo, signal);
    const alreadyWhole = response.status === 416 && offset > 0 && offset === file.size;
    if (alreadyWhole) {
      await response.body?.cancel();
    } else if (!response.ok) {
      await response.body?.cancel();
      throw new KvlensError(httpProblem(response.status, `file ${file.name} of ${repo}@${commit.slice(0, 12)}`, Boolean(token)), file.name);
    } else if (response.status !== 206) {
      offset = 0; // the server ignored the range: start over
    } else {
      const start = /^bytes (\d+)-/.exec(response.headers.get('content-range') ?? '');
      if (start && Number(start[1]) !== offset) {
        await response.body?.cancel();
        if (partial) await rm(partial, { force: true });
        throw new KvlensError(`the server resumed at byte ${start[1]} instead of ${offset}; the partial file was deleted, run the download again`, file.name);
      }
    }
    // What can be checked: the metadata's ids first, else an id the Hub's ETag carries (sha256 or git sha1).
    const announced = etagIdOf(first) ?? etagIdOf(response.headers);
    const sha256 = file.sha256 ?? (file.gitSha1 === null && announced && 'sha256' in announced ? announced.sha256 : null);
    const gitSha1 = sha256 ? null : file.gitSha1 ?? (announced && 'gitSha1' in announced ? announced.gitSha1 : null);
    const contentLength = alreadyWhole ? null : byteCount(response.headers.get('content-length'));
    const announcedTotal = contentLength === null ? null : contentLength + offset;
    if (file.size !== null && announcedTotal !== null && announcedTotal !== file.size) {
      await response.body?.cancel();
      if (partial) await rm(partial, { force: true });
      throw new KvlensError(`size mismatch: expected ${file.size} bytes, the server announces ${announcedTotal}; nothing was kept`, file.name);
    }
    const expectedSize = file.size ?? byteCount(first.get('x-linked-size')) ?? announcedTotal;
    const blobId = provisionalId ?? (announced ? ('sha256' in announced ? announced.sha256 : announced.gitSha1) : null) ?? createHash('sha256').update(`${repo}/${commit}/${file.name}`).digest('hex');
    const incomplete = partial ?? join(blobsDir, `${blobId}.incomplete`);
    if (!partial) locks.push(lockPartial(incomplete, file.name));
    const hash = sha256 ? createHash('sha256') : null;
    if (hash && offset > 0) {
      for await (const chunk of createReadStream(incomplete, { start: 0, end: offset - 1 })) hash.update(chunk as Buffer);
    }
    // Never more than declared (or, undeclared, than the cap): an endless or padded body stops here, not on a full disk.
    const limit = expectedSize ?? undeclaredSizeCap;
    const handle = await open(incomplete, offset > 0 ? 'a' : 'w');
    let written = offset;
    let overflow = false;
    report(written);
    try {
      if (!alreadyWhole && response.body) {
        for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
          if (written + chunk.byteLength > limit) {
            overflow = true;
            break; // leaving the loop cancels the body
          }
          await handle.write(chunk);
          hash?.update(chunk);
          written += chunk.byteLength;
          report(written);
        }
      }
    } catch (error) {
      if (isAbort(error, signal)) throw cancelled(repo);
      throw new KvlensError(`the download of ${file.name} broke off after ${written} bytes (${describeError(error)}); run it again to resume`, file.name);
    } finally {
      await handle.close();
    }
    if (overflow) {
      await rm(incomplete, { force: true });
      throw new KvlensError(
        expectedSize === null
          ? `the server sent more than ${undeclaredSizeCap} bytes without declaring a size; it was cut off there and the partial file was deleted`
          : `size mismatch: expected ${expectedSize} bytes, the server sent more; it was cut off there and the partial file was deleted`,
        file.name,
      );
    }
    if (signal?.aborted) throw cancelled(repo);
    if (expectedSize !== null && written < expectedSize) {
      throw new KvlensError(`the download stopped at ${written} of ${expectedSize} bytes; run it again to resume`, file.name);
    }
    if (hash && sha256) {
      const actual = hash.digest('hex');
      if (actual !== sha256) {
        await rm(incomplete, { force: true });
        throw new KvlensError(`sha256 mismatch: expected ${sha256}, got ${actual}; the downloaded file was deleted`, file.name);
      }
    }
    if (gitSha1) {
      const actual = await gitSha1OfFile(incomplete, signal, repo);
      if (actual !== gitSha1) {
        await rm(incomplete, { force: true });
        throw new KvlensError(`git blob sha1 mismatch: expected ${gitSha1}, got ${actual}; the downloaded file was deleted`, file.name);
      }
    }
    const blob = join(blobsDir, blobId);
    await rename(incomplete, blob);
    return { blob, bytes: written - offset };
  } finally {
    for (const lock of locks) lock?.release();
  }
}

/** One process at a time appends to a partial file; two would interleave their bytes. */
function lockPartial(incomplete: string, name: string) {
  try {
    return lockFile(incomplete, { clash: 'two downloads of one file would interleave their bytes' });
  } catch (error) {
    if (error instanceof KvlensError) throw new KvlensError(error.problem, name);
    throw error;
  }
}

/** Runs a step that writes into the cache; a filesystem error (a full disk, no permission) is named, not raw. */
async function storing<T>(name: string, folder: string, step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (error) {
    if (error instanceof KvlensError) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    throw new KvlensError(`cannot store it in ${folder} (${code ? `${code}: ` : ''}${describeError(error).replace(/^\w+: /, '')})`, name);
  }
}

/**
 * Downloads the files a model folder needs from `{endpoint}/{repo}` at `revision` into the Hugging Face cache
 * and returns the snapshot folder. Blobs already cached (right size and sha256) are reused; a cancelled or
 * broken download leaves `blobs/{id}.incomplete` for the next call to resume.
 */
export async function downloadModel(repo: string, options: DownloadOptions = {}): Promise<DownloadResult> {
  const env = options.env ?? process.env;
  if (!isRepoId(repo)) throw new KvlensError('a model repo id looks like org/name (letters, digits, ".", "-", "_")', repo);
  const revision = options.revision ?? 'main';
  if (!REVISION.test(revision) || revision.split('/').includes('..')) throw new KvlensError(`revision ${JSON.stringify(revision)} is not a branch, tag or commit name`, repo);
  const endpoint = (options.endpoint ?? env.HF_ENDPOINT ?? DEFAULT_ENDPOINT).replace(/\/+$/, '');
  if (!/^https?:\/\/[^/]+/.test(endpoint)) throw new KvlensError(`the endpoint must be an http(s) URL, got ${JSON.stringify(endpoint)}`, repo);
  const token = options.token ?? env.HF_TOKEN ?? undefined;
  const { signal } = options;
  if (signal?.aborted) throw cancelled(repo);

  const { commit, files: remote } = await fetchMetadata(endpoint, repo, revision, token || undefined, signal);
  const chosen = new Set(selectModelFiles(remote.map((f) => f.name), options.include));
  const files = remote.filter((f) => chosen.has(f.name));
  if (!files.some((f) => f.name === 'config.json' || f.name.endsWith('.gguf'))) {
    throw new KvlensError(`revision ${revision} has no config.json${options.include?.length ? ' or .gguf file' : ''}: not a model kvlens can load`, repo);
  }
  if (!files.some((f) => f.name.endsWith('.safetensors') || f.name.endsWith('.gguf'))) {
    const others = remote.filter((f) => /\.(bin|pt|pth|onnx|gguf)$/.test(f.name)).map((f) => f.name);
    throw new KvlensError(`revision ${revision} has no .safetensors weights${others.length ? ` (only ${others.slice(0, 4).join(', ')}; pass --include with a pattern to fetch them)` : ''}`, repo);
  }
  for (const file of files) safeRelativeName(file.name, repo);

  const repoDir = repoCacheDir(hfCacheDir(options.cacheDir, env), repo);
  const blobsDir = join(repoDir, 'blobs');
  const snapshotDir = join(repoDir, 'snapshots', commit);
  await storing(repo, repoDir, async () => {
    await mkdir(blobsDir, { recursive: true });
    await mkdir(snapshotDir, { recursive: true });
  });

  const bytesTotal = files.reduce((sum, f) => sum + (f.size ?? 0), 0);
  let bytesFinished = 0;
  let bytesDownloaded = 0;
  const done: DownloadedFile[] = [];
  for (const file of files) {
    if (signal?.aborted) throw cancelled(repo);
    const target = join(snapshotDir, safeRelativeName(file.name, repo));
    const known = file.blobId ? join(blobsDir, file.blobId) : null;
    options.onProgress?.({ bytesDone: bytesFinished, bytesTotal, file: file.name });
    let blob: string;
    let size: number;
    let reused = false;
    if (known && (await blobIsGood(known, file, signal, repo))) {
      blob = known;
      size = (await sizeOf(known)) ?? 0;
      reused = true;
    } else if (!known && file.size !== null && (await sizeOf(target)) === file.size) {
      // No blob id to check against: a snapshot entry of the right size from an earlier download stands.
      blob = target;
      size = file.size;
      reused = true;
    } else {
      if (known) await rm(known, { force: true });
      const fetched = await storing(file.name, blobsDir, () =>
        fetchBlob({ endpoint, repo, commit, token: token || undefined, signal, blobsDir, undeclaredSizeCap: options.undeclaredSizeCap ?? UNDECLARED_SIZE_CAP }, file, (fileBytes) =>
          options.onProgress?.({ bytesDone: bytesFinished + fileBytes, bytesTotal, file: file.name }),
        ),
      );
      blob = fetched.blob;
      size = (await sizeOf(blob)) ?? 0;
      bytesDownloaded += fetched.bytes;
    }
    if (blob !== target) await storing(file.name, dirname(target), () => linkIntoSnapshot(blob, target));
    bytesFinished += file.size ?? size;
    done.push({ name: file.name, size, blob, reused });
    options.onProgress?.({ bytesDone: bytesFinished, bytesTotal, file: file.name, reused });
  }
  if (revision !== commit) {
    const refFile = join(repoDir, 'refs', ...revision.split('/'));
    await mkdir(dirname(refFile), { recursive: true });
    const temporary = `${refFile}.${process.pid}.tmp`;
    await writeFile(temporary, commit);
    await rename(temporary, refFile).catch(async (error) => {
      await unlink(temporary).catch(() => undefined);
      throw error;
    });
  }
  return { repo, revision, commit, snapshotDir, files: done, bytesDownloaded };
}

// Downloads a model by Hugging Face repo id into the standard Hugging Face cache layout, so files
// fetched here are shared with huggingface_hub / transformers and the reverse.
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readFileSync, statSync } from 'node:fs';
import { copyFile, mkdir, open, rename, rm, stat, symlink, unlink, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join, relative, sep } from 'node:path';
import { KvlensError } from '../errors';

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
}

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

async function fetchOrExplain(url: string, init: RequestInit, repo: string, signal: AbortSignal | undefined): Promise<Response> {
  try {
    return await fetch(url, { ...init, signal, redirect: 'follow' });
  } catch (error) {
    if (isAbort(error, signal)) throw cancelled(repo);
    const cause = error instanceof Error && error.cause instanceof Error ? `: ${error.cause.message}` : '';
    throw new KvlensError(`cannot reach ${new URL(url).origin}${cause} (set --endpoint or HF_ENDPOINT for a mirror)`, repo);
  }
}

async function fetchMetadata(endpoint: string, repo: string, revision: string, token: string | undefined, signal: AbortSignal | undefined): Promise<{ commit: string; files: RemoteFile[] }> {
  const url = `${endpoint}/api/models/${repo}/revision/${encodeURIComponent(revision)}?blobs=true`;
  const response = await fetchOrExplain(url, { headers: authHeaders(token) }, repo, signal);
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
    const gitBlob = typeof sibling.blobId === 'string' && /^[0-9a-f]{40}$/i.test(sibling.blobId) ? sibling.blobId : null;
    files.push({ name: sibling.rfilename, size, sha256, blobId: sha256 ?? gitBlob });
  }
  return { commit: record.sha, files };
}

async function sha256OfFile(path: string, signal: AbortSignal | undefined, repo: string): Promise<string> {
  const hash = createHash('sha256');
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
  if (file.sha256) {
    try {
      return (await sha256OfFile(path, signal, repo)) === file.sha256;
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
    await copyFile(blob, temporary);
    await rename(temporary, target);
  }
}

function etagOf(response: Response): string | null {
  const raw = response.headers.get('x-linked-etag') ?? response.headers.get('etag');
  if (!raw) return null;
  const value = raw.replace(/^W\//, '').replace(/"/g, '');
  return /^[\w.-]+$/.test(value) ? value : null;
}

/** Fetches one file into `blobs/{id}.incomplete` (resuming what is there), verifies it, and renames it into place. */
async function fetchBlob(
  context: { endpoint: string; repo: string; commit: string; token?: string; signal?: AbortSignal; blobsDir: string },
  file: RemoteFile,
  report: (fileBytes: number) => void,
): Promise<{ blob: string; bytes: number }> {
  const { endpoint, repo, commit, token, signal, blobsDir } = context;
  const url = `${endpoint}/${repo}/resolve/${commit}/${file.name.split('/').map(encodeURIComponent).join('/')}`;
  // Without a blob id in the metadata the name comes from the response's ETag; partial data then has nowhere stable to live.
  const provisionalId = file.blobId;
  const partial = provisionalId ? join(blobsDir, `${provisionalId}.incomplete`) : null;
  let offset = partial ? (await sizeOf(partial)) ?? 0 : 0;
  if (file.size !== null && offset > file.size) {
    await rm(partial!, { force: true });
    offset = 0;
  }
  const headers: Record<string, string> = authHeaders(token);
  if (offset > 0) headers.Range = `bytes=${offset}-`;
  const response = await fetchOrExplain(url, { headers }, repo, signal);
  if (response.status === 416 && offset > 0 && offset === file.size) {
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
  const blobId = provisionalId ?? etagOf(response) ?? createHash('sha256').update(`${repo}/${commit}/${file.name}`).digest('hex');
  const incomplete = partial ?? join(blobsDir, `${blobId}.incomplete`);
  const hash = file.sha256 ? createHash('sha256') : null;
  if (hash && offset > 0) {
    for await (const chunk of createReadStream(incomplete, { start: 0, end: offset - 1 })) hash.update(chunk as Buffer);
  }
  const handle = await open(incomplete, offset > 0 ? 'a' : 'w');
  let written = offset;
  report(written);
  try {
    if (response.status !== 416 && response.body) {
      for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
        await handle.write(chunk);
        hash?.update(chunk);
        written += chunk.byteLength;
        report(written);
      }
    }
  } catch (error) {
    if (isAbort(error, signal)) throw cancelled(repo);
    throw new KvlensError(`the download of ${file.name} broke off after ${written} bytes (${error instanceof Error ? error.message : String(error)}); run it again to resume`, file.name);
  } finally {
    await handle.close();
  }
  if (signal?.aborted) throw cancelled(repo);
  const expectedSize = file.size ?? Number(response.headers.get('content-length') ?? NaN) + offset;
  if (Number.isFinite(expectedSize) && written < expectedSize) {
    throw new KvlensError(`the download stopped at ${written} of ${expectedSize} bytes; run it again to resume`, file.name);
  }
  if (Number.isFinite(expectedSize) && written > expectedSize) {
    await rm(incomplete, { force: true });
    throw new KvlensError(`size mismatch: expected ${expectedSize} bytes, got ${written}; the downloaded file was deleted`, file.name);
  }
  if (hash && file.sha256) {
    const actual = hash.digest('hex');
    if (actual !== file.sha256) {
      await rm(incomplete, { force: true });
      throw new KvlensError(`sha256 mismatch: expected ${file.sha256}, got ${actual}; the downloaded file was deleted`, file.name);
    }
  }
  const blob = join(blobsDir, blobId);
  await rename(incomplete, blob);
  return { blob, bytes: written - offset };
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
  await mkdir(blobsDir, { recursive: true });
  await mkdir(snapshotDir, { recursive: true });

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
      const fetched = await fetchBlob({ endpoint, repo, commit, token: token || undefined, signal, blobsDir }, file, (fileBytes) =>
        options.onProgress?.({ bytesDone: bytesFinished + fileBytes, bytesTotal, file: file.name }),
      );
      blob = fetched.blob;
      size = (await sizeOf(blob)) ?? 0;
      bytesDownloaded += fetched.bytes;
    }
    if (blob !== target) await linkIntoSnapshot(blob, target);
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

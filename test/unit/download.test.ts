import { test, after } from 'node:test';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { existsSync, lstatSync, mkdtempSync, rmSync, readFileSync, readdirSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { downloadModel, redirectProblem, selectModelFiles, type DownloadProgress } from '../../src/engine/model/download';
import { loadModel, resolveModelDir } from '../../src/engine/model/loader';
import { KvlensError } from '../../src/engine/errors';
import { createHost, installVscodeStub, Uri } from './extension-host-stub';

const FIXTURE = resolve(__dirname, '..', 'fixtures', 'models', 'qwen2-bias-untied-f32');
const REPO = 'fixture-org/qwen2-tiny';
const COMMIT = 'c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00';
const WEIGHTS = 'model.safetensors';

// The repo as the Hub would describe it: small files are git blobs, weights are LFS objects.
const fixtureFiles = new Map<string, Buffer>(readdirSync(FIXTURE).map((name) => [name, readFileSync(join(FIXTURE, name))]));
fixtureFiles.set('pytorch_model.bin', Buffer.from('not fetched: only safetensors are'));
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const gitBlobId = (data: Buffer) => createHash('sha1').update(`blob ${data.length}\0`).update(data).digest('hex');
const isLfs = (name: string) => name.endsWith('.safetensors') || name.endsWith('.bin');

interface FakeHub {
  endpoint: string;
  /** Paths of every file request (metadata requests excluded). */
  fileRequests: string[];
  rangeRequests: string[];
  close(): Promise<void>;
}

interface HubBehaviour {
  /** Serve the weights with one byte flipped. */
  corrupt?: boolean;
  /** Answer file requests with a redirect to a "CDN" path on the same server. */
  redirect?: boolean;
  /** Serve config.json one byte longer than the metadata says. */
  padConfig?: boolean;
  /** Send the first part of the weights and then stall until the client goes away. */
  stallWeightsAfter?: number;
  /** Serve config.json with one byte changed and its length unchanged (only a content hash can tell). */
  corruptConfig?: boolean;
  /** Stream the weights without a Content-Length, forever; counts what was sent. */
  floodWeights?: { sent: number };
  /** Metadata as a mirror without ?blobs=true support gives it: names only, no ids, no sizes. */
  namesOnly?: boolean;
  /** The ETag every file is served with, instead of its content id. */
  etag?: string;
  /** Answer file requests with a redirect to this URL (the file name appended). */
  redirectTo?: string;
  /** Authorization headers of every file request, in order. */
  authSeen?: (string | undefined)[];
}

function metadata(behaviour: HubBehaviour = {}): unknown {
  if (behaviour.namesOnly) return { id: REPO, sha: COMMIT, siblings: [...fixtureFiles.keys()].map((name) => ({ rfilename: name })) };
  return {
    id: REPO,
    sha: COMMIT,
    siblings: [...fixtureFiles].map(([name, data]) =>
      isLfs(name) ? { rfilename: name, size: data.length, blobId: gitBlobId(Buffer.from(`lfs pointer ${name}`)), lfs: { sha256: sha256(data), size: data.length } } : { rfilename: name, size: data.length, blobId: gitBlobId(data) },
    ),
  };
}

async function startHub(behaviour: HubBehaviour = {}): Promise<FakeHub> {
  const fileRequests: string[] = [];
  const rangeRequests: string[] = [];
  const serveFile = (request: IncomingMessage, response: ServerResponse, name: string) => {
    let data = fixtureFiles.get(name);
    if (!data) {
      response.writeHead(404).end('Entry not found');
      return;
    }
    // A hub's ETag names the true content, whatever the bytes that arrive.
    const etag = behaviour.etag ?? (isLfs(name) ? sha256(data) : gitBlobId(data));
    behaviour.authSeen?.push(request.headers.authorization);
    if (behaviour.corrupt && name === WEIGHTS) {
      data = Buffer.from(data);
      data[data.length >> 1] ^= 0xff;
    }
    if (behaviour.corruptConfig && name === 'config.json') data = Buffer.from(data.toString('utf8').replace('"', "'"));
    if (behaviour.padConfig && name === 'config.json') data = Buffer.concat([data, Buffer.from('\n')]);
    const flood = behaviour.floodWeights;
    if (flood && name === WEIGHTS) {
      response.writeHead(200, { ETag: `"${etag}"` });
      const chunk = Buffer.alloc(64 * 1024, 7);
      const pump = () => {
        while (!response.destroyed && flood.sent < 1024 * 2 ** 20) {
          flood.sent += chunk.length;
          if (!response.write(chunk)) return response.once('drain', pump);
        }
      };
      response.on('close', () => undefined);
      pump();
      return;
    }
    const range = /^bytes=(\d+)-$/.exec(request.headers.range ?? '');
    const start = range ? Number(range[1]) : 0;
    if (range) rangeRequests.push(`${name} ${request.headers.range}`);
    if (start >= data.length) {
      response.writeHead(416).end();
      return;
    }
    const headers = { 'Content-Length': String(data.length - start), ETag: `"${etag}"` };
    if (range) response.writeHead(206, { ...headers, 'Content-Range': `bytes ${start}-${data.length - 1}/${data.length}` });
    else response.writeHead(200, headers);
    if (behaviour.stallWeightsAfter !== undefined && name === WEIGHTS && !range) {
      response.write(data.subarray(0, behaviour.stallWeightsAfter));
      return; // never ends: the client has to cancel
    }
    response.end(data.subarray(start));
  };
  const server: Server = createServer((request, response) => {
    const url = new URL(request.url ?? '/', 'http://localhost');
    if (url.pathname === `/api/models/${REPO}/revision/main` && url.searchParams.get('blobs') === 'true') {
      response.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify(metadata(behaviour)));
      return;
    }
    const resolvePrefix = `/${REPO}/resolve/${COMMIT}/`;
    if (url.pathname.startsWith(resolvePrefix)) {
      const name = decodeURIComponent(url.pathname.slice(resolvePrefix.length));
      fileRequests.push(name);
      if (behaviour.redirectTo !== undefined) response.writeHead(302, { Location: `${behaviour.redirectTo}${encodeURIComponent(name)}` }).end();
      else if (behaviour.redirect) response.writeHead(302, { Location: `/cdn/${encodeURIComponent(name)}` }).end();
      else serveFile(request, response, name);
      return;
    }
    if (url.pathname.startsWith('/cdn/')) {
      serveFile(request, response, decodeURIComponent(url.pathname.slice('/cdn/'.length)));
      return;
    }
    response.writeHead(404, { 'Content-Type': 'application/json' }).end('{"error":"Repository not found"}');
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    fileRequests,
    rangeRequests,
    close: () =>
      new Promise<void>((done) => {
        server.closeAllConnections();
        server.close(() => done());
      }),
  };
}

const EXPECTED_FILES = ['config.json', 'generation_config.json', WEIGHTS, 'tokenizer.json', 'tokenizer_config.json'];
const scratch: string[] = [];
const freshCache = () => {
  const dir = mkdtempSync(join(tmpdir(), 'kvlens-hfcache-'));
  scratch.push(dir);
  return dir;
};
after(() => {
  for (const dir of scratch) rmSync(dir, { recursive: true, force: true });
});
const repoDir = (cache: string) => join(cache, 'models--fixture-org--qwen2-tiny');

/** Runs `body` against a fresh fake hub and an empty cache folder, and always stops the hub. */
async function withHub(behaviour: HubBehaviour, body: (hub: FakeHub, cache: string) => Promise<void>): Promise<void>;
async function withHub(body: (hub: FakeHub, cache: string) => Promise<void>): Promise<void>;
async function withHub(
  first: HubBehaviour | ((hub: FakeHub, cache: string) => Promise<void>),
  second?: (hub: FakeHub, cache: string) => Promise<void>,
): Promise<void> {
  const [behaviour, body] = typeof first === 'function' ? [{}, first] : [first, second!];
  const hub = await startHub(behaviour);
  try {
    await body(hub, freshCache());
  } finally {
    await hub.close();
  }
}

test('selectModelFiles keeps config, tokenizer and safetensors files and skips other weight formats', () => {
  const names = ['config.json', 'model-00001-of-00002.safetensors', 'model.safetensors.index.json', 'pytorch_model.bin', 'model.onnx', 'q4.gguf', 'README.md', 'onnx/model.safetensors', 'special_tokens_map.json'];
  assert.deepEqual(selectModelFiles(names), ['config.json', 'model-00001-of-00002.safetensors', 'model.safetensors.index.json', 'special_tokens_map.json']);
  assert.deepEqual(selectModelFiles(names, ['*.gguf']), ['config.json', 'model-00001-of-00002.safetensors', 'model.safetensors.index.json', 'q4.gguf', 'special_tokens_map.json']);
});

test('a download lands in the Hugging Face cache layout and the snapshot loads as a model', async () => {
  await withHub(async (hub, cache) => {
    const progress: DownloadProgress[] = [];
    const result = await downloadModel(REPO, { endpoint: hub.endpoint, cacheDir: cache, env: {}, onProgress: (p) => progress.push(p) });
    assert.equal(result.commit, COMMIT);
    assert.equal(result.snapshotDir, join(repoDir(cache), 'snapshots', COMMIT));
    assert.equal(readFileSync(join(repoDir(cache), 'refs', 'main'), 'utf8'), COMMIT);
    assert.deepEqual(readdirSync(result.snapshotDir).sort(), EXPECTED_FILES);
    assert.deepEqual([...hub.fileRequests].sort(), EXPECTED_FILES, 'reference.json and pytorch_model.bin are not model-folder files');
    for (const name of EXPECTED_FILES) {
      const entry = join(result.snapshotDir, name);
      const original = fixtureFiles.get(name)!;
      assert.ok(lstatSync(entry).isSymbolicLink(), `${name} is a symlink into blobs/`);
      const blobName = isLfs(name) ? sha256(original) : gitBlobId(original);
      assert.equal(readlinkSync(entry), join('..', '..', 'blobs', blobName));
      assert.ok(readFileSync(entry).equals(original), `${name} has the served bytes`);
    }
    assert.equal(readdirSync(join(repoDir(cache), 'blobs')).filter((f) => f.endsWith('.incomplete')).length, 0);
    const total = EXPECTED_FILES.reduce((sum, name) => sum + fixtureFiles.get(name)!.length, 0);
    assert.equal(result.bytesDownloaded, total);
    assert.deepEqual(progress.at(-1) && [progress.at(-1)!.bytesDone, progress.at(-1)!.bytesTotal], [total, total]);
    assert.ok(progress.every((p, i) => i === 0 || p.bytesDone >= progress[i - 1].bytesDone), 'progress never goes backwards');

    const model = loadModel(result.snapshotDir);
    assert.equal(model.config.architecture, 'qwen2');
    assert.deepEqual(Object.keys(model.weights).sort(), Object.keys(loadModel(FIXTURE).weights).sort());

    // The repo id resolves to the cached snapshot through HF_HUB_CACHE; an uncached one says how to fetch it.
    const saved = process.env.HF_HUB_CACHE;
    process.env.HF_HUB_CACHE = cache;
    try {
      assert.equal(resolveModelDir(REPO), result.snapshotDir);
      assert.throws(() => resolveModelDir('fixture-org/not-downloaded'), (e: unknown) => e instanceof KvlensError && /fixture-org\/not-downloaded.*kvlens download fixture-org\/not-downloaded/.test(e.message));
    } finally {
      if (saved === undefined) delete process.env.HF_HUB_CACHE;
      else process.env.HF_HUB_CACHE = saved;
    }
  });
});

test('a second download reuses the cached blobs without requesting any file', async () => {
  await withHub(async (hub, cache) => {
    await downloadModel(REPO, { endpoint: hub.endpoint, cacheDir: cache, env: {} });
    hub.fileRequests.length = 0;
    const again = await downloadModel(REPO, { endpoint: hub.endpoint, cacheDir: cache, env: {} });
    assert.deepEqual(hub.fileRequests, []);
    assert.equal(again.bytesDownloaded, 0);
    assert.ok(again.files.every((f) => f.reused));

    // A blob damaged on disk is not trusted: it is fetched again.
    const weightsBlob = join(repoDir(cache), 'blobs', sha256(fixtureFiles.get(WEIGHTS)!));
    const damaged = readFileSync(weightsBlob);
    damaged[100] ^= 1;
    writeFileSync(weightsBlob, damaged);
    await downloadModel(REPO, { endpoint: hub.endpoint, cacheDir: cache, env: {} });
    assert.deepEqual(hub.fileRequests, [WEIGHTS]);
    assert.ok(readFileSync(weightsBlob).equals(fixtureFiles.get(WEIGHTS)!));
  });
});

test('a cancelled download keeps its partial file and the next one resumes it with a Range request', async () => {
  const stallAt = 100_000;
  const stalling = await startHub({ stallWeightsAfter: stallAt });
  const cache = freshCache();
  const weights = fixtureFiles.get(WEIGHTS)!;
  const partial = join(repoDir(cache), 'blobs', `${sha256(weights)}.incomplete`);
  const finalBlob = join(repoDir(cache), 'blobs', sha256(weights));
  try {
    const controller = new AbortController();
    const before = EXPECTED_FILES.filter((n) => n !== WEIGHTS && [...fixtureFiles.keys()].indexOf(n) < [...fixtureFiles.keys()].indexOf(WEIGHTS));
    const bytesBefore = before.reduce((sum, n) => sum + fixtureFiles.get(n)!.length, 0);
    await assert.rejects(
      downloadModel(REPO, {
        endpoint: stalling.endpoint,
        cacheDir: cache,
        env: {},
        signal: controller.signal,
        onProgress: (p) => {
          if (p.file === WEIGHTS && p.bytesDone - bytesBefore >= stallAt) controller.abort();
        },
      }),
      (e: unknown) => e instanceof KvlensError && /cancelled/.test(e.message),
    );
    assert.equal(statSync(partial).size, stallAt);
    assert.ok(!existsSync(finalBlob), 'no final blob after a cancel');
  } finally {
    await stalling.close();
  }
  await withHub(async (hub) => {
    const result = await downloadModel(REPO, { endpoint: hub.endpoint, cacheDir: cache, env: {} });
    assert.deepEqual(hub.rangeRequests, [`${WEIGHTS} bytes=${stallAt}-`]);
    assert.equal(sha256(readFileSync(join(result.snapshotDir, WEIGHTS))), sha256(weights));
    assert.ok(!existsSync(partial));
    assert.equal(result.files.find((f) => f.name === WEIGHTS)!.reused, false);
  });
});

test('corrupted weights fail the sha256 check, naming the file and both hashes, and leave no blob', async () => {
  await withHub({ corrupt: true }, async (hub, cache) => {
    const expected = sha256(fixtureFiles.get(WEIGHTS)!);
    await assert.rejects(downloadModel(REPO, { endpoint: hub.endpoint, cacheDir: cache, env: {} }), (e: unknown) => {
      assert.ok(e instanceof KvlensError);
      assert.match(e.message, new RegExp(`^${WEIGHTS.replace('.', '\\.')}: sha256 mismatch: expected ${expected}, got [0-9a-f]{64}`));
      return true;
    });
    const blobs = readdirSync(join(repoDir(cache), 'blobs'));
    assert.ok(!blobs.some((b) => b.startsWith(expected)), `no weights blob or partial left: ${blobs.join(', ')}`);
    assert.ok(!existsSync(join(repoDir(cache), 'snapshots', COMMIT, WEIGHTS)));
  });
});

test('a file longer than the metadata says fails the size check, naming the file and both sizes', async () => {
  await withHub({ padConfig: true }, async (hub, cache) => {
    const size = fixtureFiles.get('config.json')!.length;
    await assert.rejects(
      downloadModel(REPO, { endpoint: hub.endpoint, cacheDir: cache, env: {} }),
      (e: unknown) => e instanceof KvlensError && e.message.startsWith(`config.json: size mismatch: expected ${size} bytes, the server announces ${size + 1}; nothing was kept`),
    );
    assert.deepEqual(readdirSync(join(repoDir(cache), 'blobs')), []);
  });
});

test('an unknown repo gives a clear not-found error; bad repo ids are refused before any request', async () => {
  await withHub(async (hub) => {
    await assert.rejects(
      downloadModel('fixture-org/missing', { endpoint: hub.endpoint, cacheDir: freshCache(), env: {} }),
      (e: unknown) => e instanceof KvlensError && /^fixture-org\/missing: model repo fixture-org\/missing at revision main .*not found \(HTTP 404\); if it is private or gated, set HF_TOKEN/.test(e.message),
    );
    for (const bad of ['no-slash', '../etc/passwd', 'a/b/c', 'org/..']) {
      await assert.rejects(downloadModel(bad, { endpoint: hub.endpoint, cacheDir: freshCache(), env: {} }), (e: unknown) => e instanceof KvlensError && e.message.startsWith(`${bad}: a model repo id looks like org/name`));
    }
  });
});

test('file requests follow redirects (as the Hub sends weights to its CDN)', async () => {
  await withHub({ redirect: true }, async (hub, cache) => {
    const result = await downloadModel(REPO, { endpoint: hub.endpoint, cacheDir: cache, env: {} });
    assert.ok(readFileSync(join(result.snapshotDir, WEIGHTS)).equals(fixtureFiles.get(WEIGHTS)!));
    assert.equal(hub.fileRequests.length, EXPECTED_FILES.length);
  });
});

test('HF_ENDPOINT and HF_HUB_CACHE from the environment are honoured', async () => {
  await withHub(async (hub, cache) => {
    const result = await downloadModel(REPO, { env: { HF_ENDPOINT: hub.endpoint, HF_HUB_CACHE: cache } });
    assert.equal(result.snapshotDir, join(repoDir(cache), 'snapshots', COMMIT));
  });
});

const execFileAsync = promisify(execFile);
const KVLENS_BIN = resolve(__dirname, '..', '..', 'bin', 'kvlens.js');

/** Runs the real CLI in a child process without blocking this one (it has to keep serving the fake hub). */
async function runCli(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await execFileAsync(process.execPath, [KVLENS_BIN, ...argv], { env: { ...process.env, HF_TOKEN: '' } });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code?: number; stdout?: string; stderr?: string };
    return { code: failed.code ?? -1, stdout: failed.stdout ?? '', stderr: failed.stderr ?? '' };
  }
}

test('kvlens download prints the snapshot folder on stdout and progress on stderr', async () => {
  await withHub(async (hub, cache) => {
    const run = await runCli(['download', REPO, '--endpoint', hub.endpoint, '--cache-dir', cache]);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, `${join(repoDir(cache), 'snapshots', COMMIT)}\n`);
    assert.match(run.stderr, /model\.safetensors/);
    assert.match(run.stderr, /5 files, .* downloaded, 0 reused/);
    const json = await runCli(['download', REPO, '--endpoint', hub.endpoint, '--cache-dir', cache, '--json']);
    assert.equal(JSON.parse(json.stdout).bytesDownloaded, 0);
    const bad = await runCli(['download', 'not a repo', '--endpoint', hub.endpoint, '--cache-dir', cache]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^kvlens download: not a repo: a model repo id looks like org\/name/);
  });
});

test('the kvlens.downloadModel command downloads the repo typed in and offers to use its folder', async () => {
  const hub = await startHub();
  const cache = freshCache();
  const workspace = freshCache();
  const settings: Record<string, unknown> = {};
  const host = createHost(workspace, settings);
  const saved = { endpoint: process.env.HF_ENDPOINT, cache: process.env.HF_HUB_CACHE };
  const subscriptions: Array<{ dispose(): unknown }> = [];
  const offered: string[][] = [];
  let validate: ((value: string) => string | null) | undefined;
  host.vscode.window.showInputBox = ((options: { validateInput?: (value: string) => string | null }) => {
    validate = options.validateInput;
    return Promise.resolve(` ${REPO} `);
  }) as unknown as typeof host.vscode.window.showInputBox;
  host.vscode.window.showInformationMessage = ((text: string, ...actions: string[]) => {
    host.messages.push({ level: 'info', text });
    offered.push(actions);
    return Promise.resolve(actions[0]);
  }) as unknown as typeof host.vscode.window.showInformationMessage;
  try {
    process.env.HF_ENDPOINT = hub.endpoint;
    process.env.HF_HUB_CACHE = cache;
    installVscodeStub(host.vscode);
    const repoRoot = resolve(__dirname, '..', '..');
    const extension = await import('../../src/extension/extension');
    extension.activate({
      extensionUri: Uri.file(repoRoot),
      asAbsolutePath: (p: string) => (p === join('dist', 'engineProcess.js') ? join(repoRoot, 'test', 'fixtures', 'extension', 'fakeEngine.js') : join(repoRoot, p)),
      subscriptions,
      globalState: { get: () => undefined, update: () => Promise.resolve() },
    } as never);
    const command = host.commands.get('kvlens.downloadModel');
    assert.ok(command, 'kvlens.downloadModel is registered');
    await command();
    assert.deepEqual(host.messages.filter((m) => m.level === 'error'), []);
    assert.equal(validate?.('no-slash'), 'A repo id looks like org/name');
    assert.equal(validate?.(REPO), null);
    const snapshot = join(repoDir(cache), 'snapshots', COMMIT);
    assert.deepEqual([...hub.fileRequests].sort(), EXPECTED_FILES);
    assert.deepEqual(offered, [['Use This Model']]);
    assert.equal(settings.model, snapshot);
  } finally {
    for (const s of subscriptions.splice(0)) s.dispose();
    if (saved.endpoint === undefined) delete process.env.HF_ENDPOINT;
    else process.env.HF_ENDPOINT = saved.endpoint;
    if (saved.cache === undefined) delete process.env.HF_HUB_CACHE;
    else process.env.HF_HUB_CACHE = saved.cache;
    await hub.close();
  }
});

test('a file outside LFS is checked by its git blob id: a same-size corruption is caught, and a bad cached copy is fetched again', async () => {
  const config = fixtureFiles.get('config.json')!;
  await withHub({ corruptConfig: true }, async (hub, cache) => {
    await assert.rejects(downloadModel(REPO, { endpoint: hub.endpoint, cacheDir: cache, env: {} }), (e: unknown) => {
      assert.ok(e instanceof KvlensError);
      assert.match(e.message, new RegExp(`^config\\.json: git blob sha1 mismatch: expected ${gitBlobId(config)}, got [0-9a-f]{40}; the downloaded file was deleted`));
      return true;
    });
    assert.deepEqual(readdirSync(join(repoDir(cache), 'blobs')), []);
  });
  await withHub(async (hub, cache) => {
    await downloadModel(REPO, { endpoint: hub.endpoint, cacheDir: cache, env: {} });
    const blob = join(repoDir(cache), 'blobs', gitBlobId(config));
    writeFileSync(blob, Buffer.alloc(config.length, 0x20));
    hub.fileRequests.length = 0;
    const again = await downloadModel(REPO, { endpoint: hub.endpoint, cacheDir: cache, env: {} });
    assert.deepEqual(hub.fileRequests, ['config.json']);
    assert.ok(readFileSync(join(again.snapshotDir, 'config.json')).equals(config));
  });
});

test('a body longer than declared stops at the declared size instead of filling the disk', { timeout: 60_000 }, async () => {
  const flood = { sent: 0 };
  await withHub({ floodWeights: flood }, async (hub, cache) => {
    const size = fixtureFiles.get(WEIGHTS)!.length;
    await assert.rejects(downloadModel(REPO, { endpoint: hub.endpoint, cacheDir: cache, env: {} }), (e: unknown) => {
      assert.ok(e instanceof KvlensError);
      assert.equal(e.message, `${WEIGHTS}: size mismatch: expected ${size} bytes, the server sent more; it was cut off there and the partial file was deleted`);
      return true;
    });
    assert.ok(flood.sent < size + 64 * 2 ** 20, `the client read on: ${flood.sent} bytes sent`);
    assert.ok(!readdirSync(join(repoDir(cache), 'blobs')).some((name) => name.startsWith(sha256(fixtureFiles.get(WEIGHTS)!))));
  });
});

test('a file whose size nobody declares is cut off at the cap', { timeout: 60_000 }, async () => {
  const flood = { sent: 0 };
  await withHub({ floodWeights: flood, namesOnly: true }, async (hub, cache) => {
    await assert.rejects(
      downloadModel(REPO, { endpoint: hub.endpoint, cacheDir: cache, env: {}, undeclaredSizeCap: 4 * 2 ** 20 }),
      new RegExp(`^KvlensError: ${WEIGHTS.replace('.', '\\.')}: the server sent more than ${4 * 2 ** 20} bytes without declaring a size; it was cut off there and the partial file was deleted`),
    );
    assert.ok(flood.sent < 64 * 2 ** 20, `${flood.sent} bytes sent`);
    assert.deepEqual(readdirSync(join(repoDir(cache), 'blobs')).filter((name) => name.includes('incomplete')), []);
  });
});

test('without ids in the metadata, an ETag that is a content id names and checks the blob; any other ETag is no file name', async () => {
  await withHub({ namesOnly: true, corrupt: true }, async (hub, cache) => {
    await assert.rejects(downloadModel(REPO, { endpoint: hub.endpoint, cacheDir: cache, env: {} }), new RegExp(`${WEIGHTS.replace('.', '\\.')}: sha256 mismatch: expected ${sha256(fixtureFiles.get(WEIGHTS)!)}`));
  });
  for (const etag of ['..', '.', 'x'.repeat(300), '../../../../etc/passwd', 'W/"abc"']) {
    await withHub({ namesOnly: true, etag }, async (hub, cache) => {
      const result = await downloadModel(REPO, { endpoint: hub.endpoint, cacheDir: cache, env: {} });
      assert.ok(readFileSync(join(result.snapshotDir, WEIGHTS)).equals(fixtureFiles.get(WEIGHTS)!), etag);
      const blobs = readdirSync(join(repoDir(cache), 'blobs'));
      assert.equal(blobs.length, EXPECTED_FILES.length, `${etag}: ${blobs.join(', ')}`);
      for (const blob of blobs) assert.match(blob, /^[0-9a-f]{40}$|^[0-9a-f]{64}$/, etag);
    });
  }
});

test('redirects: never from https down to http or to another scheme, and the token stays with the Hub', async () => {
  const hub = new URL('https://huggingface.co/a/resolve/x');
  assert.equal(redirectProblem(hub, new URL('https://cdn-lfs.hf.co/blob')), null);
  assert.match(String(redirectProblem(hub, new URL('http://cdn-lfs.hf.co/blob'))), /refused a redirect from https:\/\/huggingface\.co to plain http \(http:\/\/cdn-lfs\.hf\.co\): the download would no longer be encrypted/);
  assert.match(String(redirectProblem(hub, new URL('file:///etc/passwd'))), /to a file: URL/);
  assert.equal(redirectProblem(new URL('http://127.0.0.1:8080/x'), new URL('http://127.0.0.1:8080/cdn/x')), null);
  await withHub({ redirectTo: 'file:///etc/' }, async (hubServer, cache) => {
    await assert.rejects(downloadModel(REPO, { endpoint: hubServer.endpoint, cacheDir: cache, env: {} }), /^KvlensError: fixture-org\/qwen2-tiny: refused a redirect from http:\/\/127\.0\.0\.1:\d+ to a file: URL/);
  });
  // The "CDN" is another origin (another port): it gets the file request, but not the token.
  const cdnAuth: (string | undefined)[] = [];
  await withHub({ authSeen: cdnAuth }, async (cdn) => {
    const hubAuth: (string | undefined)[] = [];
    await withHub({ redirectTo: `${cdn.endpoint}/cdn/`, authSeen: hubAuth }, async (front, cache) => {
      const result = await downloadModel(REPO, { endpoint: front.endpoint, cacheDir: cache, env: {}, token: 'hf_secret' });
      assert.ok(readFileSync(join(result.snapshotDir, WEIGHTS)).equals(fixtureFiles.get(WEIGHTS)!));
      assert.equal(cdn.fileRequests.length, 0, 'the CDN only serves /cdn/ paths');
    });
  });
  assert.equal(cdnAuth.length, EXPECTED_FILES.length);
  assert.deepEqual(cdnAuth, EXPECTED_FILES.map(() => undefined));
});

test('a second download of a file that is being fetched is refused instead of interleaving bytes', async () => {
  const stalling = await startHub({ stallWeightsAfter: 50_000 });
  const cache = freshCache();
  try {
    const controller = new AbortController();
    let stalled: () => void = () => undefined;
    const reached = new Promise<void>((resolve) => (stalled = resolve));
    const first = downloadModel(REPO, {
      endpoint: stalling.endpoint,
      cacheDir: cache,
      env: {},
      signal: controller.signal,
      onProgress: (p) => {
        if (p.file === WEIGHTS && p.bytesDone > 0) stalled();
      },
    });
    await reached;
    await new Promise((resolve) => setTimeout(resolve, 200));
    await assert.rejects(downloadModel(REPO, { endpoint: stalling.endpoint, cacheDir: cache, env: {} }), (e: unknown) => {
      assert.ok(e instanceof KvlensError);
      assert.match(e.message, new RegExp(`^${WEIGHTS.replace('.', '\\.')}: this process is already writing it; two downloads of one file would interleave their bytes \\(lock .*\\.incomplete\\.lock\\)`));
      return true;
    });
    controller.abort();
    await assert.rejects(first, /cancelled/);
    assert.deepEqual(readdirSync(join(repoDir(cache), 'blobs')).filter((name) => name.endsWith('.lock')), [], 'the lock is released on cancel');
  } finally {
    await stalling.close();
  }
});

// Activates the extension against a stand-in `vscode` host and drives its commands end to end with the
// fake engine process: results saved, panel fed, CodeLens/hover/decorations computed, errors reported.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createHost, fakeDocument, installVscodeStub, Uri, Position, type CodeLens, type MarkdownString } from './extension-host-stub';

const repo = resolve(__dirname, '..', '..');
const fakeEngine = join(repo, 'test', 'fixtures', 'extension', 'fakeEngine.js');
const workspace = mkdtempSync(join(tmpdir(), 'kvlens-host-'));
const settings: Record<string, unknown> = {};
const host = createHost(workspace, settings);
const subscriptions: Array<{ dispose(): unknown }> = [];

function writeLines(path: string, count: number): void {
  mkdirSync(join(workspace, path, '..'), { recursive: true });
  writeFileSync(join(workspace, path), Array.from({ length: count }, (_, i) => `// line ${i + 1}`).join('\n'));
}

async function run(command: string, ...args: unknown[]): Promise<unknown> {
  const handler = host.commands.get(command);
  assert.ok(handler, `${command} is not registered`);
  return handler(...args);
}

before(async () => {
  writeLines('src/db/pool.ts', 300);
  writeLines('src/server/router.ts', 120);
  installVscodeStub(host.vscode);
  const extension = await import('../../src/extension/extension');
  const state = new Map<string, unknown>();
  extension.activate({
    extensionUri: Uri.file(repo),
    asAbsolutePath: (p: string) => (p === join('dist', 'engineProcess.js') ? fakeEngine : join(repo, p)),
    subscriptions,
    globalState: { get: (k: string) => state.get(k), update: (k: string, v: unknown) => (state.set(k, v), Promise.resolve()) },
  } as never);
});

after(() => {
  for (const s of subscriptions.splice(0)) s.dispose();
  rmSync(workspace, { recursive: true, force: true });
});

test('activation registers the commands and an idle status bar item', () => {
  for (const id of ['kvlens.profileWorkspace', 'kvlens.profileCurrentFile', 'kvlens.profileSelection', 'kvlens.compareMethods', 'kvlens.selectModel', 'kvlens.showResults', 'kvlens.exportResults', 'kvlens.cancelRun', 'kvlens.clearDecorations']) {
    assert.ok(host.commands.has(id), id);
  }
  assert.equal(host.status.text, '$(pulse) kvlens: default model · auto');
  assert.equal(host.codeLensProviders.length, 1);
});

test('profiling the workspace saves results under .kvlens and opens the panel with them', async () => {
  await run('kvlens.profileWorkspace');
  assert.deepEqual(host.messages.filter((m) => m.level === 'error'), []);
  const saved = readdirSync(join(workspace, '.kvlens'));
  assert.equal(saved.length, 1);
  assert.match(saved[0], /^results-\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d-\d{3}Z-workspace\.json$/);
  assert.equal(host.panels.length, 1);
  const { webview } = host.panels[0];
  assert.equal(host.panels[0].viewType, 'kvlens.results');
  assert.match(webview.html, /script-src 'nonce-[A-Za-z0-9]{32}'/);
  assert.match(webview.html, /<script nonce="[A-Za-z0-9]{32}" src="https:\/\/webview\.test[^"]*dist\/webview\/main\.js"><\/script>/);
  const options = webview.options as { enableScripts: boolean; localResourceRoots: Uri[] };
  assert.equal(options.enableScripts, true);
  assert.deepEqual(options.localResourceRoots.map((u) => u.fsPath), [join(repo, 'dist', 'webview'), join(repo, 'media')]);
  // Nothing is posted before the webview says it is ready.
  assert.deepEqual(webview.posted, []);
  webview.receive({ type: 'ready' });
  const results = webview.posted.at(-1) as unknown as { type: string; results: { rows: unknown[] }; resultsPath: string };
  assert.equal(results.type, 'results');
  assert.equal(results.results.rows.length, 36);
  assert.equal(results.resultsPath, join(workspace, '.kvlens', saved[0]));
  assert.equal(host.status.text, '$(pulse) kvlens: default model · auto');
});

test('malformed panel messages are dropped and logged; panel logs reach the output channel', () => {
  const { webview } = host.panels[0];
  webview.receive({ type: 'bogus' });
  webview.receive({ type: 'openSource', file: '../outside.ts', line: 1 });
  webview.receive({ type: 'log', level: 'warn', message: 'message dropped: x' });
  assert.ok(host.logLines.includes('warn results panel: dropped a malformed message: unknown message type "bogus"'), host.logLines.join('\n'));
  assert.ok(host.logLines.some((l) => l.startsWith('warn results panel: dropped a malformed message: openSource message: file must stay inside the workspace')));
  assert.ok(host.logLines.includes('warn results panel: message dropped: x'));
});

test('CodeLens and hover above profiled sites; a lens click focuses the sample in the panel', async () => {
  const lenses = host.codeLensProviders[0].provideCodeLenses(fakeDocument(join(workspace, 'src/db/pool.ts'), 300)) as CodeLens[];
  assert.deepEqual(lenses.map((l) => l.range.start.line), [8, 120, 240]);
  const lens = lenses[1];
  assert.equal(lens.command?.title, 'kvlens: full ✓ · kivi:bits=2 ✗ · streamingllm:ratio=0.5 ✗ · snapkv:ratio=0.5 ✓');
  assert.equal(lens.command?.command, 'kvlens.showResults');
  assert.deepEqual(lens.command?.arguments, [{ task: 'needle', sampleId: 'needle-2048-d50' }]);
  assert.deepEqual(host.codeLensProviders[0].provideCodeLenses(fakeDocument(join(workspace, 'src/other.ts'), 10)), []);

  const hover = host.hoverProviders[0].provideHover(fakeDocument(join(workspace, 'src/db/pool.ts'), 300), new Position(120, 3));
  assert.ok(hover);
  const markdown = (hover.contents as MarkdownString).value;
  assert.match(markdown, /\| kivi:bits=2 \| needle \| 2048 \| 0\.00 \| UNKNOWN \| QUARTZ-5521 \|/);
  assert.equal((hover.contents as MarkdownString).isTrusted, false);
  assert.equal(host.hoverProviders[0].provideHover(fakeDocument(join(workspace, 'src/db/pool.ts'), 300), new Position(121, 0)), undefined);

  await run(lens.command!.command, ...(lens.command!.arguments ?? []));
  const posted = host.panels[0].webview.posted.at(-1) as unknown as { type: string; focus: unknown };
  assert.equal(posted.type, 'results');
  assert.deepEqual(posted.focus, { task: 'needle', sampleId: 'needle-2048-d50' });

  // With the panel hidden behind an editor its page is discarded; the click must still land once it reloads.
  host.panels[0].hide();
  const before = host.panels[0].webview.posted.length;
  await run(lens.command!.command, ...(lens.command!.arguments ?? []));
  assert.equal(host.panels[0].webview.posted.length, before, 'nothing is posted to a page that is reloading');
  host.panels[0].webview.receive({ type: 'ready' });
  const afterReload = host.panels[0].webview.posted.at(-1) as unknown as { type: string; focus: unknown };
  assert.equal(afterReload.type, 'results');
  assert.deepEqual(afterReload.focus, { task: 'needle', sampleId: 'needle-2048-d50' });
});

test('the retained-context map decorates kept and evicted lines of visible editors, and clears', async () => {
  host.addEditor(fakeDocument(join(workspace, 'src/server/router.ts'), 100));
  host.panels[0].webview.receive({ type: 'showRetained', method: 'streamingllm:ratio=0.5' });
  const ranges = host.decorations.map((d) => d.ranges.map((r) => [r.range.start.line, r.range.end.line]));
  // Kept [0,15] and [90,110] (clipped to the file's 100 lines), none partly kept, evicted [16,89].
  assert.deepEqual(ranges, [[[0, 15], [90, 99]], [], [[16, 89]]]);
  await run('kvlens.clearDecorations');
  assert.deepEqual(host.decorations.map((d) => d.ranges.length), [0, 0, 0]);
  assert.deepEqual(host.codeLensProviders[0].provideCodeLenses(fakeDocument(join(workspace, 'src/db/pool.ts'), 300)), []);
});

test('an engine crash is reported, and the next run starts a fresh engine', async () => {
  settings.model = 'crash';
  await run('kvlens.profileWorkspace');
  const error = host.messages.filter((m) => m.level === 'error').at(-1);
  assert.match(error?.text ?? '', /^kvlens: .*fakeEngine\.js: the engine process exited with code 3 before it answered; last engine output: fatal: onnxruntime could not allocate 2 GiB/);
  settings.model = 'default';
  await run('kvlens.profileWorkspace');
  assert.ok(host.logLines.some((l) => l.startsWith('warn the engine crashed last time (the engine process exited with code 3')), host.logLines.join('\n'));
  assert.equal(readdirSync(join(workspace, '.kvlens')).length, 2);
});

test('a run that will not fit is refused up front with the memory estimate, and nothing is written', async () => {
  const before = readdirSync(join(workspace, '.kvlens')).length;
  settings.model = 'huge';
  await run('kvlens.profileWorkspace');
  settings.model = 'default';
  const error = host.messages.filter((m) => m.level === 'error').at(-1);
  assert.match(error?.text ?? '', /^kvlens: this run will not fit in memory: it needs about 85\.7 GiB \(weights 83\.8 GiB/);
  assert.equal(readdirSync(join(workspace, '.kvlens')).length, before);
});

test('bad settings warn with the setting name and the run uses defaults', async () => {
  settings.samples = 0;
  settings.executionProvider = 'tpu';
  const before = host.messages.length;
  await run('kvlens.profileWorkspace');
  const warnings = host.messages.slice(before).filter((m) => m.level === 'warning');
  assert.match(warnings[0]?.text ?? '', /^kvlens: kvlens\.samples: expected an integer from 1 to 1000, found 0; using the default \(and 1 more in the kvlens output\)$/);
  assert.ok(host.logLines.includes('warn kvlens.executionProvider: expected one of auto, cuda, webgpu, cpu, found "tpu"; using the default'));
  const request = host.logLines.filter((l) => l.startsWith('info run: ')).at(-1)!;
  assert.equal(JSON.parse(request.slice('info run: '.length)).samples, 2);
  delete settings.samples;
  delete settings.executionProvider;
});

test('Compare Methods runs full plus the picked methods and remembers the pick', async () => {
  host.quickPickAnswers.push((items) => items.filter((i) => i.label === 'kivi:bits=4' || i.label === 'snapkv:ratio=0.25'));
  await run('kvlens.compareMethods');
  const request = JSON.parse(host.logLines.filter((l) => l.startsWith('info run: ')).at(-1)!.slice('info run: '.length));
  assert.deepEqual(request.methods, ['full', 'kivi:bits=4', 'snapkv:ratio=0.25']);
  // The next time, the remembered methods come pre-selected, next to the engine's own registry.
  let offered: Array<{ label: string; picked?: boolean; description?: string }> = [];
  host.quickPickAnswers.push((items) => {
    offered = items;
    return undefined;
  });
  await run('kvlens.compareMethods');
  assert.deepEqual(offered.filter((i) => i.picked).map((i) => i.label), ['kivi:bits=4', 'snapkv:ratio=0.25']);
  assert.equal(offered.find((i) => i.label === 'tova')?.description, 'drops the token the current query attends to least');
  assert.equal(offered.find((i) => i.label === 'kivi:bits=2')?.description, 'per-channel keys, per-token values');
  assert.equal(offered.find((i) => i.label === 'full'), undefined);
});

test('cancel with no run going says so', async () => {
  await run('kvlens.cancelRun');
  assert.equal(host.messages.at(-1)?.text, 'kvlens: no run is going.');
});

test('Cancel Run stops a running profile and keeps the rows it finished', async () => {
  settings.model = 'slow';
  const running = run('kvlens.profileWorkspace');
  const started = Date.now();
  while (!host.status.text.includes('kvlens 2/1000') && Date.now() - started < 5000) await new Promise((r) => setTimeout(r, 10));
  assert.match(host.status.text, /^\$\(sync~spin\) kvlens \d+\/1000 · 1 min 40 s left$/);
  assert.equal(host.status.command, 'kvlens.cancelRun');
  await run('kvlens.cancelRun');
  await running;
  assert.equal(host.messages.at(-1)?.text, 'kvlens: run cancelled; showing the 4 rows it finished.');
  assert.equal(host.status.command, 'kvlens.showResults');
  settings.model = 'default';
});

test('a panel restored after a window reload gets the page and the current results', async () => {
  const serializer = host.serializers.get('kvlens.results');
  assert.ok(serializer, 'no serializer registered for kvlens.results');
  const panel = host.vscode.window.createWebviewPanel('kvlens.results', 'kvlens results', 1, {});
  const record = host.panels.at(-1)!;
  await serializer.deserializeWebviewPanel(panel, { resultsPath: '/elsewhere/old.json' });
  assert.match(record.webview.html, /Content-Security-Policy/);
  assert.equal((record.webview.options as { enableScripts: boolean }).enableScripts, true);
  record.webview.receive({ type: 'ready' });
  const posted = record.webview.posted.at(-1) as unknown as { type: string; results: { rows: unknown[] }; resultsPath: string };
  assert.equal(posted.type, 'results');
  // The host already had newer results, so the path the old panel remembered is not reloaded.
  assert.notEqual(posted.resultsPath, '/elsewhere/old.json');
  assert.ok(posted.results.rows.length > 0);
});

// The bundled extension (dist/extension.js, what VS Code loads) activates on its own: every import resolved
// by the bundle, `vscode` and onnxruntime-node left external, and the declared commands registered.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { spawnSync } from 'node:child_process';
import { createHost, installVscodeStub, Uri } from './extension-host-stub';

const repo = resolve(__dirname, '..', '..');
const bundle = join(repo, 'dist', 'extension.js');

test('dist/extension.js activates and registers every declared command', () => {
  if (!existsSync(bundle)) {
    const build = spawnSync(process.execPath, ['scripts/build.mjs'], { cwd: repo, stdio: 'inherit' });
    assert.equal(build.status, 0, 'build failed');
  }
  const text = readFileSync(bundle, 'utf8');
  assert.match(text, /require\("vscode"\)/);
  assert.doesNotMatch(text, /require\("\.\.?\//, 'the bundle must not require relative files');
  const workspace = mkdtempSync(join(tmpdir(), 'kvlens-bundle-'));
  const host = createHost(workspace, {});
  installVscodeStub(host.vscode);
  const subscriptions: Array<{ dispose(): unknown }> = [];
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const extension = require(bundle) as { activate(context: unknown): void; deactivate(): void };
    extension.activate({
      extensionUri: Uri.file(repo),
      asAbsolutePath: (p: string) => join(repo, p),
      subscriptions,
      globalState: { get: () => undefined, update: () => Promise.resolve() },
    });
    const pkg = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8'));
    const declared = (pkg.contributes.commands as Array<{ command: string }>).map((c) => c.command).sort();
    assert.deepEqual([...host.commands.keys()].sort(), declared);
    assert.equal(pkg.main, './dist/extension.js');
  } finally {
    for (const s of subscriptions) s.dispose();
    rmSync(workspace, { recursive: true, force: true });
  }
});

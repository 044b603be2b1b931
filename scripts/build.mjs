// Bundles the CLI, the engine child process, the extension and the webview with esbuild.
import { build } from 'esbuild';
import { existsSync } from 'node:fs';

const common = { bundle: true, sourcemap: true, logLevel: 'warning', target: 'node20' };
const external = ['vscode', 'onnxruntime-node'];
const entries = [
  { entryPoints: ['src/engine/cli.ts'], outfile: 'dist/cli.js', platform: 'node', format: 'cjs', external },
  { entryPoints: ['src/engine/host/engineProcess.ts'], outfile: 'dist/engineProcess.js', platform: 'node', format: 'cjs', external },
  { entryPoints: ['src/extension/extension.ts'], outfile: 'dist/extension.js', platform: 'node', format: 'cjs', external },
  { entryPoints: ['webview/main.ts'], outfile: 'dist/webview/main.js', platform: 'browser', format: 'iife', target: 'es2022' },
];
for (const entry of entries) {
  if (!existsSync(entry.entryPoints[0])) continue;
  await build({ ...common, ...entry });
}

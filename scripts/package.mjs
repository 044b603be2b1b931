// Builds one .vsix per platform, each shipping only that platform's onnxruntime binaries and the default model.
// Usage: node scripts/package.mjs [target ...]   (default: every target below)
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync, rmSync, statSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';

const TARGETS = {
  'linux-x64': 'linux/x64',
  'linux-arm64': 'linux/arm64',
  'darwin-arm64': 'darwin/arm64',
  'win32-x64': 'win32/x64',
  'win32-arm64': 'win32/arm64',
};
const requested = process.argv.slice(2);
const targets = requested.length > 0 ? requested : Object.keys(TARGETS);
for (const target of targets) {
  if (!TARGETS[target]) throw new Error(`unknown target ${target} (known: ${Object.keys(TARGETS).join(', ')})`);
}

execFileSync(process.execPath, ['scripts/build.mjs'], { stdio: 'inherit' });
const base = readFileSync('.vscodeignore', 'utf8');
const version = JSON.parse(readFileSync('package.json', 'utf8')).version;
mkdirSync('dist/vsix', { recursive: true });
for (const target of targets) {
  const ignoreFile = `.vscodeignore.${target}`;
  // Only this platform's native binding and runtime are let in.
  writeFileSync(ignoreFile, `${base.trimEnd()}\n!node_modules/onnxruntime-node/bin/napi-v6/${TARGETS[target]}/**\n`);
  const out = join('dist', 'vsix', `kvlens-${target}-${version}.vsix`);
  try {
    execFileSync('npx', ['vsce', 'package', '--target', target, '--ignoreFile', ignoreFile, '--out', out, '--allow-missing-repository', '--skip-license'], { stdio: 'inherit' });
  } finally {
    rmSync(ignoreFile, { force: true });
  }
  console.log(`${out}: ${(statSync(out).size / 1024 / 1024).toFixed(1)} MiB`);
}

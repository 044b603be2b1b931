import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, mkdirSync, copyFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const ROOT = join(__dirname, '..', '..');
const FIXTURE = join(ROOT, 'test', 'fixtures', 'models', 'qwen2-bias-untied-f32');

function kvlens(...args: string[]) {
  const run = spawnSync(process.execPath, [join(ROOT, 'bin', 'kvlens.js'), ...args], { encoding: 'utf8', timeout: 120_000 });
  return { code: run.status, stdout: run.stdout, stderr: run.stderr };
}

test('every command answers --help with its usage', () => {
  for (const command of ['info', 'generate', 'logits', 'methods', 'tasks', 'bench', 'merge', 'export']) {
    const run = kvlens(command, '--help');
    assert.equal(run.code, 0, command);
    assert.match(run.stdout, new RegExp(`usage: kvlens ${command}`));
  }
});

test('bad input exits non-zero with one line naming the problem', () => {
  const cases: [string[], RegExp][] = [
    [['frobnicate'], /unknown command "frobnicate"/],
    [['info', '--model', '/nonexistent/model'], /nonexistent\/model/],
    [['info', '--model', FIXTURE, '--provider', 'tpu'], /--provider must be auto, cuda, webgpu or cpu/],
    [['generate', '--model', FIXTURE], /needs --prompt/],
    [['logits', '--model', FIXTURE, '--ids', '1,2,99999'], /outside the vocabulary/],
    [['bench', '.', '--methods', 'full,snapkv:ratio=1.5'], /ratio/],
    [['bench', '.', '--methods', 'nosuchmethod'], /unknown method/],
    [['bench', '.', '--lengths', 'lots'], /length must look like/],
    [['bench', '.', '--shard', '3/2'], /--shard/],
    [['bench', '.', '--no-such-flag'], /no-such-flag/],
  ];
  for (const [args, pattern] of cases) {
    const run = kvlens(...args);
    assert.notEqual(run.code, 0, args.join(' '));
    const lines = run.stderr.trim().split('\n').filter((l) => l.startsWith('kvlens'));
    assert.equal(lines.length, 1, `${args.join(' ')}: ${run.stderr}`);
    assert.match(lines[0], pattern, args.join(' '));
  }
});

test('methods --json lists every method with name, family, params and paper', () => {
  const run = kvlens('methods', '--json');
  assert.equal(run.code, 0);
  const methods = JSON.parse(run.stdout) as { name: string; family: string; params: unknown[]; paper: unknown }[];
  const names = methods.map((m) => m.name);
  for (const expected of ['full', 'streamingllm', 'h2o', 'snapkv', 'pyramidkv', 'tova', 'adakv', 'infllm', 'kivi', 'flexgen', 'int8', 'fp8', 'llmlingua', 'random', 'knorm']) {
    assert.ok(names.includes(expected), expected);
  }
  for (const m of methods) {
    assert.equal(typeof m.family, 'string');
    assert.ok(Array.isArray(m.params));
    assert.ok('paper' in m);
  }
});

test('logits on a fixture checkpoint match the logits transformers computed for it', () => {
  const reference = JSON.parse(readFileSync(join(FIXTURE, 'reference.json'), 'utf8')) as { ids: number[]; vocabSize: number; prefill: { logits: number[] } };
  const ids = reference.ids.slice(0, 12);
  const run = kvlens('logits', '--model', FIXTURE, '--ids', ids.join(','), '--json', '--provider', 'cpu');
  assert.equal(run.code, 0, run.stderr);
  const out = JSON.parse(run.stdout) as { logits: number[][]; executionProvider: string };
  assert.equal(out.executionProvider, 'cpu');
  let maxDiff = 0;
  ids.forEach((_, i) => {
    for (let v = 0; v < reference.vocabSize; v++) maxDiff = Math.max(maxDiff, Math.abs(out.logits[i][v] - reference.prefill.logits[i * reference.vocabSize + v]));
  });
  assert.ok(maxDiff <= 1e-4, `max |Δ| ${maxDiff}`);
});

test('info and generate report the model, the prompt length and the provider', () => {
  const info = kvlens('info', '--model', FIXTURE, '--json');
  assert.equal(info.code, 0, info.stderr);
  const parsed = JSON.parse(info.stdout);
  assert.equal(parsed.hfArchitecture, 'Qwen2ForCausalLM');
  assert.ok(parsed.parameters > 0);
  assert.ok(['cpu', 'cuda', 'webgpu'].includes(parsed.executionProvider));
  const generated = kvlens('generate', '--model', FIXTURE, '--prompt', 'def add(a, b):', '--max-new-tokens', '5', '--json');
  assert.equal(generated.code, 0, generated.stderr);
  const g = JSON.parse(generated.stdout);
  assert.ok(g.promptTokens > 0);
  assert.ok(g.generatedTokens >= 1 && g.generatedTokens <= 5);
  assert.equal(typeof g.prefillMs, 'number');
});

test('bench on a folder writes results, CSV and Markdown; merge and export read them back', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kvlens-cli-'));
  const workspace = join(dir, 'ws');
  mkdirSync(workspace);
  const source = join(ROOT, 'test', 'fixtures', 'codebase');
  // A flat copy of a few fixture files is a small real workspace.
  const stack = [source];
  let copied = 0;
  while (stack.length > 0 && copied < 4) {
    const current = stack.pop()!;
    for (const entry of readdirSync(current, { withFileTypes: true })) {
      if (entry.isDirectory()) stack.push(join(current, entry.name));
      else if (/\.(ts|js|py)$/.test(entry.name) && copied < 4) {
        copyFileSync(join(current, entry.name), join(workspace, entry.name));
        copied++;
      }
    }
  }
  writeFileSync(join(workspace, 'blob.bin'), Buffer.from([0, 1, 2, 3, 0, 255]));
  const out = join(dir, 'r.json');
  const run = kvlens('bench', workspace, '--model', FIXTURE, '--methods', 'full,int8,streamingllm:ratio=0.5', '--tasks', 'needle', '--lengths', '128',
    '--depths', '0.5', '--samples', '1', '--out', out, '--csv', join(dir, 'r.csv'), '--md', join(dir, 'r.md'), '--max-new-tokens', '3');
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stdout, /\| streamingllm:ratio=0.5 \|/);
  const results = JSON.parse(readFileSync(out, 'utf8'));
  assert.equal(results.rows.length, 3);
  assert.equal(results.scan.skipped.binary ?? Object.values(results.scan.skipped).reduce((a: number, b) => a + (b as number), 0), 1);
  assert.equal(readFileSync(join(dir, 'r.csv'), 'utf8').trim().split('\n').length, 4);
  assert.match(readFileSync(join(dir, 'r.md'), 'utf8'), /# kvlens results/);
  const merged = kvlens('merge', out, '--out', join(dir, 'm.json'));
  assert.equal(merged.code, 0, merged.stderr);
  const exported = kvlens('export', join(dir, 'm.json'), '--csv', join(dir, 'm.csv'));
  assert.equal(exported.code, 0, exported.stderr);
  assert.equal(readFileSync(join(dir, 'm.csv'), 'utf8'), readFileSync(join(dir, 'r.csv'), 'utf8'));
});

test('Ctrl-C during bench cancels: exit 130, the results file says cancelled and keeps the finished rows', async () => {
  const { spawn } = await import('node:child_process');
  const dir = mkdtempSync(join(tmpdir(), 'kvlens-sigint-'));
  const out = join(dir, 'r.json');
  const child = spawn(process.execPath, [join(ROOT, 'bin', 'kvlens.js'), 'bench', join(ROOT, 'test', 'fixtures', 'codebase'), '--model', FIXTURE,
    '--methods', 'full,int8', '--tasks', 'needle', '--lengths', '256', '--depths', '0,0.5,1', '--samples', '100', '--out', out, '--max-new-tokens', '3']);
  let stderr = '';
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  await new Promise<void>((resolve) => {
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      // Interrupt shortly after the sweep starts, once a few samples have been saved.
      if (/\b0\/\d+ needle/.test(stderr)) setTimeout(resolve, 700);
    });
  });
  child.kill('SIGINT');
  assert.equal(await exited, 130, stderr.slice(-500));
  assert.match(stderr, /cancelling: finishing the current step/);
  const results = JSON.parse(readFileSync(out, 'utf8'));
  assert.equal(results.status, 'cancelled');
  assert.ok(results.rows.length > 0 && results.rows.length < 100 * 3 * 2, `${results.rows.length} rows`);
});

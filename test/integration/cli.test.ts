import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, mkdirSync, copyFileSync, readdirSync, existsSync } from 'node:fs';
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
  // Sweep options are refused before the model loads: with a model that does not exist, the model error would come first.
  const noModel = ['--model', '/nonexistent/model'];
  const sweep: [string[], RegExp][] = [
    [['--samples', '99999999999999999999'], /--samples must be an integer in 1\.\.10000, got 99999999999999999999/],
    [['--samples', '10001'], /--samples must be an integer in 1\.\.10000/],
    [['--seed', '4294967296'], /--seed must be an integer in 0\.\.4294967295/],
    [['--methods', 'full,kivi,kivi:bits=2'], /--methods lists "kivi:bits=2" twice \(as "kivi" and "kivi:bits=2"\): list each method once/],
    [['--methods', 'int8,full,int8'], /--methods lists "int8" twice: list each method once/],
    [['--methods', ''], /--methods is empty \(got ""\)/],
    [['--methods', ' , '], /--methods is empty/],
    [['--depths', ','], /--depths is empty \(got ","\)/],
    [['--lengths', ''], /--lengths is empty/],
    [['--tasks', ''], /--tasks is empty/],
    [['--tasks', 'needle,bogus'], /unknown task "bogus" in --tasks \(known: needle, /],
    [['--out', 'same.json', '--md', 'same.json'], /same\.json: --out and --md name the same file/],
    [['--csv', 'r.csv', '--md', './r.csv'], /r\.csv: --csv and --md name the same file/],
    // An existing file is never replaced without --force, and that is known before the model loads.
    [['--out', 'package.json'], /package\.json: --out would replace a file that is not a kvlens results file: pass --force to replace it/],
    [['--out', 'fresh-results.json', '--md', 'README.md'], /README\.md: --md would replace a file that is not a kvlens results file/],
    [['--import', 'rows.jsonl', '--ruler-task', 'niah_nothing'], /--ruler-task: unknown RULER task "niah_nothing" \(known: niah_single_1, /],
  ];
  for (const [args, pattern] of sweep) cases.push([['bench', '.', ...noModel, ...args], pattern]);
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
  // Run again onto the same files: refused, naming the file, unless --force.
  const again = kvlens('merge', out, '--out', join(dir, 'm.json'));
  assert.notEqual(again.code, 0);
  assert.match(again.stderr, /m\.json: --out would replace a kvlens results file \(status complete\): pass --force/);
  assert.equal(kvlens('merge', out, '--out', join(dir, 'm.json'), '--force').code, 0);
  assert.match(kvlens('export', join(dir, 'm.json'), '--csv', join(dir, 'm.csv')).stderr, /m\.csv: --csv would replace/);
  assert.match(kvlens('merge', out, '--out', out).stderr, /--out names one of the files being merged/);
  assert.deepEqual(readdirSync(dir).filter((name) => /lock|tmp/.test(name)), [], 'no lock or temporary file left');
});

test("bench --import prints and exports the paper's table of LongBench categories and needle", () => {
  const dir = mkdtempSync(join(tmpdir(), 'kvlens-cli-import-'));
  const hotpot = { _id: 'h1', dataset: 'hotpotqa', context: 'Passage 1: Ada wrote the first program.', input: 'Who wrote the first program?', answers: ['Ada'], length: 7, all_classes: null, language: 'en' };
  const ruler = { index: 0, input: 'The value of X is 12. What is X?', outputs: ['12'], length: 12, answer_prefix: ' Answer:' };
  writeFileSync(join(dir, 'hotpotqa.jsonl'), `${JSON.stringify(hotpot)}\n`);
  writeFileSync(join(dir, 'rows.jsonl'), `${JSON.stringify(ruler)}\n`);
  const out = join(dir, 'r.json');
  const run = kvlens('bench', dir, '--model', FIXTURE, '--methods', 'full,int8', '--import', `${join(dir, 'hotpotqa.jsonl')},${join(dir, 'rows.jsonl')}`,
    '--ruler-task', 'vt', '--lengths', '256', '--max-new-tokens', '2', '--out', out, '--paper-csv', join(dir, 'paper.csv'));
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stdout, /LongBench categories and needle \(the paper's layout\):\n\n\| method \| Multi-Doc QA \| Average \|\n\|---\|---:\|---:\|\n\| full \| /);
  const rows = JSON.parse(readFileSync(out, 'utf8')).rows as { task: string; metric: string }[];
  assert.deepEqual([...new Set(rows.map((r) => `${r.task} ${r.metric}`))].sort(), ['longbench/hotpotqa qa_f1_score', 'ruler/vt string_match_all']);
  assert.match(readFileSync(join(dir, 'paper.csv'), 'utf8'), /^method,Multi-Doc QA,Average\nfull,[\d.]+,[\d.]+\nint8,/);
  const exported = kvlens('export', out, '--paper-csv', join(dir, 'again.csv'));
  assert.equal(exported.code, 0, exported.stderr);
  assert.equal(readFileSync(join(dir, 'again.csv'), 'utf8'), readFileSync(join(dir, 'paper.csv'), 'utf8'));
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

/**
 * Starts a long bench in a child process, waits until its results file holds finished rows (checking that it
 * says running meanwhile), sends `signal` and returns the exit code, stderr and the file as it was left.
 */
async function benchUntilRowsThenSignal(signal: NodeJS.Signals, whileRunning?: (out: string, pid: number) => void) {
  const { spawn } = await import('node:child_process');
  const { resultsSchemaErrors } = await import('../../src/engine/bench/validate');
  const dir = mkdtempSync(join(tmpdir(), `kvlens-${signal.toLowerCase()}-`));
  const out = join(dir, 'r.json');
  const child = spawn(process.execPath, [join(ROOT, 'bin', 'kvlens.js'), 'bench', join(ROOT, 'test', 'fixtures', 'codebase'), '--model', FIXTURE,
    '--methods', 'full,int8', '--tasks', 'needle', '--lengths', '256', '--depths', '0,0.5,1', '--samples', '100', '--out', out, '--max-new-tokens', '3']);
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const deadline = Date.now() + 90_000;
  let midRun: { status: string; rows: unknown[]; progress?: { samples: number; samplesDone: number } } | null = null;
  while (Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    if (child.exitCode !== null) break;
    let parsed;
    try {
      parsed = JSON.parse(readFileSync(out, 'utf8'));
    } catch {
      continue; // not written yet
    }
    if (parsed.rows.length >= 4) {
      midRun = parsed;
      break;
    }
  }
  assert.ok(midRun, `the run saved no rows in time: ${stderr.slice(-500)}`);
  assert.equal(midRun.status, 'running', 'a file saved mid-run says running');
  assert.deepEqual(resultsSchemaErrors(midRun), []);
  assert.equal(midRun.progress?.samples, 300);
  whileRunning?.(out, child.pid!);
  child.kill(signal);
  const code = await exited;
  return { code, stderr, out, dir, pid: child.pid!, onDisk: JSON.parse(readFileSync(out, 'utf8')), resultsSchemaErrors };
}

for (const [signal, exitCode] of [['SIGTERM', 143], ['SIGHUP', 129]] as const) {
  test(`${signal} during bench ends it like Ctrl-C: exit ${exitCode}, the file says cancelled, keeps the finished rows and is schema-valid`, async () => {
    const run = await benchUntilRowsThenSignal(signal);
    assert.equal(run.code, exitCode, run.stderr.slice(-500));
    assert.match(run.stderr, new RegExp(`cancelling: finishing the current step.*${signal}`));
    assert.equal(run.onDisk.status, 'cancelled');
    assert.deepEqual(run.resultsSchemaErrors(run.onDisk), []);
    const { samplesDone, samples } = run.onDisk.progress;
    assert.equal(samples, 300);
    assert.ok(samplesDone >= 2 && samplesDone < samples, `${samplesDone} samples done`);
    // Every finished sample's two rows, plus at most the first method of the interrupted one.
    assert.ok(run.onDisk.rows.length >= 2 * samplesDone && run.onDisk.rows.length <= 2 * samplesDone + 1, `${run.onDisk.rows.length} rows`);
    assert.equal(run.onDisk.rows.filter((r: { error: string | null }) => r.error !== null).length, 0);
    assert.match(run.onDisk.log.at(-1), new RegExp(`cancelled after ${run.onDisk.rows.length} rows \\(${samplesDone} of 300 samples finished\\)`));
    assert.deepEqual(readdirSync(run.dir), ['r.json'], 'no temporary file left behind');
  });
}

const SHORT_BENCH = [join(ROOT, 'test', 'fixtures', 'codebase'), '--model', FIXTURE, '--methods', 'full', '--tasks', 'needle', '--lengths', '128', '--depths', '0.5', '--samples', '1', '--max-new-tokens', '2'];

test('a shard killed with SIGKILL is left saying running; merge refuses it unless --allow-incomplete', async () => {
  // A second run on the same file while the first runs is refused, --force or not: their rows would interleave.
  const run = await benchUntilRowsThenSignal('SIGKILL', (out, pid) => {
    const second = kvlens('bench', ...SHORT_BENCH, '--out', out, '--force');
    assert.equal(second.code, 1);
    assert.match(second.stderr, new RegExp(`^kvlens bench: .*r\\.json: another process \\(pid ${pid}, started [^)]+\\) is writing it; two runs on one results file would interleave`));
  });
  assert.equal(run.code, null);
  assert.equal(run.onDisk.status, 'running');
  assert.deepEqual(run.resultsSchemaErrors(run.onDisk), []);
  assert.ok(run.onDisk.rows.length >= 4);
  const refused = kvlens('merge', run.out, '--out', join(run.dir, 'm.json'));
  assert.equal(refused.code, 1);
  assert.equal(refused.stderr.trim().split('\n').length, 1, refused.stderr);
  assert.match(refused.stderr, new RegExp(`^kvlens merge: ${run.out.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: status is running .*--allow-incomplete`));
  assert.equal(existsSync(join(run.dir, 'm.json')), false);
  const allowed = kvlens('merge', run.out, '--out', join(run.dir, 'm.json'), '--allow-incomplete', '--json');
  assert.equal(allowed.code, 0, allowed.stderr);
  const merged = JSON.parse(readFileSync(join(run.dir, 'm.json'), 'utf8'));
  assert.equal(merged.status, 'cancelled');
  assert.equal(merged.rows.length, run.onDisk.rows.length);
  assert.match(merged.log.join('\n'), /status is running/);
  // The killed run's lock is left behind; a rerun recognises its owner is gone and takes it over, but does not
  // replace the file without --force.
  assert.equal(JSON.parse(readFileSync(`${run.out}.lock`, 'utf8')).pid, run.pid);
  const rerun = kvlens('bench', ...SHORT_BENCH, '--out', run.out);
  assert.match(rerun.stderr, new RegExp(`taking over the lock .*r\\.json\\.lock: its owner, pid ${run.pid} .* is no longer running`));
  assert.match(rerun.stderr, /r\.json: --out would replace a kvlens results file \(status running\): pass --force/);
  const forced = kvlens('bench', ...SHORT_BENCH, '--out', run.out, '--force');
  assert.equal(forced.code, 0, forced.stderr);
  assert.equal(JSON.parse(readFileSync(run.out, 'utf8')).status, 'complete');
  assert.equal(existsSync(`${run.out}.lock`), false);
});

// One sweep over a transformer and a recurrent model: one results file, rows keyed by model, the recurrent
// model running only `full` on its carried state, and merge, export and the summary keeping the models apart.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openModel } from '../../src/engine/session';
import { runBench } from '../../src/engine/bench/runner';
import { mergeResults } from '../../src/engine/bench/merge';
import { readResultsFile } from '../../src/engine/bench/validate';
import { toCsv, summaryMarkdown } from '../../src/engine/bench/export';
import { summarizeMethods } from '../../src/engine/bench/summary';
import type { BenchRequest } from '../../src/engine/host/protocol';

const ROOT = join(__dirname, '..', '..');
const LLAMA = join(ROOT, 'test', 'fixtures', 'models', 'llama-gqa-tied-rope3-f32');
const MAMBA = join(ROOT, 'test', 'fixtures', 'models', 'mamba-tied-f32');

function request(outFile: string, shard: BenchRequest['shard'] = null): BenchRequest {
  return {
    workspace: join(ROOT, 'test', 'fixtures', 'codebase'),
    model: `${LLAMA},${MAMBA}`,
    methods: ['full', 'streamingllm:ratio=0.5'],
    tasks: ['needle', 'completion'],
    lengths: [120],
    depths: [0, 1],
    samples: 1,
    seed: 5,
    provider: 'cpu',
    outFile,
    maxNewTokens: 3,
    shard,
  };
}

test('a sweep over a transformer and a recurrent model writes one file with both, keyed by model; shards merge', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kvlens-multi-'));
  const sessions = [await openModel(LLAMA), await openModel(MAMBA)];
  try {
    const whole = await runBench(sessions, request(join(dir, 'whole.json')));
    const read = readResultsFile(join(dir, 'whole.json'));
    assert.equal(read.status, 'complete');
    assert.deepEqual(read.config.models.map((m) => [m.label, m.architecture, m.methods]), [
      ['llama-gqa-tied-rope3-f32', 'LlamaForCausalLM', ['full', 'streamingllm:ratio=0.5']],
      ['mamba-tied-f32', 'MambaForCausalLM', ['full']],
    ]);
    const samples = new Set(read.rows.map((r) => r.sampleId));
    assert.ok(samples.size >= 2, 'needle and completion samples ran');
    const llama = read.rows.filter((r) => r.model === 'llama-gqa-tied-rope3-f32');
    const mamba = read.rows.filter((r) => r.model === 'mamba-tied-f32');
    assert.equal(llama.length + mamba.length, read.rows.length, 'every row names one of the two models');
    assert.equal(llama.length, samples.size * 2, 'the transformer ran both methods on every sample');
    assert.equal(mamba.length, samples.size, 'the recurrent model ran one row per sample');
    // The recurrent model is given no KV method: its rows are full, family recurrent, with its constant state.
    assert.ok(mamba.every((r) => r.method === 'full' && r.family === 'recurrent' && r.error === null));
    const state = mamba[0].recurrentStateBytes!;
    assert.ok(state > 0 && mamba.every((r) => r.recurrentStateBytes === state && r.bytesHeld === state));
    assert.ok(llama.every((r) => r.recurrentStateBytes === undefined && r.error === null));
    // Each model prefilled the sample itself (its own tokenizer, its own prefill).
    assert.ok(llama.every((r) => r.prefillMs > 0) && mamba.every((r) => r.prefillMs > 0));
    const byKey = new Set(read.rows.map((r) => `${r.model}/${r.sampleId}/${r.method}`));
    assert.equal(byKey.size, read.rows.length, 'model, sample and method key each row once');
    assert.deepEqual(
      summarizeMethods(read.rows, read.config.methods).map((s) => [s.method, s.family]),
      [
        ['llama-gqa-tied-rope3-f32 · full', 'baseline'],
        ['llama-gqa-tied-rope3-f32 · streamingllm:ratio=0.5', 'token-dropping'],
        ['mamba-tied-f32 · full', 'recurrent'],
      ],
    );
    assert.match(summaryMarkdown(read), /\| mamba-tied-f32 · full \| recurrent \| .* \| constant state \|/);
    assert.equal(toCsv(read).split('\n')[0].split(',')[0], 'model');

    const shards = [0, 1].map((index) => join(dir, `shard${index}.json`));
    for (const [index, path] of shards.entries()) await runBench(sessions, request(path, { index, count: 2 }));
    const merged = mergeResults(shards.map((path) => ({ path, results: readResultsFile(path) })));
    assert.equal(merged.status, 'complete');
    const key = (r: { model: string; sampleId: string; method: string }) => `${r.model}/${r.sampleId}/${r.method}`;
    assert.deepEqual(merged.rows.map(key).sort(), whole.rows.map(key).sort(), 'the two shards together are the whole sweep');
    assert.deepEqual(merged.config.models.map((m) => m.label), ['llama-gqa-tied-rope3-f32', 'mamba-tied-f32']);
    const twice = readResultsFile(shards[0]);
    assert.throws(
      () => mergeResults([{ path: 'a.json', results: { ...twice, config: { ...twice.config, shard: null } } }, { path: 'b.json', results: { ...twice, config: { ...twice.config, shard: null } } }]),
      /b\.json.*row (llama-gqa-tied-rope3-f32|mamba-tied-f32): .* already came from another file/,
    );
  } finally {
    for (const session of sessions) await session.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('two models that would share a label are refused before anything runs', async () => {
  const session = await openModel(MAMBA);
  try {
    await assert.rejects(runBench([session, session], request(join(tmpdir(), 'never-written.json'))), /two models of the sweep go by the label "mamba-tied-f32"/);
  } finally {
    await session.dispose();
  }
});

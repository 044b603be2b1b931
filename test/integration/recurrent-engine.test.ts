// Recurrent models through the engine: the session seam, `kvlens generate`/`logits`/`bench` on them, the
// results rows that record the carried state, and the refusals (KV methods, a KV cache, bad checkpoints).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openModel } from '../../src/engine/session';
import { runBench } from '../../src/engine/bench/runner';
import { estimateRun } from '../../src/engine/bench/estimate';
import { resultsSchemaErrors, readResultsFile } from '../../src/engine/bench/validate';
import { mergeResults } from '../../src/engine/bench/merge';
import { toCsv } from '../../src/engine/bench/export';
import { DenseLayerCache } from '../../src/engine/kv/cache';
import type { BenchRequest } from '../../src/engine/host/protocol';
import { loadRecurrentModel } from '../../src/engine/model/recurrent/load';
import { recurrentGreedy, recurrentPrefill } from '../../src/engine/model/recurrent/generate';

const ROOT = join(__dirname, '..', '..');
const MODELS = join(ROOT, 'test', 'fixtures', 'models');
const MAMBA = join(MODELS, 'mamba-tied-f32');
const MAMBA2 = join(MODELS, 'mamba2-groups-untied-f32');
const RWKV = join(MODELS, 'rwkv4-rescaled-f32');
const GEMMA = join(MODELS, 'recurrentgemma-window8-f32');
const CODEBASE = join(ROOT, 'test', 'fixtures', 'codebase');

function kvlens(...args: string[]) {
  const run = spawnSync(process.execPath, [join(ROOT, 'bin', 'kvlens.js'), ...args], { encoding: 'utf8', timeout: 120_000 });
  return { code: run.status, stdout: run.stdout, stderr: run.stderr };
}

function copyFixture(source: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'kvlens-recurrent-'));
  for (const name of readdirSync(source)) copyFileSync(join(source, name), join(dir, name));
  return dir;
}

function request(model: string, outFile: string | null, extra: Partial<BenchRequest> = {}): BenchRequest {
  return {
    workspace: CODEBASE,
    model,
    methods: ['full'],
    tasks: ['needle', 'completion'],
    lengths: [200],
    depths: [0, 1],
    samples: 1,
    seed: 3,
    provider: 'cpu',
    outFile,
    maxNewTokens: 4,
    ...extra,
  };
}

test('openModel dispatches a recurrent folder to the recurrent forward; its KV-cache face runs whole sequences only', async () => {
  const session = await openModel(MAMBA);
  assert.ok(session.recurrent, 'a Mamba folder opens with its recurrent forward');
  assert.equal(session.model.config.hfArchitecture, 'MambaForCausalLM');
  assert.equal(session.model.config.numKvHeads, 0, 'no KV heads, so no KV bytes per token');
  assert.equal(session.memoryEstimate.kvBytes, session.recurrent.initialState().bytes(), 'the estimate holds the carried state where a KV cache would be');
  const expected = JSON.parse(readFileSync(join(MAMBA, 'recurrent-reference.json'), 'utf8')) as { ids: number[]; logits: number[] };
  const empty = Array.from({ length: session.model.config.numLayers }, () => new DenseLayerCache(0, 0, 1).view());
  const out = await session.forward.forward({ tokens: expected.ids, positions: expected.ids.map((_, i) => i), past: empty, logits: 'all' });
  let diff = 0;
  for (let i = 0; i < out.logits.length; i++) diff = Math.max(diff, Math.abs(out.logits[i] - expected.logits[i]));
  assert.ok(diff <= 1e-4, `logits through the session: max abs diff ${diff}`);
  const cache = new DenseLayerCache(1, 4);
  cache.append(new Float32Array(4), new Float32Array(4), [0]);
  await assert.rejects(
    session.forward.forward({ tokens: [1], positions: [1], past: [cache.view(), cache.view()] }),
    /MambaForCausalLM carries a fixed-size recurrent state, not a KV cache: a forward pass on a cache of 2 slots cannot run/,
  );
  await assert.rejects(session.forward.forward({ tokens: [1], positions: [0], past: empty, attention: { keySums: true } }), /no attention statistics/);
  await assert.rejects(openModel(MAMBA, { weights: 'int4' }), /--weights int4 does not apply: the recurrent forward holds fp32 weights/);
  await assert.rejects(openModel(RWKV, { provider: 'cuda' }), /--provider cuda does not apply/);
});

test('decode carries a state of constant size: the same bytes after 16 tokens as after 1500, and chunked prefill equals one call', () => {
  for (const dir of [MAMBA, MAMBA2, RWKV, GEMMA]) {
    const { forward } = loadRecurrentModel(dir);
    const ids = Array.from({ length: 1500 }, (_, i) => (i * 37 + 11) % forward.config.vocabSize);
    const short = recurrentPrefill(forward, ids.slice(0, 16));
    const long = recurrentPrefill(forward, ids, 256);
    assert.equal(long.state.bytes(), short.state.bytes());
    assert.equal(long.state.bytes(), forward.initialState().bytes());
    const oneCall = forward.forward(ids, forward.initialState(), 'last');
    let diff = 0;
    for (let i = 0; i < oneCall.length; i++) diff = Math.max(diff, Math.abs(oneCall[i] - long.lastLogits[i]));
    assert.ok(diff <= 1e-4, `${dir}: chunked prefill differs from one call by ${diff}`);
    const decoded = recurrentGreedy(forward, long.state, long.lastLogits, { maxNewTokens: 5 });
    assert.equal(decoded.tokens.length, 5);
    assert.equal(decoded.steps, 4);
    assert.equal(long.state.bytes(), short.state.bytes());
  }
});

test('a sweep on a recurrent model: one full row per sample, family recurrent, the carried state as the bytes held, schema-valid, merge and export work', async () => {
  for (const model of [MAMBA, MAMBA2, RWKV, GEMMA]) {
    const session = await openModel(model);
    const dir = mkdtempSync(join(tmpdir(), 'kvlens-recurrent-bench-'));
    const out = join(dir, 'results.json');
    const results = await runBench(session, request(model, out, { lengths: [160] }));
    assert.equal(results.status, 'complete');
    const onDisk = readResultsFile(out);
    assert.deepEqual(resultsSchemaErrors(JSON.parse(readFileSync(out, 'utf8'))), []);
    assert.equal(onDisk.rows.length, 3, '2 needle depths + 1 completion sample, one method');
    const stateBytes = session.recurrent!.initialState().bytes();
    for (const row of onDisk.rows) {
      assert.equal(row.error, null);
      assert.equal(row.method, 'full');
      assert.equal(row.family, 'recurrent');
      assert.equal(row.recurrentStateBytes, stateBytes);
      assert.equal(row.bytesHeld, stateBytes);
      assert.equal(row.tokensKept, 0);
      assert.equal(row.verified, true);
      assert.ok(row.decodeTokensPerSecond > 0 && row.prefillMs > 0);
    }
    // Constant in context length: rows of different prompt lengths carry the same bytes.
    assert.ok(new Set(onDisk.rows.map((r) => r.length)).size > 1);
    assert.ok(onDisk.log.some((line) => /carries a fixed-size (recurrent )?state.*, not a (growing )?KV cache: \d+ bytes .* at any context length/.test(line)));
    assert.equal(mergeResults([{ path: out, results: onDisk }]).rows.length, 3);
    assert.match(toCsv(onDisk), /recurrent/);
  }
});

test('the run estimate sizes the carried state from the headers alone: the same at every length, full only', () => {
  const short = estimateRun(GEMMA, [200], ['full', 'snapkv:ratio=0.5']);
  const long = estimateRun(GEMMA, [16000], ['full']);
  const stateBytes = loadRecurrentModel(GEMMA).forward.initialState().bytes();
  assert.equal(short.fullKvBytes, stateBytes);
  assert.equal(long.fullKvBytes, stateBytes);
  assert.equal(short.weightBytes, long.weightBytes);
  assert.deepEqual(short.methods[0], { method: 'full', kvBytes: stateBytes, problem: null });
  assert.equal(short.methods[1].kvBytes, null);
  assert.match(short.methods[1].problem!, /RecurrentGemmaForCausalLM carries a fixed-size state .*: only method full applies/);
  assert.match(short.summary, /RecurrentGemmaForCausalLM state [\d.]+ KiB at any length/);
});

test('KV methods are refused on a recurrent model, naming the model type and the methods', async () => {
  const session = await openModel(MAMBA);
  await assert.rejects(
    runBench(session, request(MAMBA, null, { methods: ['full', 'kivi:bits=2', 'snapkv:ratio=0.5'] })),
    /MambaForCausalLM carries a fixed-size recurrent state, not a KV cache: only method full applies \(refused: kivi:bits=2, snapkv:ratio=0\.5\); run it with --methods full/,
  );
});

test('kvlens info, generate, logits and bench run on a recurrent model', () => {
  const generated = kvlens('generate', '--model', RWKV, '--prompt', 'const limit = 4', '--max-new-tokens', '6', '--json');
  assert.equal(generated.code, 0, generated.stderr);
  const json = JSON.parse(generated.stdout);
  assert.equal(json.generatedTokens, 6);
  assert.equal(json.kvCacheBytes, 0);
  assert.equal(json.recurrentStateBytes, loadRecurrentModel(RWKV).forward.initialState().bytes());
  const human = kvlens('generate', '--model', MAMBA, '--prompt', 'const limit = 4', '--max-new-tokens', '3');
  assert.equal(human.code, 0, human.stderr);
  assert.match(human.stdout, /MambaForCausalLM: no KV cache, recurrent state [\d.]+ KiB at any length/);
  const info = kvlens('info', '--model', GEMMA);
  assert.equal(info.code, 0, info.stderr);
  assert.match(info.stdout, /KV cache per 1k tokens\s+none: the model carries a fixed-size state/);
  assert.match(info.stdout, /state carried\s+2\.00 KiB fp32 at any context length \(2 x conv \[3, 32\] \+ 2 x lru \[32\] \+ 1 x keys \[8, 2, 8\] \+ 1 x values \[8, 2, 8\]\)/);
  const logits = kvlens('logits', '--model', MAMBA, '--ids', '5,6,7', '--json');
  assert.equal(logits.code, 0, logits.stderr);
  assert.equal(JSON.parse(logits.stdout).logits.length, 3);
  const refused = kvlens('bench', CODEBASE, '--model', MAMBA, '--tasks', 'needle', '--lengths', '200', '--out', join(mkdtempSync(join(tmpdir(), 'kvlens-r-')), 'r.json'));
  assert.notEqual(refused.code, 0);
  assert.match(refused.stderr, /MambaForCausalLM carries a fixed-size recurrent state, not a KV cache: only method full applies/);
});

test('bad recurrent checkpoints are refused naming the file and the problem', () => {
  const cases: [(dir: string) => void, RegExp][] = [
    [
      (dir) => {
        const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
        writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...config, state_size: 4 }));
      },
      /model\.safetensors: tensor "backbone\.layers\.0\.mixer\.x_proj\.weight" has shape \[20, 64\] but config\.json implies \[12, 64\]/,
    ],
    [
      (dir) => {
        const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
        writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...config, num_hidden_layers: 3 }));
      },
      /model\.safetensors: missing tensor "backbone\.layers\.2\.norm\.weight"/,
    ],
    [
      (dir) => {
        const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
        writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...config, use_conv_bias: false }));
      },
      /unexpected tensor "backbone\.layers\.\d\.mixer\.conv1d\.bias": the MambaForCausalLM forward pass has no use for it/,
    ],
    [
      (dir) => {
        const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
        writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...config, hidden_act: 'gelu' }));
      },
      /config\.json: hidden_act "gelu" is not supported for Mamba/,
    ],
    [
      (dir) => {
        const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
        writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...config, hidden_size: -1 }));
      },
      /config\.json: "hidden_size" must be a positive integer, found -1/,
    ],
  ];
  for (const [corrupt, message] of cases) {
    const dir = copyFixture(MAMBA);
    corrupt(dir);
    assert.throws(() => loadRecurrentModel(dir), (error: Error) => error.message.startsWith(dir) && message.test(error.message), String(message));
  }
  const mamba2 = copyFixture(MAMBA2);
  const mamba2Config = JSON.parse(readFileSync(join(mamba2, 'config.json'), 'utf8'));
  writeFileSync(join(mamba2, 'config.json'), JSON.stringify({ ...mamba2Config, num_heads: 4 }));
  assert.throws(() => loadRecurrentModel(mamba2), /config\.json: hidden_size \* expand \(64\) must equal num_heads \* head_dim \(32\)/);
  writeFileSync(join(mamba2, 'config.json'), JSON.stringify({ ...mamba2Config, time_step_limit: [0.5, 0.1] }));
  assert.throws(() => loadRecurrentModel(mamba2), /"time_step_limit" must be \[min, max\] with 0 <= min < max, found \[0\.5,0\.1\]/);
  const gemma = copyFixture(GEMMA);
  const gemmaConfig = JSON.parse(readFileSync(join(gemma, 'config.json'), 'utf8'));
  writeFileSync(join(gemma, 'config.json'), JSON.stringify({ ...gemmaConfig, block_types: ['recurrent', 'mlp'] }));
  assert.throws(() => loadRecurrentModel(gemma), /config\.json: "block_types" must list "recurrent" and "attention", found \["recurrent","mlp"\]/);
  writeFileSync(join(gemma, 'config.json'), JSON.stringify({ ...gemmaConfig, block_types: ['attention'] }));
  assert.throws(() => loadRecurrentModel(gemma), /unexpected tensor "model\.layers\.0\.temporal_block\.conv_1d\.bias"|missing tensor "model\.layers\.0\.temporal_block\.q_proj\.weight"/);
  const rwkv = copyFixture(RWKV);
  const config = JSON.parse(readFileSync(join(rwkv, 'config.json'), 'utf8'));
  writeFileSync(join(rwkv, 'config.json'), JSON.stringify({ ...config, attention_hidden_size: 16 }));
  assert.throws(() => loadRecurrentModel(rwkv), /config\.json: "attention_hidden_size" \(16\) must equal "hidden_size" \(32\)/);
});

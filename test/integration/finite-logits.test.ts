import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, openSync, readFileSync, writeSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openModel } from '../../src/engine/session';
import { greedyDecode, prefill } from '../../src/engine/model/prefill';
import { runBench } from '../../src/engine/bench/runner';
import { NonFiniteLogitsError, countNonFinite, withFiniteLogits } from '../../src/engine/model/finiteLogits';
import { resultsSchemaErrors } from '../../src/engine/bench/validate';
import type { ResultsFile } from '../../src/engine/bench/results';
import type { BenchRequest } from '../../src/engine/host/protocol';

const FIXTURES = join(__dirname, '..', 'fixtures', 'models');
const CODEBASE = join(__dirname, '..', 'fixtures', 'codebase');

/** A copy of an f32 fixture with one element of `tensor` set to `value` (a broken checkpoint). */
function poisonedModel(fixture: string, tensor: string, value: number): string {
  const dir = join(mkdtempSync(join(tmpdir(), 'kvlens-nan-')), fixture);
  cpSync(join(FIXTURES, fixture), dir, { recursive: true });
  const file = join(dir, 'model.safetensors');
  const bytes = readFileSync(file);
  const headerLength = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString('utf8')) as Record<string, { data_offsets: [number, number] }>;
  const element = Buffer.alloc(4);
  element.writeFloatLE(value);
  const fd = openSync(file, 'r+');
  writeSync(fd, element, 0, 4, 8 + headerLength + header[tensor].data_offsets[0]);
  closeSync(fd);
  return dir;
}

function request(model: string, extra: Partial<BenchRequest> = {}): BenchRequest {
  return {
    workspace: CODEBASE,
    model,
    methods: ['full', 'snapkv:ratio=0.5'],
    tasks: ['needle'],
    lengths: [200],
    depths: [0, 1],
    samples: 1,
    seed: 3,
    provider: 'cpu',
    outFile: null,
    maxNewTokens: 4,
    ...extra,
  };
}

test('countNonFinite finds NaN and both infinities, and nothing in finite data', () => {
  assert.equal(countNonFinite(new Float32Array([0, -1, 3.4e38, -3.4e38, 1e-45])), null);
  assert.deepEqual(countNonFinite(new Float32Array([1, NaN, Infinity, 2, -Infinity, NaN])), { nan: 2, posInf: 1, negInf: 1, first: 1 });
});

test('NaN in a layer of the checkpoint stops prefill and decode with an error naming the model file and the layer', async () => {
  // down_proj of layer 0 poisons the hidden state leaving layer 0, so layer 1 is the first with non-finite keys.
  const dir = poisonedModel('llama-gqa-tied-rope3-f32', 'model.layers.0.mlp.down_proj.weight', NaN);
  for (const backend of ['onnx', 'reference'] as const) {
    const session = await openModel(dir, { provider: 'cpu', backend, weights: 'fp32' });
    try {
      await assert.rejects(prefill(session.forward, [1, 2, 3, 4, 5]), (error: unknown) => {
        assert.ok(error instanceof NonFiniteLogitsError, `${backend}: ${String(error)}`);
        assert.ok(error.message.startsWith(`${dir}: non-finite logits`), error.message);
        assert.match(error.message, /NaN of \d+/);
        assert.match(error.message, /positions 0\.\.4/);
        assert.match(error.message, /first non-finite at layer 1 of 2/);
        return true;
      });
    } finally {
      await session.dispose();
    }
  }
});

test('infinite logits from the output projection say that every layer was finite', async () => {
  const dir = poisonedModel('llama-gqa-tied-rope3-f32', 'model.norm.weight', Infinity);
  const session = await openModel(dir, { provider: 'cpu', backend: 'reference' });
  try {
    await assert.rejects(prefill(session.forward, [1, 2, 3]), (error: unknown) => {
      assert.ok(error instanceof NonFiniteLogitsError, String(error));
      assert.match(error.message, /Infinity/);
      assert.match(error.message, /every layer's keys and values are finite/);
      return true;
    });
  } finally {
    await session.dispose();
  }
});

test('a decode step whose logits turn non-finite is named by its position and cached slots', async () => {
  const session = await openModel(join(FIXTURES, 'llama-gqa-tied-rope3-f32'), { provider: 'cpu', backend: 'reference' });
  try {
    const pre = await prefill(session.forward, [1, 2, 3, 4]);
    // A forward that overflows from position 6 on, as a numerical problem deep in a long decode would.
    const overflowing = withFiniteLogits(
      {
        config: session.forward.config,
        forward: async (input) => {
          const output = await session.forward.forward(input);
          if (input.positions[0] >= 6) output.logits[7] = Infinity;
          return output;
        },
      },
      'the-model-file',
    );
    await assert.rejects(greedyDecode(overflowing, pre.layers, pre.lastLogits, { maxNewTokens: 10, startPosition: 4 }), /the-model-file: non-finite logits \(1 \+Infinity of \d+\) in a forward over 1 token\(s\) at position 6 with 6 cached slots/);
  } finally {
    await session.dispose();
  }
});

test('a sweep on a broken checkpoint records the error on every row and completes instead of scoring NaN', async () => {
  const dir = poisonedModel('llama-gqa-tied-rope3-f32', 'model.layers.1.self_attn.o_proj.weight', NaN);
  const session = await openModel(dir, { provider: 'cpu' });
  try {
    const out = join(mkdtempSync(join(tmpdir(), 'kvlens-nan-out-')), 'results.json');
    const results = await runBench(session, request(dir, { outFile: out }));
    assert.equal(results.status, 'complete');
    assert.equal(results.rows.length, 2 * 2);
    for (const row of results.rows) {
      assert.ok(row.error?.startsWith(`prefill: ${dir}: non-finite logits`), String(row.error));
      assert.equal(row.prediction, '');
      assert.equal(row.score, 0);
    }
    const onDisk = JSON.parse(readFileSync(out, 'utf8')) as ResultsFile;
    assert.deepEqual(resultsSchemaErrors(onDisk), []);
    assert.equal(onDisk.rows.length, 4);
    assert.ok(onDisk.log.some((line) => /recorded as an error on every method's row/.test(line)));
  } finally {
    await session.dispose();
  }
});

test('non-finite logits in one method decode fail that row only; the sweep goes on', async () => {
  const session = await openModel(join(FIXTURES, 'llama-gqa-tied-rope3-f32'), { provider: 'cpu' });
  try {
    // Only decode steps over a halved cache (snapkv's) overflow: the shared prefill and full's decode stay finite.
    const raw = session.forward;
    const forward = withFiniteLogits(
      {
        config: raw.config,
        kvDtype: raw.kvDtype,
        forward: async (input) => {
          const output = await raw.forward(input);
          const cached = input.past[0].length;
          if (input.tokens.length === 1 && cached < input.positions[0] - 1) output.logits.fill(NaN);
          return output;
        },
      },
      session.modelPath,
    );
    const results = await runBench({ ...session, forward }, request(session.modelPath));
    assert.equal(results.status, 'complete');
    const full = results.rows.filter((r) => r.method === 'full');
    const snap = results.rows.filter((r) => r.method === 'snapkv:ratio=0.5');
    assert.equal(full.length, 2);
    assert.equal(snap.length, 2);
    for (const row of full) assert.equal(row.error, null);
    for (const row of snap) assert.match(String(row.error), /non-finite logits \(\d+ NaN of \d+\) in a forward over 1 token/);
  } finally {
    await session.dispose();
  }
});

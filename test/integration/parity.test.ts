// The ONNX forward against the plain-TypeScript reference on random in-memory models, and both against
// transformers' logits stored with the fixture checkpoints.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { inspectModel, loadModel, resolveModelDir } from '../../src/engine/model/loader';
import { loadTokenizer } from '../../src/engine/tokenizer/tokenizer';
import { ReferenceForward } from '../../src/engine/model/reference';
import { createOnnxForward, type OnnxForward } from '../../src/engine/model/onnx/onnxForward';
import { int4RoundTripWeights, nbitsRoundTripWeights } from '../../src/engine/model/onnx/graph';
import { prefill, greedyDecode } from '../../src/engine/model/prefill';
import { DenseLayerCache, type LayerKV } from '../../src/engine/kv/cache';
import type { ModelConfig } from '../../src/engine/model/config';
import type { DecoderForward, ForwardOutput } from '../../src/engine/model/types';
import { testConfig, randomWeights, seededRandom } from '../helpers/random-model';

const TOLERANCE = 1e-4;

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>, what: string): number {
  assert.equal(a.length, b.length, `${what}: length ${a.length} vs ${b.length}`);
  let max = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= max)) max = d; // NaN propagates as a failure
  }
  return max;
}

function assertClose(a: ArrayLike<number>, b: ArrayLike<number>, what: string, tolerance = TOLERANCE): void {
  const diff = maxAbsDiff(a, b, what);
  assert.ok(diff <= tolerance, `${what}: max abs diff ${diff} > ${tolerance}`);
}

function assertSameOutput(onnx: ForwardOutput, ref: ForwardOutput, what: string): void {
  assertClose(onnx.logits, ref.logits, `${what} logits`);
  for (let l = 0; l < ref.newKeys.length; l++) {
    assertClose(onnx.newKeys[l], ref.newKeys[l], `${what} layer ${l} keys`);
    assertClose(onnx.newValues[l], ref.newValues[l], `${what} layer ${l} values`);
  }
  assert.equal(onnx.attention === null, ref.attention === null, `${what}: attention presence`);
  ref.attention?.forEach((r, l) => {
    const o = onnx.attention![l];
    assert.equal(o.windowQueries, r.windowQueries);
    for (const key of ['window', 'keySums', 'queries'] as const) {
      assert.equal(o[key] === null, r[key] === null, `${what} layer ${l} ${key} presence`);
      if (r[key]) assertClose(o[key]!, r[key]!, `${what} layer ${l} ${key}`);
    }
  });
}

const emptyPast = (config: ModelConfig): LayerKV[] =>
  Array.from({ length: config.numLayers }, () => new DenseLayerCache(config.numKvHeads, config.headDim).view());

function randomTokens(config: ModelConfig, n: number, seed: number): number[] {
  const random = seededRandom(seed);
  return Array.from({ length: n }, () => Math.floor(random() * config.vocabSize));
}

const CASES: [string, Partial<ModelConfig>][] = [
  ['llama GQA untied', {}],
  ['qwen2 biases tied', { architecture: 'qwen2', attentionBias: true, tieWordEmbeddings: true }],
  [
    'llama3 rope scaling, MHA',
    {
      numKvHeads: 4,
      ropeTheta: 500000,
      headDim: 16,
      hiddenSize: 48,
      ropeScaling: { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 16 },
    },
  ],
];

for (const [label, overrides] of CASES) {
  test(`onnx vs reference: prefill, chunked prefill with stats, decode steps (${label})`, async () => {
    const config = testConfig(overrides);
    const weights = randomWeights(config, 21);
    const ref = new ReferenceForward(config, weights);
    const onnx = await createOnnxForward({ config, weights }, { provider: 'cpu', kvDtype: 'fp32', threads: 1 });
    try {
      assert.equal(onnx.provider, 'cpu');
      const tokens = randomTokens(config, 13, 4);
      const positions = tokens.map((_, i) => i);

      const allRef = await ref.forward({ tokens, positions, past: emptyPast(config), logits: 'all' });
      const allOnnx = await onnx.forward({ tokens, positions, past: emptyPast(config), logits: 'all' });
      assertSameOutput(allOnnx, allRef, 'prefill');

      // Chunked prefill with statistics equals one unchunked reference pass over the prompt.
      const attention = { window: 4, keySums: true, queries: true };
      const chunked = await prefill(onnx, tokens, { chunkSize: 5, attention });
      const whole = await ref.forward({ tokens, positions, past: emptyPast(config), attention });
      assertClose(chunked.lastLogits, whole.logits, 'chunked prefill last logits');
      for (let l = 0; l < config.numLayers; l++) {
        assertClose(chunked.layers[l].view().keys, whole.newKeys[l], `chunked layer ${l} keys`);
        assertClose(chunked.stats![l].keySums!, whole.attention![l].keySums!, `chunked layer ${l} key sums`);
        assertClose(chunked.stats![l].window!, whole.attention![l].window!, `chunked layer ${l} window`);
        assertClose(chunked.stats![l].queries!, whole.attention![l].queries!, `chunked layer ${l} queries`);
      }

      // Decode steps on a growing cache, both forwards fed the same (ONNX-built) cache.
      const caches = chunked.layers;
      let position = tokens.length;
      for (const token of [5, 9, 2]) {
        const input = { tokens: [token], positions: [position], past: caches.map((c) => c.view()) };
        const stepRef = await ref.forward(input);
        const stepOnnx = await onnx.forward(input);
        assertSameOutput(stepOnnx, stepRef, `decode at ${position}`);
        caches.forEach((c, l) => c.append(stepOnnx.newKeys[l], stepOnnx.newValues[l], [position]));
        position++;
      }
    } finally {
      await onnx.dispose();
    }
  });
}

for (const q of [3, 1]) {
test(`onnx vs reference: ragged per-head cache (valid mask) with statistics, ${q} new token(s); masked slots get exactly zero`, async () => {
  const config = testConfig({ architecture: 'qwen2', attentionBias: true });
  const weights = randomWeights(config, 31);
  const ref = new ReferenceForward(config, weights);
  const onnx = await createOnnxForward({ config, weights }, { provider: 'cpu', kvDtype: 'fp32', threads: 1 });
  try {
    const tokens = randomTokens(config, 12, 8);
    const { layers } = await prefill(ref, tokens, { chunkSize: 12 });
    // Head 0 keeps 8 tokens, head 1 keeps 5: slots 5..7 are empty for head 1. Different layers differ too.
    layers[0].retain([[0, 1, 2, 4, 6, 8, 10, 11], [0, 3, 9, 10, 11]]);
    layers[1].retain([[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], [0, 11]]);
    const past = layers.map((c) => c.view());
    assert.ok(past[0].valid && past[1].valid, 'retain with unequal heads must produce a valid mask');
    const input = { tokens: [3, 4, 5].slice(0, q), positions: [12, 13, 14].slice(0, q), past, logits: 'all' as const, attention: { window: 2, keySums: true, queries: true } };
    const rows = Math.min(2, q);
    const outRef = await ref.forward(input);
    const outOnnx = await onnx.forward(input);
    assertSameOutput(outOnnx, outRef, 'ragged');

    const group = config.numHeads / config.numKvHeads;
    for (let l = 0; l < config.numLayers; l++) {
      const P = past[l].length;
      const T = P + q;
      const window = outOnnx.attention![l].window!;
      const keySums = outOnnx.attention![l].keySums!;
      for (let h = 0; h < config.numHeads; h++) {
        const kvh = Math.floor(h / group);
        for (let s = 0; s < P; s++) {
          const masked = past[l].valid![s * config.numKvHeads + kvh] === 0;
          if (masked) assert.equal(keySums[h * T + s], 0, `layer ${l} head ${h} slot ${s} key sum`);
          for (let r = 0; r < rows; r++) {
            const p = window[(h * rows + r) * T + s];
            if (masked) assert.equal(p, 0, `layer ${l} head ${h} slot ${s} row ${r}`);
            else assert.ok(p > 0);
          }
        }
        for (let r = 0; r < rows; r++) {
          let sum = 0;
          for (let j = 0; j < T; j++) sum += window[(h * rows + r) * T + j];
          assert.ok(Math.abs(sum - 1) < 1e-5, `window row sums to ${sum}`);
        }
        // Key sums are the column sums of the full probability matrix: they add up to q.
        let total = 0;
        for (let j = 0; j < T; j++) total += keySums[h * T + j];
        assert.ok(Math.abs(total - q) < 1e-4);
      }
    }
  } finally {
    await onnx.dispose();
  }
});
}

test('onnx vs reference: one token on an empty cache, with and without statistics', async () => {
  const config = testConfig({ architecture: 'qwen2', attentionBias: true, tieWordEmbeddings: true });
  const weights = randomWeights(config, 33);
  const ref = new ReferenceForward(config, weights);
  const onnx = await createOnnxForward({ config, weights }, { provider: 'cpu', kvDtype: 'fp32', threads: 1 });
  try {
    for (const attention of [undefined, { window: 3, keySums: true, queries: true }]) {
      const input = { tokens: [7], positions: [5], past: emptyPast(config), attention };
      assertSameOutput(await onnx.forward(input), await ref.forward(input), `single token ${attention ? 'with' : 'without'} stats`);
    }
  } finally {
    await onnx.dispose();
  }
});

test('onnx statistics: a session built for a wide window serves narrower requests, and widens when asked', async () => {
  const config = testConfig();
  const weights = randomWeights(config, 71);
  const ref = new ReferenceForward(config, weights);
  const onnx = await createOnnxForward({ config, weights }, { provider: 'cpu', kvDtype: 'fp32', threads: 1 });
  try {
    const tokens = randomTokens(config, 8, 5);
    for (const attention of [{ window: 4 }, { window: 2, keySums: true }, { keySums: true }, { window: 6, queries: true }, { window: 1 }]) {
      const input = { tokens, positions: tokens.map((_, i) => i), past: emptyPast(config), attention };
      assertSameOutput(await onnx.forward(input), await ref.forward(input), `stats ${JSON.stringify(attention)}`);
    }
  } finally {
    await onnx.dispose();
  }
});

test('onnx vs reference at large positions (RoPE angles of tens of thousands of radians)', async () => {
  const config = testConfig({ headDim: 16, hiddenSize: 48, ropeTheta: 1000000 });
  const weights = randomWeights(config, 91);
  const ref = new ReferenceForward(config, weights);
  const onnx = await createOnnxForward({ config, weights }, { provider: 'cpu', kvDtype: 'fp32', threads: 1 });
  try {
    const tokens = randomTokens(config, 6, 9);
    for (const base of [4093, 31999, 130000]) {
      const input = { tokens, positions: tokens.map((_, i) => base + i), past: emptyPast(config), logits: 'all' as const };
      assertSameOutput(await onnx.forward(input), await ref.forward(input), `positions from ${base}`);
    }
  } finally {
    await onnx.dispose();
  }
});

test('onnx with weights in an external data file (the >2 GB path) equals the reference, plain and with stats', async () => {
  const config = testConfig({ tieWordEmbeddings: true });
  const weights = randomWeights(config, 61);
  const ref = new ReferenceForward(config, weights);
  const onnx = await createOnnxForward({ config, weights }, { provider: 'cpu', kvDtype: 'fp32', threads: 1, externalData: 'always' });
  try {
    const tokens = randomTokens(config, 7, 2);
    for (const attention of [undefined, { window: 2, keySums: true }]) {
      const input = { tokens, positions: tokens.map((_, i) => i + 3), past: emptyPast(config), logits: 'all' as const, attention };
      assertSameOutput(await onnx.forward(input), await ref.forward(input), `external data ${attention ? 'with' : 'without'} stats`);
    }
  } finally {
    await onnx.dispose();
  }
});

const INT4_CASES: [string, Partial<ModelConfig>, number][] = [
  ['tied, rows of whole blocks (4-bit embedding)', { hiddenSize: 64, intermediateSize: 96, headDim: 16, tieWordEmbeddings: true }, 32],
  ['qwen2 biases, rows padded to the block (fp32 embedding)', { architecture: 'qwen2', attentionBias: true, hiddenSize: 48, intermediateSize: 80, headDim: 12 }, 32],
  ['16-wide blocks', { hiddenSize: 32, intermediateSize: 48 }, 16],
];
for (const [label, overrides, blockSize] of INT4_CASES) {
  test(`onnx int4 (MatMulNBits, fp32 activations) equals the reference on the int4 round-tripped weights: ${label}`, async () => {
    const config = testConfig(overrides);
    const weights = randomWeights(config, 41);
    const onnx = await createOnnxForward(
      { config, weights },
      { provider: 'cpu', kvDtype: 'fp32', quantization: 'int4', int4AccuracyLevel: 0, int4BlockSize: blockSize, threads: 1 },
    );
    try {
      const ref = new ReferenceForward(config, int4RoundTripWeights(config, weights, blockSize));
      const fp32 = new ReferenceForward(config, weights);
      const tokens = randomTokens(config, 9, 3);
      const input = { tokens, positions: tokens.map((_, i) => i), past: emptyPast(config), logits: 'all' as const };
      const outOnnx = await onnx.forward(input);
      assertClose(outOnnx.logits, (await ref.forward(input)).logits, 'int4 logits');
      // ...and int4 is a real approximation, not the fp32 weights.
      assert.ok(maxAbsDiff(outOnnx.logits, (await fp32.forward(input)).logits, 'int4 vs fp32') > 1e-3);
      // Decode (one-query path) on the prompt's cache.
      const caches = emptyPast(config).map(() => new DenseLayerCache(config.numKvHeads, config.headDim));
      const prompt = await onnx.forward({ ...input, logits: 'last' });
      caches.forEach((c, l) => c.append(prompt.newKeys[l], prompt.newValues[l], input.positions));
      const step = { tokens: [4], positions: [tokens.length], past: caches.map((c) => c.view()) };
      assertSameOutput(await onnx.forward(step), await ref.forward(step), 'int4 decode');
    } finally {
      await onnx.dispose();
    }
  });
}

test('greedy decode: onnx and reference generate the same tokens and stop at a stop token', async () => {
  const config = testConfig();
  const weights = randomWeights(config, 51);
  const onnx = await createOnnxForward({ config, weights }, { provider: 'cpu', kvDtype: 'fp32', threads: 1 });
  try {
    const ref = new ReferenceForward(config, weights);
    const prompt = randomTokens(config, 10, 6);
    const runs: number[][] = [];
    for (const forward of [onnx, ref] as DecoderForward[]) {
      const pre = await prefill(forward, prompt, { chunkSize: 4 });
      const out = await greedyDecode(forward, pre.layers, pre.lastLogits, { maxNewTokens: 6, startPosition: prompt.length });
      assert.equal(out.tokens.length, 6);
      assert.equal(out.steps, 5);
      assert.equal(pre.layers[0].length, prompt.length + 5);
      runs.push(out.tokens);
    }
    assert.deepEqual(runs[0], runs[1]);
    const pre = await prefill(onnx, prompt);
    const stopped = await greedyDecode(onnx, pre.layers, pre.lastLogits, {
      maxNewTokens: 6,
      startPosition: prompt.length,
      stopTokenIds: [runs[0][2]],
    });
    assert.deepEqual(stopped.tokens, runs[0].slice(0, 3));
    assert.equal(stopped.stoppedBy, 'stop-token');
  } finally {
    await (onnx as OnnxForward).dispose();
  }
});

// ---- against transformers (fixture checkpoints written by tools/make_fixtures.py) ----

interface FixtureReference {
  format: string;
  ids: number[];
  prefill: { positions: number[]; logits: number[] };
  decode: {
    prefixLength: number;
    prefixLastLogits: number[];
    prefixCache: { keys: number[]; values: number[] }[];
    steps: { token: number; position: number; logits: number[] }[];
  };
}

const FIXTURES = join(__dirname, '..', 'fixtures', 'models');
const fixtureDirs = existsSync(FIXTURES)
  ? readdirSync(FIXTURES)
      .filter((name) => existsSync(join(FIXTURES, name, 'reference.json')))
      .sort()
  : [];

test('fixture checkpoints are present (transformers parity below must not silently vanish)', () => {
  assert.ok(fixtureDirs.length >= 3, `found ${fixtureDirs.length} fixture folders under ${FIXTURES}`);
});

for (const name of fixtureDirs) {
  test(`transformers parity: ${name} (reference and onnx, prefill all rows and decode steps from transformers' cache)`, async () => {
    const dir = join(FIXTURES, name);
    const expected = JSON.parse(readFileSync(join(dir, 'reference.json'), 'utf8')) as FixtureReference;
    assert.equal(expected.format, 'kvlens-reference-v1');
    // A GGUF fixture is a folder holding model.gguf instead of config.json + safetensors.
    const path = existsSync(join(dir, 'model.gguf')) && !existsSync(join(dir, 'config.json')) ? join(dir, 'model.gguf') : dir;
    const model = loadModel(path);
    const { config } = model;
    // Q5_1/Q5_K blocks are requantized to 8 bits in the graph: those fixtures are checked against the
    // weights the graph really holds (and against transformers in the drift test below).
    const requantized = model.dtypeShares?.some((share) => share.dtype === 'Q5_1' || share.dtype === 'Q5_K') ?? false;
    const onnx = await createOnnxForward(model, { provider: 'cpu', kvDtype: 'fp32', threads: 1 });
    // The production path: tensors read as stored, a GGUF file's blocks kept quantized (MatMulNBits with
    // fp32 activations, so the only difference from transformers' dequantized weights is summation order).
    const stored = inspectModel(path).storedWeights();
    const native = await createOnnxForward({ config, weights: stored }, { provider: 'cpu', kvDtype: 'fp32', threads: 1, int4AccuracyLevel: 0 });
    stored.close();
    try {
      for (const forward of (requantized ? [new ReferenceForward(config, model.weights), onnx] : [new ReferenceForward(config, model.weights), onnx, native]) as DecoderForward[]) {
        const label = `${name} ${forward === onnx ? 'onnx' : forward === native ? 'onnx, stored weights' : 'reference'}`;
        const all = await forward.forward({ tokens: expected.ids, positions: expected.prefill.positions, past: emptyPast(config), logits: 'all' });
        assertClose(all.logits, expected.prefill.logits, `${label} prefill logits`);

        const prefixLength = expected.decode.prefixLength;
        const prefix = await forward.forward({
          tokens: expected.ids.slice(0, prefixLength),
          positions: expected.prefill.positions.slice(0, prefixLength),
          past: emptyPast(config),
        });
        assertClose(prefix.logits, expected.decode.prefixLastLogits, `${label} prefix last logits`);
        // Decode on transformers' own cache: proves the token-major layout and that cached keys are rotated.
        const caches = expected.decode.prefixCache.map((layer, l) => {
          assertClose(prefix.newKeys[l], layer.keys, `${label} layer ${l} prefix keys`);
          assertClose(prefix.newValues[l], layer.values, `${label} layer ${l} prefix values`);
          const cache = new DenseLayerCache(config.numKvHeads, config.headDim);
          cache.append(Float32Array.from(layer.keys), Float32Array.from(layer.values), expected.prefill.positions.slice(0, prefixLength));
          return cache;
        });
        for (const step of expected.decode.steps) {
          const out = await forward.forward({ tokens: [step.token], positions: [step.position], past: caches.map((c) => c.view()) });
          assertClose(out.logits, step.logits, `${label} decode at ${step.position}`);
          caches.forEach((c, l) => c.append(out.newKeys[l], out.newValues[l], [step.position]));
        }
      }
    } finally {
      await onnx.dispose();
      await native.dispose();
    }
  });
}

test('GGUF Q5_1/Q5_K requantized to 8 bits: the graph equals the reference on what it holds, and stays close to transformers', async () => {
  const dir = join(FIXTURES, 'llama-kquant-gguf');
  const expected = JSON.parse(readFileSync(join(dir, 'reference.json'), 'utf8')) as FixtureReference;
  const plan = inspectModel(join(dir, 'model.gguf'));
  assert.ok(plan.dtypeShares.some((share) => share.dtype === 'Q5_1') && plan.dtypeShares.some((share) => share.dtype === 'Q5_K'));
  const stored = plan.storedWeights();
  const held = nbitsRoundTripWeights(plan.config, stored, 'int8');
  const forward = await createOnnxForward({ config: plan.config, weights: stored }, { provider: 'cpu', kvDtype: 'fp32', threads: 1, int4AccuracyLevel: 0 });
  stored.close();
  try {
    const input = { tokens: expected.ids, positions: expected.prefill.positions, past: emptyPast(plan.config), logits: 'all' as const };
    const out = await forward.forward(input);
    assertClose(out.logits, (await new ReferenceForward(plan.config, held).forward(input)).logits, 'graph vs reference on the held weights');
    let drift = 0;
    for (let i = 0; i < out.logits.length; i++) drift = Math.max(drift, Math.abs(out.logits[i] - expected.prefill.logits[i]));
    const spread = Math.max(...expected.prefill.logits) - Math.min(...expected.prefill.logits);
    assert.ok(drift > 0 && drift < spread * 0.01, `drift from transformers ${drift} against a logit spread of ${spread}`);
  } finally {
    await forward.dispose();
  }
});

test('--weights int8 and int4 on the float fixtures: logit drift against fp32 is bounded; int8 keeps the top-1 token on >= 90% of positions', async () => {
  const floatFixtures = fixtureDirs.filter((name) => existsSync(join(FIXTURES, name, 'config.json')));
  assert.ok(floatFixtures.length >= 2);
  for (const name of floatFixtures) {
    const dir = join(FIXTURES, name);
    const expected = JSON.parse(readFileSync(join(dir, 'reference.json'), 'utf8')) as FixtureReference;
    const plan = inspectModel(dir);
    const vocab = plan.config.vocabSize;
    const argmaxRows = (logits: ArrayLike<number>): number[] =>
      Array.from({ length: logits.length / vocab }, (_, r) => {
        let best = 0;
        for (let v = 1; v < vocab; v++) if (logits[r * vocab + v] > logits[r * vocab + best]) best = v;
        return best;
      });
    const reference = argmaxRows(expected.prefill.logits);
    const spread = Math.max(...expected.prefill.logits) - Math.min(...expected.prefill.logits);
    for (const scheme of ['int8', 'int4'] as const) {
      const stored = plan.storedWeights();
      const forward = await createOnnxForward({ config: plan.config, weights: stored }, { provider: 'cpu', kvDtype: 'fp32', threads: 1, quantization: scheme, int4AccuracyLevel: 0 });
      stored.close();
      try {
        const out = await forward.forward({ tokens: expected.ids, positions: expected.prefill.positions, past: emptyPast(plan.config), logits: 'all' });
        const top = argmaxRows(out.logits);
        const agree = top.filter((t, i) => t === reference[i]).length / top.length;
        let drift = 0;
        for (let i = 0; i < out.logits.length; i++) drift = Math.max(drift, Math.abs(out.logits[i] - expected.prefill.logits[i]));
        // Random-weight fixtures have logit margins far below int4's noise, so only int8 is held to the top-1 floor
        // here; the trained default model holds both (next test).
        if (scheme === 'int8') assert.ok(agree >= 0.9, `${name} ${scheme}: top-1 agrees on ${(agree * 100).toFixed(0)}% of positions`);
        // int8 moves logits by a small fraction of their spread; int4 by more, but still boundedly.
        assert.ok(drift < spread * (scheme === 'int8' ? 0.02 : 0.15), `${name} ${scheme}: max drift ${drift} against a logit spread of ${spread}`);
        assert.ok(drift > 0, `${name} ${scheme}: quantized logits equal fp32 exactly (the scheme was not applied)`);
      } finally {
        await forward.dispose();
      }
    }
  }
});

test('--weights int8 and int4 on the default model: the top-1 next token agrees with fp32 on a real code prompt (int8 >= 95%, int4 >= 80%)', async () => {
  const plan = inspectModel(resolveModelDir('default'));
  const text = readFileSync(join(__dirname, '..', '..', 'src', 'engine', 'model', 'prefill.ts'), 'utf8').slice(0, 3000);
  const ids = loadTokenizer(plan.dir).encode(text).slice(0, 512);
  const input = { tokens: ids, positions: ids.map((_, i) => i), past: emptyPast(plan.config), logits: 'all' as const };
  const run = async (quantization: 'fp32' | 'int8' | 'int4'): Promise<Float32Array> => {
    const stored = plan.storedWeights();
    const forward = await createOnnxForward({ config: plan.config, weights: stored }, { provider: 'cpu', kvDtype: 'fp32', threads: 1, quantization });
    stored.close();
    try {
      return (await forward.forward(input)).logits;
    } finally {
      await forward.dispose();
    }
  };
  const vocab = plan.config.vocabSize;
  const top = (logits: Float32Array): number[] =>
    Array.from({ length: ids.length }, (_, r) => {
      let best = 0;
      for (let v = 1; v < vocab; v++) if (logits[r * vocab + v] > logits[r * vocab + best]) best = v;
      return best;
    });
  const reference = top(await run('fp32'));
  // Measured: int8 97.7%, int4 86.1% (89.5% with 16-wide blocks): a 2.3M-parameter model of width 192 is far
  // more fragile under 4-bit weights than the 0.5-8B models int4 is meant for.
  for (const [scheme, floor] of [['int8', 0.95], ['int4', 0.8]] as const) {
    const agree = top(await run(scheme)).filter((t, i) => t === reference[i]).length / ids.length;
    assert.ok(agree >= floor, `${scheme}: top-1 agrees with fp32 on ${(agree * 100).toFixed(1)}% of ${ids.length} positions`);
  }
});

test('provider fallback: providers are tried in order, each failure kept as a one-line reason', async () => {
  const config = testConfig({ numLayers: 1 });
  const weights = randomWeights(config, 81);
  const order = ['cuda', 'webgpu', 'cpu'];
  for (const provider of ['auto', 'webgpu'] as const) {
    const onnx = await createOnnxForward({ config, weights }, { provider, kvDtype: 'fp32', threads: 1 });
    try {
      const tried = provider === 'auto' ? order : order.slice(1);
      // Whatever loaded, every provider before it in the chain failed with a reason naming it.
      assert.equal(onnx.fallbackReasons.length, tried.indexOf(onnx.provider));
      onnx.fallbackReasons.forEach((reason, i) => {
        assert.ok(reason.startsWith(`${tried[i]}: `), reason);
        assert.ok(!reason.includes('\n'));
      });
      const out = await onnx.forward({ tokens: [1], positions: [0], past: emptyPast(config) });
      assert.equal(out.logits.length, config.vocabSize);
    } finally {
      await onnx.dispose();
    }
  }
  const cpu = await createOnnxForward({ config, weights }, { provider: 'cpu', kvDtype: 'fp32', threads: 1 });
  assert.deepEqual([cpu.provider, cpu.fallbackReasons], ['cpu', []]);
  await cpu.dispose();
  await assert.rejects(cpu.forward({ tokens: [1], positions: [0], past: emptyPast(config) }), /disposed/);
  await assert.rejects(cpu.forward({ tokens: [1], positions: [0], past: emptyPast(config), attention: { keySums: true } }), /disposed/);
  await assert.rejects(createOnnxForward({ config, weights }, { provider: 'cpu', kvDtype: 'fp32', quantization: 'int4', int4BlockSize: 24 }), /power of two/);
});

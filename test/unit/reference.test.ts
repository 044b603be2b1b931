import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ReferenceForward, ropeInverseFrequencies } from '../../src/engine/model/reference';
import { DenseLayerCache, type LayerKV } from '../../src/engine/kv/cache';
import { KvlensError } from '../../src/engine/errors';
import { prefill, greedyDecode } from '../../src/engine/model/prefill';
import { testConfig, randomWeights } from '../helpers/random-model';
import type { ModelConfig } from '../../src/engine/model/config';

function emptyPast(config: ModelConfig): LayerKV[] {
  return Array.from({ length: config.numLayers }, () => new DenseLayerCache(config.numKvHeads, config.headDim).view());
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length, 'length mismatch');
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[i]));
  return max;
}

const TOKENS = [3, 17, 42, 8, 8, 29, 1, 40, 11, 23];

test('RoPE inverse frequencies are theta^(-2i/D)', () => {
  const inv = ropeInverseFrequencies(testConfig({ headDim: 8, ropeTheta: 10000 }));
  const expected = [1, 0.1, 0.01, 0.001];
  for (let i = 0; i < 4; i++) assert.ok(Math.abs(inv[i] - expected[i]) <= 1e-7 * expected[i] + 1e-12, `i=${i}: ${inv[i]}`);
});

test('Llama-3 RoPE scaling keeps high frequencies, divides low ones by factor, interpolates between', () => {
  const base = testConfig({ headDim: 128, ropeTheta: 500000 });
  const scaled = testConfig({
    headDim: 128,
    ropeTheta: 500000,
    ropeScaling: { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 },
  });
  const plain = ropeInverseFrequencies(base);
  const llama3 = ropeInverseFrequencies(scaled);
  let sawHigh = false;
  let sawLow = false;
  let sawMedium = false;
  for (let i = 0; i < 64; i++) {
    const wavelen = (2 * Math.PI) / plain[i];
    if (wavelen < 8192 / 4) {
      sawHigh = true;
      assert.equal(llama3[i], plain[i]);
    } else if (wavelen > 8192) {
      sawLow = true;
      assert.ok(Math.abs(llama3[i] - plain[i] / 8) <= 1e-6 * plain[i], `low i=${i}`);
    } else {
      sawMedium = true;
      // Linear blend in "context / wavelength" between the slowed and the original frequency.
      const smooth = (8192 / wavelen - 1) / (4 - 1);
      const expected = (1 - smooth) * (plain[i] / 8) + smooth * plain[i];
      assert.ok(Math.abs(llama3[i] - expected) <= 1e-5 * expected, `medium i=${i}: ${llama3[i]} vs ${expected}`);
      assert.ok(llama3[i] < plain[i] && llama3[i] > plain[i] / 8);
    }
  }
  assert.ok(sawHigh && sawLow && sawMedium, 'the test config must cover all three bands');
});

for (const [label, overrides] of [
  ['llama GQA untied', {}],
  ['qwen2 biases tied', { architecture: 'qwen2', attentionBias: true, tieWordEmbeddings: true }],
] as [string, Partial<ModelConfig>][]) {
  test(`reference: one prefill equals token-by-token decoding with the cache (${label})`, async () => {
    const config = testConfig(overrides);
    const model = new ReferenceForward(config, randomWeights(config, 7));
    const positions = TOKENS.map((_, i) => i);
    const whole = await model.forward({ tokens: TOKENS, positions, past: emptyPast(config), logits: 'all' });
    const caches = Array.from({ length: config.numLayers }, () => new DenseLayerCache(config.numKvHeads, config.headDim));
    for (let t = 0; t < TOKENS.length; t++) {
      const step = await model.forward({ tokens: [TOKENS[t]], positions: [t], past: caches.map((c) => c.view()) });
      caches.forEach((c, l) => c.append(step.newKeys[l], step.newValues[l], [t]));
      const row = whole.logits.subarray(t * config.vocabSize, (t + 1) * config.vocabSize);
      assert.ok(maxAbsDiff(step.logits, row) < 1e-5, `token ${t}`);
    }
  });
}

test('reference: shifting every position by the same offset leaves logits unchanged (RoPE is relative)', async () => {
  const config = testConfig();
  const model = new ReferenceForward(config, randomWeights(config, 9));
  const at0 = await model.forward({ tokens: TOKENS, positions: TOKENS.map((_, i) => i), past: emptyPast(config), logits: 'all' });
  const at100 = await model.forward({ tokens: TOKENS, positions: TOKENS.map((_, i) => i + 100), past: emptyPast(config), logits: 'all' });
  assert.ok(maxAbsDiff(at0.logits, at100.logits) < 1e-4);
  // ...while keys themselves do depend on position.
  assert.ok(maxAbsDiff(at0.newKeys[0], at100.newKeys[0]) > 1e-2);
});

test('reference: a slot masked invalid for every head acts as if it were removed from the cache', async () => {
  const config = testConfig();
  const model = new ReferenceForward(config, randomWeights(config, 11));
  const caches = Array.from({ length: config.numLayers }, () => new DenseLayerCache(config.numKvHeads, config.headDim));
  const prompt = await model.forward({ tokens: TOKENS, positions: TOKENS.map((_, i) => i), past: emptyPast(config), logits: 'last' });
  caches.forEach((c, l) => c.append(prompt.newKeys[l], prompt.newValues[l], TOKENS.map((_, i) => i)));

  const dropped = 4;
  const masked = caches.map((c) => {
    const view = c.view();
    const valid = new Uint8Array(view.length * config.numKvHeads).fill(1);
    valid.fill(0, dropped * config.numKvHeads, (dropped + 1) * config.numKvHeads);
    return { ...view, valid };
  });
  const compacted = caches.map((c) => {
    const copy = c.clone();
    const keep = Array.from({ length: c.length }, (_, i) => i).filter((i) => i !== dropped);
    copy.retain(Array.from({ length: config.numKvHeads }, () => keep));
    return copy.view();
  });
  const next = { tokens: [5], positions: [TOKENS.length], attention: { window: 1, keySums: true } };
  const a = await model.forward({ ...next, past: masked });
  const b = await model.forward({ ...next, past: compacted });
  assert.ok(maxAbsDiff(a.logits, b.logits) < 1e-5);
  const full = await model.forward({ ...next, past: caches.map((c) => c.view()) });
  assert.ok(maxAbsDiff(a.logits, full.logits) > 1e-4, 'dropping a token must change something');
  for (const layer of a.attention ?? []) {
    for (let h = 0; h < config.numHeads; h++) assert.equal(layer.keySums?.[h * (TOKENS.length + 1) + dropped], 0);
  }
});

test('reference: per-head masks zero exactly the masked (slot, kv head) pairs; window rows sum to 1', async () => {
  const config = testConfig();
  const model = new ReferenceForward(config, randomWeights(config, 13));
  const P = 6;
  const prompt = await model.forward({ tokens: TOKENS.slice(0, P), positions: [0, 1, 2, 3, 4, 5], past: emptyPast(config) });
  const valid = new Uint8Array(P * config.numKvHeads).fill(1);
  valid[2 * config.numKvHeads + 0] = 0; // slot 2 empty for kv head 0
  valid[4 * config.numKvHeads + 1] = 0; // slot 4 empty for kv head 1
  const past = prompt.newKeys.map((keys, l) => ({
    numKvHeads: config.numKvHeads,
    headDim: config.headDim,
    length: P,
    keys,
    values: prompt.newValues[l],
    valid,
    positions: Int32Array.from({ length: P * config.numKvHeads }, (_, i) => Math.floor(i / config.numKvHeads)),
  }));
  const q = 3;
  const out = await model.forward({ tokens: [7, 8, 9], positions: [6, 7, 8], past, attention: { window: 2, keySums: true, queries: true } });
  const T = P + q;
  const group = config.numHeads / config.numKvHeads;
  for (const layer of out.attention ?? []) {
    assert.equal(layer.windowQueries, 2);
    assert.equal(layer.queries?.length, q * config.numHeads * config.headDim);
    const window = layer.window!;
    for (let h = 0; h < config.numHeads; h++) {
      const kvh = Math.floor(h / group);
      for (let r = 0; r < 2; r++) {
        const rowStart = (h * 2 + r) * T;
        let sum = 0;
        for (let j = 0; j < T; j++) sum += window[rowStart + j];
        assert.ok(Math.abs(sum - 1) < 1e-6);
        assert.equal(window[rowStart + 2] === 0, kvh === 0, `head ${h} slot 2`);
        assert.equal(window[rowStart + 4] === 0, kvh === 1, `head ${h} slot 4`);
        // window row r is query q-2+r: it sees new tokens up to itself only.
        for (let j = P + (q - 2 + r) + 1; j < T; j++) assert.equal(window[rowStart + j], 0);
      }
    }
  }
});

test('reference: bad inputs are rejected with a clear error', async () => {
  const config = testConfig();
  const model = new ReferenceForward(config, randomWeights(config, 1));
  await assert.rejects(model.forward({ tokens: [config.vocabSize], positions: [0], past: emptyPast(config) }), KvlensError);
  await assert.rejects(model.forward({ tokens: [1, 2], positions: [0], past: emptyPast(config) }), /2 tokens but 1 positions/);
  await assert.rejects(model.forward({ tokens: [1], positions: [0], past: emptyPast(config).slice(1) }), /1 layers/);
  const weights = randomWeights(config, 1);
  weights.delete('model.layers.1.mlp.up_proj.weight');
  assert.throws(() => new ReferenceForward(config, weights), /missing weight model\.layers\.1\.mlp\.up_proj\.weight/);
});

test('prefill and greedy decode reject bad arguments with clear errors', async () => {
  const config = testConfig();
  const model = new ReferenceForward(config, randomWeights(config, 2));
  await assert.rejects(prefill(model, []), /prompt is empty/);
  await assert.rejects(prefill(model, [1, 2], { chunkSize: 0 }), /chunkSize/);
  const pre = await prefill(model, [1, 2, 3], { chunkSize: 2 });
  assert.equal(pre.layers[0].length, 3);
  assert.deepEqual(Array.from(pre.layers[0].view().positions.filter((_, i) => i % config.numKvHeads === 0)), [0, 1, 2]);
  await assert.rejects(greedyDecode(model, pre.layers, pre.lastLogits, { maxNewTokens: 0, startPosition: 3 }), /maxNewTokens/);
  await assert.rejects(greedyDecode(model, pre.layers.slice(1), pre.lastLogits, { maxNewTokens: 2, startPosition: 3 }), /layer caches/);
});

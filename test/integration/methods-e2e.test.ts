import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { loadModel } from '../../src/engine/model/loader';
import { createOnnxForward } from '../../src/engine/model/onnx/onnxForward';
import { createReferenceForward } from '../../src/engine/model/reference';
import { prefill, greedyDecode } from '../../src/engine/model/prefill';
import { decodeWithCache } from '../../src/engine/bench/decode';
import { createMethod, listMethods, mergeNeeds, verifyCompression } from '../../src/engine/kv';
import type { DecoderForward } from '../../src/engine/model/types';

const FIXTURE = join(__dirname, '..', 'fixtures', 'models', 'qwen2-bias-untied-f32');
const DEFAULT = join(__dirname, '..', '..', 'models', 'default');

function prompt(length: number, vocab: number): number[] {
  // A repeating pattern with drift: attention has structure to find, unlike uniform noise.
  return Array.from({ length }, (_, i) => (i * 7 + Math.floor(i / 13) * 3) % (vocab - 1) + 1);
}

test('`full` reproduces uncompressed greedy generation token for token', async () => {
  const model = loadModel(FIXTURE);
  const forward = await createOnnxForward(model, { provider: 'cpu' });
  const ids = prompt(150, model.config.vocabSize);
  const plain = await prefill(forward, ids, { chunkSize: 64 });
  const expected = await greedyDecode(forward, plain.layers, plain.lastLogits, { maxNewTokens: 24, startPosition: ids.length });
  const again = await prefill(forward, ids, { chunkSize: 64 });
  const full = createMethod('full');
  const cache = full.compress({ layers: again.layers, stats: again.stats, config: model.config });
  const decoded = await decodeWithCache(forward, cache, again.lastLogits, {
    maxNewTokens: 24,
    stopTokenIds: [],
    startPosition: ids.length,
    decodeNeeds: full.decodeNeeds,
  });
  assert.deepEqual(decoded.tokens, expected.tokens);
  await forward.dispose();
});

test('a method that keeps only some tokens decodes attending to exactly the kept tokens, with their original positions', async () => {
  // Independent check with the plain-TypeScript oracle: a decode step after streamingllm eviction must equal
  // a step over a cache holding only the sink and recent tokens' keys/values, at their original RoPE positions.
  const model = loadModel(FIXTURE);
  const forward: DecoderForward = createReferenceForward(model);
  const ids = prompt(60, model.config.vocabSize);
  const method = createMethod('streamingllm:budget=20,sinks=4');
  const pre = await prefill(forward, ids, { chunkSize: 32, attention: method.needs(ids.length) });
  const cache = method.compress({ layers: pre.layers, stats: pre.stats, config: model.config });
  verifyCompression(method, cache, pre.layers, model.config);
  const kept = [...Array(4).keys(), ...Array.from({ length: 16 }, (_, i) => 44 + i)];
  const positions = cache.views()[0].positions;
  assert.deepEqual(Array.from(positions).filter((_, i) => i % model.config.numKvHeads === 0), kept);
  const step = await forward.forward({ tokens: [5], positions: [60], past: cache.views(), logits: 'last' });
  // The oracle: a second full prefill, from which the kept positions' keys/values are copied by hand.
  const again = await prefill(forward, ids, { chunkSize: 32 });
  const { DenseLayerCache } = await import('../../src/engine/kv/cache');
  const { numLayers, numKvHeads, headDim } = model.config;
  const row = numKvHeads * headDim;
  const layers = again.layers.map((full) => {
    const view = full.view();
    const keys = new Float32Array(kept.length * row);
    const values = new Float32Array(kept.length * row);
    kept.forEach((p, i) => {
      keys.set(view.keys.subarray(p * row, (p + 1) * row), i * row);
      values.set(view.values.subarray(p * row, (p + 1) * row), i * row);
    });
    const layer = new DenseLayerCache(numKvHeads, headDim);
    layer.append(keys, values, kept);
    return layer;
  });
  assert.equal(layers.length, numLayers);
  const expected = await forward.forward({ tokens: [5], positions: [60], past: layers.map((l) => l.view()), logits: 'last' });
  let maxDiff = 0;
  for (let i = 0; i < expected.logits.length; i++) maxDiff = Math.max(maxDiff, Math.abs(expected.logits[i] - step.logits[i]));
  assert.ok(maxDiff < 1e-4, `max |Δlogit| = ${maxDiff}`);
});

test('every listed method runs end to end and reports an honest byte count', async () => {
  const dir = existsSync(join(DEFAULT, 'model.safetensors')) ? DEFAULT : FIXTURE;
  const model = loadModel(dir);
  const forward = await createOnnxForward(model, { provider: 'cpu' });
  const ids = prompt(600, model.config.vocabSize);
  const methods = listMethods().map((m) => createMethod(m.name));
  const needs = mergeNeeds(...methods.map((m) => m.needs(ids.length)));
  const pre = await prefill(forward, ids, { chunkSize: 256, attention: needs });
  const fullBytes = createMethod('full').compress({ layers: pre.layers, stats: pre.stats, config: model.config }).bytes().held;
  for (const method of methods) {
    let prompted = pre;
    if (method.compressPrompt) {
      const shorter = await method.compressPrompt(ids, { protectedSuffix: 8, selfInformation: async (t) => new Float32Array(t.length).map((_, i) => (i * 37) % 11) });
      assert.ok(shorter.length < ids.length, `${method.spec} shortens the prompt`);
      prompted = await prefill(forward, shorter, { chunkSize: 256, attention: method.needs(shorter.length) });
    }
    const cache = method.compress({ layers: prompted.layers, stats: prompted.stats, config: model.config });
    const verification = verifyCompression(method, cache, prompted.layers, model.config);
    const bytes = cache.bytes();
    const arraysSum = bytes.packed + bytes.scales + bytes.zeroPoints + bytes.fullPrecision + bytes.positions + bytes.blockStore + bytes.blockIndex;
    assert.equal(bytes.held, arraysSum, `${method.spec}: held is the sum of its parts`);
    if (method.spec === 'full') assert.match(verification.note ?? '', /no compression/);
    // InfLLM and Quest hold the whole cache (a block store) and read part of it each step.
    else if (bytes.blockStore > 0) assert.ok(bytes.active < fullBytes, `${method.spec}: attention reads less than full`);
    else assert.ok(bytes.held < fullBytes, `${method.spec} holds ${bytes.held} < ${fullBytes}`);
    const decoded = await decodeWithCache(forward, cache, prompted.lastLogits, {
      maxNewTokens: 4,
      stopTokenIds: [],
      startPosition: prompted.layers[0].length === ids.length ? ids.length : prompted.layers[0].length,
      decodeNeeds: method.decodeNeeds,
    });
    assert.equal(decoded.tokens.length, 4, `${method.spec} generated an answer`);
  }
  await forward.dispose();
});

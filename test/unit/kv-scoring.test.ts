// Token scores of KeyDiff and Expected Attention, and ThinK's key channel scores, against their reference formulations in torch, with transformers'
// rotary embedding (test/fixtures/kv-scoring, made by tools/make_kv_scoring_fixture.py), and what each keeps.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { createMethod, verifyCompression } from '../../src/engine/kv';
import { DenseLayerCache } from '../../src/engine/kv/cache';
import { expectedAttentionScores } from '../../src/engine/kv/methods/expectedattention';
import { keyDiffScores } from '../../src/engine/kv/methods/keydiff';
import { thinkScores } from '../../src/engine/kv/methods/think';
import { makeConfig } from './kv-fixture';

const fixture = JSON.parse(readFileSync(resolve(__dirname, '..', 'fixtures', 'kv-scoring', 'reference.json'), 'utf8'));
const floats = (base64: string) => {
  const buffer = Buffer.from(base64, 'base64');
  return new Float32Array(buffer.buffer.slice(buffer.byteOffset, buffer.byteOffset + buffer.byteLength));
};
const { numHeads, numKvHeads, headDim, ropeTheta, length: n, sinks, future } = fixture.config;
const config = makeConfig({ numHeads, numKvHeads, headDim, ropeTheta, hiddenSize: numHeads * headDim, numLayers: 1 });
const queries = floats(fixture.queries);
const layer = new DenseLayerCache(numKvHeads, headDim, n);
layer.append(floats(fixture.keys), floats(fixture.values), Array.from({ length: n }, (_, t) => t));

function assertClose(got: Float32Array, want: Float32Array, skip: (i: number) => boolean, what: string): void {
  let worst = 0;
  for (let i = 0; i < want.length; i++) {
    if (skip(i)) continue;
    worst = Math.max(worst, Math.abs(got[i] - want[i]) / Math.max(Math.abs(want[i]), 1e-3));
  }
  assert.ok(worst < 2e-4, `${what}: worst relative difference ${worst}`);
}

test('keydiff: scores are minus the cosine to the mean normalised key, as the reference computes them', () => {
  assertClose(keyDiffScores(layer.view()), floats(fixture.keydiff), () => false, 'keydiff');
});

test('expectedattention: a local layer of a model with two RoPE tables rotates by its own table', () => {
  // The same prompt scored as layer 0 of a model whose layer 0 is local (its own theta) and of one whose only theta is that one.
  const localTheta = config.ropeTheta * 7;
  const twoTables = { ...config, slidingRopeTheta: localTheta, layerWindows: [16] };
  const oneTable = { ...config, ropeTheta: localTheta };
  const options = { sinks, future, covariance: true, valueNorm: true };
  const local = expectedAttentionScores(queries, layer.view(), twoTables, { ...options, layer: 0 });
  assert.deepEqual(Array.from(local), Array.from(expectedAttentionScores(queries, layer.view(), oneTable, options)));
  assert.notDeepEqual(Array.from(local), Array.from(expectedAttentionScores(queries, layer.view(), config, options)));
});

test('expectedattention: scores match the reference, with and without the covariance term', () => {
  for (const [covariance, name] of [
    [true, 'expectedAttention'],
    [false, 'expectedAttentionMeanOnly'],
  ] as const) {
    const got = expectedAttentionScores(queries, layer.view(), config, { sinks, future, covariance, valueNorm: true });
    // The reference drops the sinks; its scores cover the tokens after them.
    const reference = floats(fixture[name]);
    const want = new Float32Array(numKvHeads * n);
    for (let h = 0; h < numKvHeads; h++) want.set(reference.subarray(h * (n - sinks), (h + 1) * (n - sinks)), h * n + sinks);
    assertClose(got, want, (i) => i % n < sinks, name);
    for (let h = 0; h < numKvHeads; h++) for (let s = 0; s < sinks; s++) assert.equal(got[h * n + s], Infinity, 'sinks are always kept');
  }
});

test('keydiff and expectedattention keep exactly their top-scored tokens per KV head', () => {
  const stats = [{ window: null, windowQueries: 0, keySums: null, queries }];
  for (const spec of ['keydiff:ratio=0.5', 'expectedattention:ratio=0.5']) {
    const method = createMethod(spec);
    const cache = method.compress({ layers: [layer], stats, config });
    verifyCompression(method, cache, [layer], config);
    const scores = spec.startsWith('keydiff')
      ? keyDiffScores(layer.view())
      : expectedAttentionScores(queries, layer.view(), config, { sinks, future: 512, covariance: true, valueNorm: true });
    const view = cache.views()[0];
    for (let h = 0; h < numKvHeads; h++) {
      const kept = new Set<number>();
      for (let s = 0; s < view.length; s++) kept.add(view.positions[s * numKvHeads + h]);
      assert.equal(kept.size, n / 2);
      const keptScores = [...kept].map((p) => scores[h * n + p]);
      const dropped = Array.from({ length: n }, (_, p) => p).filter((p) => !kept.has(p)).map((p) => scores[h * n + p]);
      assert.ok(Math.min(...keptScores) >= Math.max(...dropped), `${spec} head ${h}: a dropped token outscores a kept one`);
    }
  }
  assert.throws(
    () => createMethod('expectedattention').compress({ layers: [layer], stats: null, config }),
    /expectedattention needs the rotated queries of every prompt token/,
  );
});

test('keydiff keeps the keys that point away from the rest; expectedattention the keys the queries point at', () => {
  const d = 16;
  const small = makeConfig({ numHeads: 2, numKvHeads: 1, headDim: d, hiddenSize: 32, numLayers: 1 });
  const count = 40;
  const keys = new Float32Array(count * d);
  const values = new Float32Array(count * d).fill(1);
  const odd = [9, 23, 31];
  for (let t = 0; t < count; t++) {
    // Every key along channel 0 with a little noise, except three along channel 5.
    keys[t * d + (odd.includes(t) ? 5 : 0)] = 3;
    keys[t * d + 1 + (t % 4)] = 0.1 * (t % 3);
  }
  const cache = new DenseLayerCache(1, d, count);
  cache.append(keys, values, Array.from({ length: count }, (_, t) => t));
  const kept = (spec: string, stats: Parameters<ReturnType<typeof createMethod>['compress']>[0]['stats']) => {
    const view = createMethod(spec).compress({ layers: [cache], stats, config: small }).views()[0];
    return Array.from(view.positions.subarray(0, view.length));
  };
  assert.deepEqual(kept('keydiff:budget=3', null), odd);
  // Queries (rotated at their positions) that point along channel 5 after RoPE at positions far below the wavelength of pair 5.
  const q = new Float32Array(count * 2 * d);
  for (let t = 0; t < count; t++) for (let h = 0; h < 2; h++) q[(t * 2 + h) * d + 5] = 4 + (t % 2);
  const picked = kept('expectedattention:budget=7,future=1,covariance=0', [{ window: null, windowQueries: 0, keySums: null, queries: q }]);
  assert.deepEqual(picked, [0, 1, 2, 3, ...odd], 'the 4 sinks and the keys along the queries');
});

test('think: channel scores match the reference; keys keep exactly the top channels, values every channel, at the cache dtype', () => {
  const got = thinkScores(queries, layer.view().keys, null, { numHeads, numKvHeads, headDim, window: 32 });
  assertClose(Float32Array.from(got), floats(fixture.think), () => false, 'think');
  const stats = [{ window: null, windowQueries: 0, keySums: null, queries }];
  const method = createMethod('think:ratio=0.25');
  const cache = method.compress({ layers: [layer], stats, config });
  verifyCompression(method, cache, [layer], config);
  const view = cache.views()[0];
  const source = layer.view();
  for (let g = 0; g < numKvHeads; g++) {
    const order = Array.from({ length: headDim }, (_, c) => c).sort((a, b) => got[g * headDim + a] - got[g * headDim + b]);
    const pruned = new Set(order.slice(0, headDim / 4));
    for (let s = 0; s < n; s++) {
      for (let c = 0; c < headDim; c++) {
        const at = (s * numKvHeads + g) * headDim + c;
        assert.equal(view.keys[at], pruned.has(c) ? 0 : source.keys[at], `head ${g} slot ${s} channel ${c}`);
        assert.equal(view.values[at], source.values[at]);
      }
    }
  }
  // fp32 keys: 12 of 16 channels and every value channel per token and head, plus 12 channel numbers per head.
  assert.equal(cache.bytes().fullPrecision, n * numKvHeads * (12 + 16) * 4);
  assert.equal(cache.bytes().scales, numKvHeads * 12);
  assert.throws(() => createMethod('think:ratio=0.01').compress({ layers: [layer], stats, config }), /think: ratio 0.01 prunes no channel of a 16-channel head/);
  assert.throws(() => createMethod('snapkv+think+int8'), /two quantization methods/);
});

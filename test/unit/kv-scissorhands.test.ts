// Scissorhands: importance as the paper counts it (attention at least uniform over the keys a query sees), and what it keeps:
// tokens important to many recent queries, over tokens one query attended to heavily.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createMethod, verifyCompression, verifyDecode } from '../../src/engine/kv';
import { DenseLayerCache } from '../../src/engine/kv/cache';
import { importantKeys } from '../../src/engine/kv/methods/scissorhands';
import type { LayerAttention } from '../../src/engine/model/types';
import { headPositions, makeConfig } from './kv-fixture';

test('scissorhands: a key is important to a query when its group-mean attention is at least 1 / the keys that query sees', () => {
  // 2 query heads on 1 KV head, 3 history queries over 6 keys: query r sees keys 0..3+r.
  const w = 3;
  const keys = 6;
  const probs = new Float32Array(2 * w * keys);
  const set = (h: number, r: number, k: number, p: number) => (probs[(h * w + r) * keys + k] = p);
  set(0, 0, 1, 0.5); // mean 0.25 over 4 visible keys: exactly 1/4, important
  set(0, 1, 2, 0.39); // mean 0.195 < 1/5
  set(0, 2, 0, 0.34); // mean 0.17 >= 1/6
  set(1, 2, 0, 0.0);
  set(1, 2, 5, 0.4); // mean 0.2 >= 1/6
  const attention: LayerAttention = { window: probs, windowQueries: w, keySums: null, queries: null };
  assert.deepEqual(importantKeys(attention, keys, 2, 1), [[[1]], [[]], [[0, 5]]]);
});

test('scissorhands keeps the token important to every history query over the one a single query attended to most', () => {
  const d = 8;
  const config = makeConfig({ numLayers: 1, numHeads: 1, numKvHeads: 1, headDim: d, hiddenSize: 8 });
  const n = 64;
  const w = 8; // observationWindow for 64 tokens: min(32, 16, 64/8)
  const layer = new DenseLayerCache(1, d, n);
  layer.append(new Float32Array(n * d).map((_, i) => i % 7), new Float32Array(n * d), Array.from({ length: n }, (_, t) => t));
  const probs = new Float32Array(w * n);
  for (let r = 0; r < w; r++) {
    const visible = n - w + r + 1;
    probs[r * n + 10] = 1.5 / visible; // steady: important to every query
    if (r === 3) probs[r * n + 20] = 0.9; // one query's heavy hitter
    probs[r * n + n - w + r] = 1 - 1.5 / visible - (r === 3 ? 0.9 : 0);
  }
  const stats: LayerAttention[] = [{ window: probs, windowQueries: w, keySums: null, queries: null }];
  // budget 10: the 8 window tokens + 2 more; token 10 (8 counts) and token 20 (1 count) beat the rest (0 counts).
  const cache = createMethod('scissorhands:budget=10').compress({ layers: [layer], stats, config });
  assert.deepEqual(headPositions(cache.views()[0], 0), [10, 20, ...Array.from({ length: w }, (_, i) => n - w + i)]);
  const tighter = createMethod('scissorhands:budget=9');
  const one = tighter.compress({ layers: [layer], stats, config });
  verifyCompression(tighter, one, [layer], config);
  assert.deepEqual(headPositions(one.views()[0], 0).slice(0, 1), [10], 'persistence wins over one large score');
  // Decode: a token nobody attends to is the first evicted; the size stays at the budget.
  for (let s = 0; s < 3; s++) {
    const keys = 9 + 1;
    const step = new Float32Array(keys).fill(0);
    step[0] = 0.5; // token 10 stays important
    step[keys - 1] = 0.5;
    one.append(0, new Float32Array(d), new Float32Array(d), [n + s]);
    one.afterStep?.([{ window: step, windowQueries: 1, keySums: null, queries: null }], n + s);
  }
  verifyDecode(tighter, one, n, 3, config);
  const after = headPositions(one.views()[0], 0);
  assert.ok(after.includes(10), 'the persistently important token survives decode');
  assert.deepEqual(after.slice(-3), [n, n + 1, n + 2]);
});

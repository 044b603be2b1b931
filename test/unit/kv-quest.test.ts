// Quest: page bounds never underestimate q·k, and each step reads the pages with the highest bounds (and the recent tokens).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createMethod, verifyCompression, verifyDecode } from '../../src/engine/kv';
import { DenseLayerCache } from '../../src/engine/kv/cache';
import type { LayerAttention } from '../../src/engine/model/types';
import { pageBound, questGeometry } from '../../src/engine/kv/methods/quest';
import { headPositions, makeConfig, rng } from './kv-fixture';

test('quest: a page bound is at least the q·k of every key in the page, and reached by a key made of its extremes', () => {
  const next = rng(3);
  const d = 8;
  for (let trial = 0; trial < 50; trial++) {
    const keys = Array.from({ length: 16 }, () => Float32Array.from({ length: d }, () => next() * 4 - 2));
    const min = Float32Array.from({ length: d }, (_, c) => Math.min(...keys.map((k) => k[c])));
    const max = Float32Array.from({ length: d }, (_, c) => Math.max(...keys.map((k) => k[c])));
    const query = Float32Array.from({ length: 2 * d }, () => next() - 0.5);
    const bound = pageBound(query, [0, 1], d, min, max, 0);
    for (const k of keys) {
      let dot = 0;
      for (let h = 0; h < 2; h++) for (let c = 0; c < d; c++) dot += query[h * d + c] * k[c];
      assert.ok(dot <= bound + 1e-9, `q·k ${dot} above the bound ${bound}`);
    }
    // For one query head, the key taking max where q > 0 and min where q < 0 reaches the bound exactly.
    const best = Float32Array.from({ length: d }, (_, c) => (query[c] > 0 ? max[c] : min[c]));
    const reached = best.reduce((sum, k, c) => sum + query[c] * k, 0);
    assert.ok(Math.abs(pageBound(query, [0], d, min, max, 0) - reached) < 1e-9);
  }
});

test('quest: starts from the pages the last prompt query attends to, then reads the page matching the new query', () => {
  const d = 16;
  const config = makeConfig({ numLayers: 1, numHeads: 2, numKvHeads: 1, headDim: d, hiddenSize: 32 });
  const n = 200;
  const keys = new Float32Array(n * d);
  const next = rng(5);
  for (let i = 0; i < keys.length; i++) keys[i] = (next() - 0.5) * 0.2;
  // Page 3 (tokens 48..63) holds keys along channel 7.
  for (let t = 48; t < 64; t++) keys[t * d + 7] = 5;
  const layer = new DenseLayerCache(1, d, n);
  layer.append(keys, new Float32Array(n * d), Array.from({ length: n }, (_, t) => t));
  // The last prompt query attends to page 9 (tokens 144..159) only.
  const window = new Float32Array(2 * n);
  for (let h = 0; h < 2; h++) for (let t = 144; t < 160; t++) window[h * n + t] = 1 / 16;
  const stats: LayerAttention[] = [{ window, windowQueries: 1, keySums: null, queries: null }];
  const method = createMethod('quest:budget=16');
  const geometry = questGeometry(n, { budget: 16, page: 16 });
  assert.deepEqual(geometry, { page: 16, pages: 11, local: 24, topk: 1 });
  const cache = method.compress({ layers: [layer], stats, config });
  verifyCompression(method, cache, [layer], config);
  const read = () => headPositions(cache.views()[0], 0);
  assert.deepEqual(read(), [...Array.from({ length: 16 }, (_, i) => 144 + i), ...Array.from({ length: 24 }, (_, i) => 176 + i)]);
  // A decode query along channel 7 selects page 3 for the next step.
  const query = new Float32Array(2 * d);
  query[7] = 1;
  query[d + 7] = 1;
  cache.append(0, new Float32Array(d), new Float32Array(d), [n]);
  cache.afterStep?.([{ window: null, windowQueries: 0, keySums: null, queries: query }], n);
  assert.deepEqual(read().slice(0, 16), Array.from({ length: 16 }, (_, i) => 48 + i));
  assert.equal(read().length, 16 + 25);
  const b = cache.bytes();
  assert.ok(b.active < b.held / 3, `reads ${b.active} of ${b.held} bytes`);
  // 15 more steps complete a page of recent tokens: it becomes selectable, and the read size drops back.
  for (let s = 1; s < 16; s++) {
    cache.append(0, new Float32Array(d), new Float32Array(d), [n + s]);
    cache.afterStep?.([{ window: null, windowQueries: 0, keySums: null, queries: query }], n + s);
  }
  verifyDecode(method, cache, n, 16, config);
  assert.equal(read().length, 16 + 24);
  assert.equal(cache.bytes().blockIndex, 12 * 2 * d * 4, 'a 12th page with its minima and maxima');
  assert.throws(() => createMethod('quest:budget=16').compress({ layers: [layer], stats: null, config }), /quest needs attention probabilities/);
  assert.throws(() => questGeometry(40, { budget: 512, page: 16 }), /leaves no page to skip/);
});

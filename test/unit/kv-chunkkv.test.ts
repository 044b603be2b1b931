// ChunkKV: chunks follow source lines when the runner gives line starts, are ranked by their mean SnapKV score summed
// over KV heads, and are kept whole (all heads alike), only the last one taken cut to fill the budget exactly.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createMethod, verifyCompression } from '../../src/engine/kv';
import { DenseLayerCache } from '../../src/engine/kv/cache';
import { chunkBounds, chunkScores } from '../../src/engine/kv/methods/chunkkv';
import { snapScores } from '../../src/engine/kv/snap';
import type { LayerAttention } from '../../src/engine/model/types';
import { headPositions, makeConfig, makePrefill } from './kv-fixture';

test('chunkkv: fixed chunks without line starts; whole lines packed up to the chunk size with them, long lines split', () => {
  assert.deepEqual(chunkBounds(45, 20), [[0, 20], [20, 40], [40, 45]]);
  // Lines start at 0, 5, 12, 40 (a 28-token line), 44.
  assert.deepEqual(chunkBounds(50, 20, [0, 5, 12, 40, 44]), [[0, 12], [12, 32], [32, 50]]);
  assert.deepEqual(chunkBounds(50, 10, [0, 5, 12, 40, 44]), [[0, 5], [5, 12], [12, 22], [22, 32], [32, 40], [40, 50]]);
  assert.deepEqual(chunkBounds(10, 4, [3, 7]), [[0, 3], [3, 7], [7, 10]]);
});

test('chunkkv: chunk scores are the means of the per-token scores summed over heads', () => {
  const scores = Float32Array.of(1, 2, 3, 4, 10, 20, 30, 40); // 2 heads x 4 tokens
  const { token, chunk } = chunkScores(scores, 2, 4, [[0, 1], [1, 4]]);
  assert.deepEqual(Array.from(token), [11, 22, 33, 44]);
  assert.deepEqual(Array.from(chunk), [11, 33]);
});

test('chunkkv keeps the best-scored lines whole, the same in every head, and exactly the budget', () => {
  const prefill = makePrefill(120, makeConfig({ numLayers: 1 }));
  const lineStarts = Array.from({ length: 12 }, (_, i) => i * 10); // 12 lines of 10 tokens
  const input = { layers: prefill.layers, stats: prefill.stats, config: prefill.config, lineStarts };
  const method = createMethod('chunkkv:budget=45,chunk=10');
  const cache = method.compress(input);
  verifyCompression(method, cache, prefill.layers, prefill.config);
  const view = cache.views()[0];
  const kept = headPositions(view, 0).map((p) => (p - 7) / 3);
  assert.deepEqual(headPositions(view, 1), headPositions(view, 0), 'every head keeps the same tokens');
  assert.equal(kept.length, 45);
  const perLine = new Map<number, number>();
  for (const t of kept) perLine.set(Math.floor(t / 10), (perLine.get(Math.floor(t / 10)) ?? 0) + 1);
  const counts = [...perLine.values()].sort((a, b) => a - b);
  assert.deepEqual(counts, [5, 10, 10, 10, 10], 'four whole lines and the fifth cut to fill the budget');
  // The whole lines are the four with the highest mean score (the observation window's line first).
  const scores = snapScores(prefill.stats[0] as LayerAttention, 120, prefill.config, { window: 32, kernel: 7 }, 'test');
  const { chunk } = chunkScores(scores, 2, 120, chunkBounds(120, 10, lineStarts));
  const best = Array.from(chunk.keys()).sort((a, b) => chunk[b] - chunk[a] || b - a).slice(0, 4).sort((a, b) => a - b);
  assert.deepEqual([...perLine].filter(([, n]) => n === 10).map(([line]) => line).sort((a, b) => a - b), best);
});

test('chunkkv without line starts falls back to fixed chunks', () => {
  const config = makeConfig({ numLayers: 1, numHeads: 1, numKvHeads: 1, headDim: 8, hiddenSize: 8 });
  const n = 80;
  const layer = new DenseLayerCache(1, 8, n);
  layer.append(new Float32Array(n * 8), new Float32Array(n * 8), Array.from({ length: n }, (_, t) => t));
  const w = 10; // observationWindow(80): min(32, 16, 80/8)
  const probs = new Float32Array(w * n);
  for (let r = 0; r < w; r++) probs[r * n + 25] = 1; // the window attends to token 25 only
  const cache = createMethod('chunkkv:budget=40,chunk=20,kernel=1').compress({ layers: [layer], stats: [{ window: probs, windowQueries: w, keySums: null, queries: null }], config });
  // The window's chunk (60..79) first, then the chunk holding token 25 (20..39).
  assert.deepEqual(headPositions(cache.views()[0], 0), [...Array.from({ length: 20 }, (_, i) => 20 + i), ...Array.from({ length: 20 }, (_, i) => 60 + i)]);
});

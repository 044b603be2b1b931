// Token-dropping methods on hand-built attention patterns: the tokens the pattern makes important must be the ones kept.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createMethod, verifyCompression } from '../../src/engine/kv';
import type { LayerAttention } from '../../src/engine/model/types';
import type { MethodCache } from '../../src/engine/kv/method';
import { pyramidBudgets } from '../../src/engine/kv/methods/pyramidkv';
import { decode, headPositions, makeConfig, makePrefill, positionOf, type Prefill } from './kv-fixture';

const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);
const at = (tokens: number[]) => tokens.map(positionOf);

/** Prefill of one layer, 4 query heads over 2 KV heads, with statistics replaced by the given ones. */
function setup(length: number, stats: Partial<LayerAttention>, headDim = 8): Prefill {
  const prefill = makePrefill(length, makeConfig({ numLayers: 1, headDim }));
  prefill.stats = [{ window: null, windowQueries: 0, keySums: null, queries: null, ...stats }];
  return prefill;
}

function run(spec: string, prefill: Prefill): MethodCache {
  const method = createMethod(spec);
  const cache = method.compress({ layers: prefill.layers, stats: prefill.stats, config: prefill.config });
  verifyCompression(method, cache, prefill.layers, prefill.config);
  return cache;
}

/** [numHeads=4, rows, keys] window probabilities from a per-(head, key) weight. */
function windowOf(rows: number, keys: number, weight: (head: number, key: number) => number): Float32Array {
  const out = new Float32Array(4 * rows * keys);
  for (let h = 0; h < 4; h++) for (let r = 0; r < rows; r++) for (let k = 0; k < keys; k++) out[(h * rows + r) * keys + k] = weight(h, k);
  return out;
}

function sumsOf(keys: number, weight: (head: number, key: number) => number): Float32Array {
  return windowOf(1, keys, weight);
}

test('streamingllm: sinks and the recent window, also after decoding', () => {
  const prefill = setup(100, {});
  const method = createMethod('streamingllm:ratio=0.5');
  const cache = method.compress({ layers: prefill.layers, stats: prefill.stats, config: prefill.config });
  for (let h = 0; h < 2; h++) assert.deepEqual(headPositions(cache.views()[0], h), at([...range(0, 4), ...range(54, 100)]));
  decode(method, cache, prefill, 5);
  const expected = [...at([...range(0, 4), ...range(59, 100)]), ...range(100, 105).map(positionOf)];
  for (let h = 0; h < 2; h++) assert.deepEqual(headPositions(cache.views()[0], h), expected);
});

test('streamingllm: sinks=0 is a pure recent window', () => {
  const prefill = setup(40, {});
  const cache = run('streamingllm:budget=10,sinks=0', prefill);
  assert.deepEqual(headPositions(cache.views()[0], 0), at(range(30, 40)));
});

const heavy0 = [3, 5, 11, 17, 25, 33, 48, 61, 72, 80];
const heavy1 = [2, 6, 12, 18, 26, 34, 49, 62, 73, 81];

function h2oSetup(): Prefill {
  // Query heads 0 and 1 read KV head 0, heads 2 and 3 KV head 1. Token 50 is heavy for head 0 only: the group mean still ranks it high.
  return setup(100, {
    keySums: sumsOf(100, (h, k) => {
      const heavy = h < 2 ? heavy0 : heavy1;
      if (heavy.includes(k)) return 100 + k;
      if (k === 50 && h === 0) return 1000;
      return (k % 7) / 10;
    }),
  });
}

test('h2o: heavy hitters by accumulated attention (GQA group mean) plus the recent window, per KV head', () => {
  const cache = run('h2o:budget=21', h2oSetup());
  // 21 kept: 10 recent (90..99) + 11 heavy: token 50 (mean 500) and the ten constructed ones.
  const view = cache.views()[0];
  assert.deepEqual(headPositions(view, 0), at([...heavy0, 50, ...range(90, 100)].sort((a, b) => a - b)));
  // KV head 1 has no token 50; its eleventh pick is the best ordinary score (k mod 7 = 6), the latest such: 83.
  assert.deepEqual(headPositions(view, 1), at([...heavy1, 83, ...range(90, 100)].sort((a, b) => a - b)));
});

test('h2o: decoding evicts the lowest accumulated score outside the recent window', () => {
  const prefill = h2oSetup();
  const method = createMethod('h2o:budget=21');
  const cache = method.compress({ layers: prefill.layers, stats: prefill.stats, config: prefill.config });
  const step = (weight: (head: number, slot: number) => number) => {
    const keys = cache.views()[0].length + 1;
    for (let l = 0; l < 1; l++) cache.append(l, new Float32Array(16), new Float32Array(16), [positionOf(100)]);
    cache.afterStep?.([{ window: null, windowQueries: 0, keySums: sumsOf(keys, weight), queries: null }], positionOf(100));
  };
  // Uniform step attention: token 90 has just left the recent window (recent = 10 of 21) with a tiny score, so it goes.
  step(() => 1 / 22);
  let kept = headPositions(cache.views()[0], 0);
  assert.equal(kept.length, 21);
  assert.ok(!kept.includes(positionOf(90)) && kept.includes(positionOf(3)) && kept.includes(positionOf(100)));
  // Now the token leaving the window (91, slot 11 after the 11 heavy hitters) gets a huge score: the weakest heavy hitter (token 3) goes instead.
  const before = headPositions(cache.views()[0], 0);
  const slot91 = before.indexOf(positionOf(91));
  assert.equal(slot91, 11);
  for (const p of [positionOf(101)]) {
    const keys = cache.views()[0].length + 1;
    cache.append(0, new Float32Array(16), new Float32Array(16), [p]);
    cache.afterStep?.([{ window: null, windowQueries: 0, keySums: sumsOf(keys, (_, s) => (s === slot91 ? 5000 : 0)), queries: null }], p);
  }
  kept = headPositions(cache.views()[0], 0);
  assert.ok(kept.includes(positionOf(91)), 'the newly heavy token was evicted');
  assert.ok(!kept.includes(positionOf(3)), 'the weakest heavy hitter survived');
  assert.ok(kept.includes(positionOf(5)));
});

test('snapkv: keeps the window and what it attends to; pooling spreads to neighbours; GQA averages the group', () => {
  // 128 tokens: the window shrinks to 16 (fewer than 8 windows of 32).
  const stats = {
    window: windowOf(16, 128, (h, k) => {
      if (h === 0 && k === 40) return 1;
      if (h === 1 && k === 50) return 0.6;
      if (h >= 2 && k === 70) return 0.5;
      return 1e-3;
    }),
    windowQueries: 16,
  };
  const exact = run('snapkv:budget=18,kernel=1', setup(128, stats)).views()[0];
  assert.deepEqual(headPositions(exact, 0), at([40, 50, ...range(112, 128)]));
  assert.deepEqual(headPositions(exact, 1).slice(0, 1), at([70]));
  const pooled = run('snapkv:budget=23', setup(128, { ...stats, window: windowOf(16, 128, (h, k) => (h >= 2 && k === 70 ? 0.5 : h < 2 && k === 40 ? 0.5 : 1e-3)) })).views()[0];
  assert.deepEqual(headPositions(pooled, 0), at([...range(37, 44), ...range(112, 128)]));
  assert.deepEqual(headPositions(pooled, 1), at([...range(67, 74), ...range(112, 128)]));
  assert.deepEqual(createMethod('snapkv').needs(128), { windowSums: [16] });
  assert.deepEqual(createMethod('snapkv').needs(4096), { windowSums: [32] });
});

test('tova: keeps what the last query attends to (mean over heads), then evicts the step minimum', () => {
  const score = (k: number) => ((k * 37) % 60) / 60 + 0.001;
  const prefill = setup(60, { window: windowOf(1, 60, (_, k) => score(k)), windowQueries: 1 });
  const method = createMethod('tova:ratio=0.5');
  const cache = method.compress({ layers: prefill.layers, stats: prefill.stats, config: prefill.config });
  const expected = range(0, 60).sort((a, b) => score(b) - score(a)).slice(0, 30).sort((a, b) => a - b);
  for (let h = 0; h < 2; h++) assert.deepEqual(headPositions(cache.views()[0], h), at(expected));
  cache.append(0, new Float32Array(16), new Float32Array(16), [positionOf(60)]);
  // Slot 7 is the minimum on average even though head 3 likes it.
  const window = windowOf(1, 31, (h, s) => (s === 7 ? (h === 3 ? 0.1 : 0) : 0.03));
  cache.afterStep?.([{ window, windowQueries: 1, keySums: null, queries: null }], positionOf(60));
  const kept = headPositions(cache.views()[0], 0);
  assert.equal(kept.length, 30);
  assert.deepEqual(kept, at([...expected.filter((_, i) => i !== 7), 60]));
});

test('pyramidkv: budgets fall linearly and sum to the flat total', () => {
  // avg 150, beta 20: from 2·150 − 7.5 = 292.5 down to 7.5, rounded then adjusted to sum 450.
  assert.deepEqual(pyramidBudgets(300, 150, 3, 20), [292, 150, 8]);
  assert.deepEqual(pyramidBudgets(300, 150, 1, 20), [150]);
  const clamped = pyramidBudgets(100, 90, 4, 20);
  assert.equal(clamped.reduce((a, b) => a + b, 0), 360);
  assert.ok(clamped.every((b, i) => b <= 100 && (i === 0 || b <= clamped[i - 1])), JSON.stringify(clamped));
  const prefill = makePrefill(300, makeConfig({ numLayers: 4, headDim: 8 }));
  const cache = run('pyramidkv:ratio=0.5', prefill);
  const perLayer = cache.tokensPerHead().map((heads) => heads[0]);
  assert.equal(perLayer.reduce((a, b) => a + b, 0), 600);
  assert.ok(perLayer[0] > perLayer[1] && perLayer[1] > perLayer[2] && perLayer[2] > perLayer[3]);
});

test('adakv: heads with concentrated attention give budget to heads with spread attention', () => {
  // 100 tokens: window 12 = the floor; 2·(20 − 12) = 16 picks shared by score across the two KV heads.
  const concentrated = [10, 20, 30, 40, 50];
  const prefill = setup(100, {
    window: windowOf(12, 100, (h, k) => (h < 2 ? (concentrated.includes(k) ? 0.5 : 0) : 0.01)),
    windowQueries: 12,
  });
  const cache = run('adakv:budget=20,kernel=1', prefill);
  const view = cache.views()[0];
  assert.deepEqual(headPositions(view, 0), at([...concentrated, ...range(88, 100)]));
  assert.deepEqual(headPositions(view, 1), at(range(77, 100)));
  // Held bytes count each head's own tokens (17 and 23 here), not both heads padded to 23.
  const { numKvHeads, headDim } = view;
  const tokens = cache.tokensPerHead().flat().reduce((a, b) => a + b, 0);
  const padded = cache.tokensPerHead().map((heads) => Math.max(...heads) * numKvHeads).reduce((a, b) => a + b, 0);
  assert.ok(tokens < padded, `heads should differ: ${JSON.stringify(cache.tokensPerHead())}`);
  assert.equal(cache.bytes().held, tokens * (2 * headDim * 4 + 4));
});

test('random: the same seed keeps the same tokens, another seed others', () => {
  const prefill = setup(200, {});
  const a = headPositions(run('random:ratio=0.5,seed=3', prefill).views()[0], 0);
  const b = headPositions(run('random:ratio=0.5,seed=3', prefill).views()[0], 0);
  const c = headPositions(run('random:ratio=0.5,seed=4', prefill).views()[0], 0);
  const otherHead = headPositions(run('random:ratio=0.5,seed=3', prefill).views()[0], 1);
  assert.equal(a.length, 100);
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
  assert.notDeepEqual(a, otherHead);
  // Not just the first or last half.
  assert.ok(a.some((p) => p < positionOf(50)) && a.some((p) => p > positionOf(150)));
});

test('knorm: keeps the keys with the lowest L2 norm', () => {
  const prefill = setup(100, {});
  const keys = prefill.layers[0].view().keys;
  // Token t's key for head 0 has norm |t − 50| + 1; head 1 keeps its random keys.
  for (let t = 0; t < 100; t++) {
    keys.fill(0, t * 16, t * 16 + 8);
    keys[t * 16] = Math.abs(t - 50) + 1;
  }
  const kept = headPositions(run('knorm:ratio=0.5', prefill).views()[0], 0);
  assert.equal(kept.length, 50);
  for (const t of range(26, 75)) assert.ok(kept.includes(positionOf(t)), `token ${t}`);
  assert.ok(!kept.includes(positionOf(10)) && !kept.includes(positionOf(90)));
});

test('infllm: starts from the blocks the last query reads, then retrieves the block matching the new query', () => {
  // 300 tokens: 4 sinks, blocks of 27 from token 4 (8 blocks), 80 local tokens, top-4 blocks.
  const blockStart = (b: number) => 4 + 27 * b;
  const prefill = setup(300, {
    window: windowOf(1, 300, (_, k) => (k >= blockStart(0) && k < blockStart(4) ? 1 : k >= 220 ? 0.5 : 0)),
    windowQueries: 1,
    keySums: sumsOf(300, () => 1),
  });
  const keys = prefill.layers[0].view().keys;
  for (let t = blockStart(5); t < blockStart(6); t++) for (let h = 0; h < 2; h++) keys.fill(3, (t * 2 + h) * 8, (t * 2 + h + 1) * 8);
  const method = createMethod('infllm');
  const cache = method.compress({ layers: prefill.layers, stats: prefill.stats, config: prefill.config });
  verifyCompression(method, cache, prefill.layers, prefill.config);
  let visible = headPositions(cache.views()[0], 0);
  assert.deepEqual(visible, at([...range(0, 4), ...range(blockStart(0), blockStart(4)), ...range(220, 300)]));
  // Decode one step whose query points along block 5's keys.
  cache.views();
  cache.append(0, new Float32Array(16), new Float32Array(16), [positionOf(300)]);
  const query = new Float32Array(4 * 8).fill(1);
  cache.afterStep?.([{ window: null, windowQueries: 0, keySums: sumsOf(visible.length + 1, () => 0.001), queries: query }], positionOf(300));
  visible = headPositions(cache.views()[0], 0);
  for (const t of range(blockStart(5), blockStart(6))) assert.ok(visible.includes(positionOf(t)), `block 5 token ${t} not retrieved`);
  assert.equal(visible.length, 4 + 81 + 4 * 27);
  const b = cache.bytes();
  assert.ok(b.active < b.held && b.blockStore === 8 * 27 * 2 * 8 * 4 * 2);
});

test('infllm: tokens leaving the local window form a new block', () => {
  const prefill = makePrefill(300, makeConfig({ numLayers: 1, headDim: 8 }));
  const method = createMethod('infllm');
  const cache = method.compress({ layers: prefill.layers, stats: prefill.stats, config: prefill.config });
  const store = cache.bytes().blockStore;
  decode(method, cache, prefill, 26);
  assert.equal(cache.bytes().blockStore, store);
  assert.equal(cache.tokensPerHead()[0][0], 192 + 26);
  decode(method, cache, prefill, 1, 7);
  assert.equal(cache.bytes().blockStore, store + 27 * 2 * 8 * 4 * 2);
  assert.equal(cache.tokensPerHead()[0][0], 192);
});

test('DenseLayerCache.removePerHead matches retain without the removed slot, for shared and per-head slots', () => {
  for (const victims of [
    [3, 3],
    [0, 9],
    [9, 4],
  ]) {
    const a = makePrefill(10, makeConfig({ numLayers: 1, headDim: 8 })).layers[0];
    const b = a.clone();
    a.removePerHead(victims);
    b.retain(victims.map((v) => range(0, 10).filter((s) => s !== v)));
    const [va, vb] = [a.view(), b.view()];
    assert.equal(va.length, 9);
    assert.deepEqual(Array.from(va.keys), Array.from(vb.keys));
    assert.deepEqual(Array.from(va.values), Array.from(vb.values));
    assert.deepEqual(Array.from(va.positions), Array.from(vb.positions));
  }
});

test("snapkv: the window's attention to its own tokens does not pool onto the tokens just before it", () => {
  // 128 tokens, window 16 (tokens 112..127) attending mostly to itself; earlier keys get a flat score except token 20.
  const window = windowOf(16, 128, (_, k) => (k >= 112 ? 0.05 : k === 20 ? 0.01 : 0.001));
  const view = run('snapkv:budget=23', setup(128, { window, windowQueries: 16 })).views()[0];
  // Kernel 7 around token 20 covers 17..23; without masking, 109..111 would win from the window's self-attention.
  assert.deepEqual(headPositions(view, 0), at([...range(17, 24), ...range(112, 128)]));
});

// Runs every registered method on the same synthetic 300-token cache and checks the promises the runner relies on:
// exact sizes, honest byte counts (against sizes computed here), views holding only kept tokens at their original positions, decode.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createMethod, METHODS, verifyCompression, verifyDecode } from '../../src/engine/kv';
import type { MethodCache } from '../../src/engine/kv/method';
import { QuantizedCache } from '../../src/engine/kv/quant/quantized-cache';
import { decode, headPositions, makePrefill, positionOf, rng, rowOf, snapshot, type Prefill } from './kv-fixture';

const T = 300;
const L = 3;
const H = 2; // KV heads
const D = 64;
const F32 = 4;

/** fp32 keys + values + int32 positions for `slots` slots of one layer, plus the validity mask when heads differ. */
function denseLayerBytes(slots: number, mask: boolean): number {
  return slots * H * D * F32 * 2 + slots * H * 4 + (mask ? slots * H : 0);
}

function denseBytes(cache: MethodCache): number {
  return cache
    .tokensPerHead()
    .map((heads) => denseLayerBytes(Math.max(...heads), new Set(heads).size > 1))
    .reduce((a, b) => a + b, 0);
}

/** Heads stored separately: each head's fp32 keys + values + int32 positions for exactly the tokens it holds. */
function raggedBytes(cache: MethodCache): number {
  return cache
    .tokensPerHead()
    .flat()
    .reduce((sum, n) => sum + n * (D * F32 * 2 + 4), 0);
}

/** Per-token schemes: each token-head row of D channels in groups of `group`, `bits` per code, `paramBytes` per scale (and zero). */
function perTokenBytes(tokens: number, bits: number, group: number, paramBytes: number, zeros: boolean): number {
  const groups = Math.ceil(D / group);
  const perStream = Math.ceil((tokens * D * bits) / 8) + tokens * groups * paramBytes * (zeros ? 2 : 1);
  return L * (H * 2 * perStream + tokens * H * 4);
}

/** KIVI: `quantized` tokens per head (keys per channel over 32-token groups, values per token over 32-channel groups), the rest fp32. */
function kiviBytes(tokens: number, quantized: number, bits: number): number {
  const keyGroups = (quantized / 32) * D;
  const valueGroups = quantized * (D / 32);
  const perHead = 2 * ((quantized * D * bits) / 8) + (keyGroups + valueGroups) * 2 * 2 + (tokens - quantized) * D * F32 * 2;
  return L * (H * perHead + tokens * H * 4);
}

/** Per-token quantized cache whose heads hold different numbers of tokens (validity mask present when they differ). */
function perHeadQuantBytes(cache: MethodCache, bits: number, group: number, paramBytes: number, zeros: boolean): number {
  return cache
    .tokensPerHead()
    .map((heads) => {
      const slots = Math.max(...heads);
      const mask = new Set(heads).size > 1 ? slots * H : 0;
      const streams = heads.map((n) => 2 * (Math.ceil((n * D * bits) / 8) + n * Math.ceil(D / group) * paramBytes * (zeros ? 2 : 1)));
      return streams.reduce((a, b) => a + b, 0) + slots * H * 4 + mask;
    })
    .reduce((a, b) => a + b, 0);
}

/** Row formats (llama.cpp's blocks): every head holds `keyRow` + `valueRow` bytes per token, plus slot positions and validity. */
function rowFormatBytes(cache: MethodCache, keyRow: number, valueRow: number): number {
  return cache
    .tokensPerHead()
    .map((heads) => {
      const slots = Math.max(...heads);
      const mask = new Set(heads).size > 1 ? slots * H : 0;
      return heads.reduce((sum, n) => sum + n * (keyRow + valueRow), 0) + slots * H * 4 + mask;
    })
    .reduce((a, b) => a + b, 0);
}

// llama.cpp rows of 64 channels: two 32-element blocks of q8_0 (34 bytes), q4_0 / iq4_nl (18), q5_1 (24), or 128 bytes of bf16.
const Q8_0_ROW = 68;
const Q4_0_ROW = 36;
const Q5_1_ROW = 48;
const BF16_ROW = 128;

// InfLLM on 300 tokens: window min(256, 300/4) = 75, middle 221, block min(128, max(8, 221/8)) = 27, 8 blocks (216 tokens),
// resident 300 - 216 = 84 (4 sinks + 80 local), top-k min(16, 8/2) = 4, so attention sees 84 + 4·27 = 192 tokens.
const INFLLM_BLOCK_BYTES = 27 * H * D * F32 * 2;
const INFLLM_HELD = L * (84 * H * D * F32 * 2 + 84 * H * 4 + 8 * INFLLM_BLOCK_BYTES + 8 * 27 * 4 + 8 * H * 4 * D * F32);
const INFLLM_ACTIVE = L * (84 * H * D * F32 * 2 + 84 * H * 4 + 8 * H * 4 * D * F32 + 4 * (INFLLM_BLOCK_BYTES + 27 * 4));

// Quest on 300 tokens, pages of 16: 28 recent tokens always read (the last full page + 12), 17 selectable pages, of which
// min(512 / 16, 17 / 2) = 8 are read: 8·16 + 28 = 156 tokens per head; each page keeps fp32 key minima and maxima per head.
const QUEST_SLOT = H * D * F32 * 2;
const QUEST_INDEX = 17 * 2 * H * D * F32;
const QUEST_HELD = L * (T * QUEST_SLOT + T * H * 4 + QUEST_INDEX);
const QUEST_ACTIVE = L * (28 * QUEST_SLOT + 28 * H * 4 + QUEST_INDEX + 8 * 16 * (QUEST_SLOT + H * 4));

interface Case {
  spec: string;
  /** Tokens per head right after compression, when every head of every layer keeps the same number. */
  perHead: number | null;
  /** Tokens per layer (over heads) when only the layer totals are fixed. */
  perLayer?: number[];
  total: number;
  bytes(cache: MethodCache, decoded: number): number;
  active?: number;
  /** Largest |x − x̂| a view element may show (0: exact copies). */
  tolerance: number;
  decode: 'grows' | 'fixed' | 'bounded';
}

const half = 150; // ratio 0.5 of 300 tokens
const cases: Case[] = [
  { spec: 'full', perHead: T, total: T * H * L, bytes: (_, n) => L * denseLayerBytes(T + n, false), tolerance: 0, decode: 'grows' },
  { spec: 'random:ratio=0.5', perHead: half, total: half * H * L, bytes: denseBytes, tolerance: 0, decode: 'grows' },
  { spec: 'knorm:ratio=0.5', perHead: half, total: half * H * L, bytes: denseBytes, tolerance: 0, decode: 'grows' },
  { spec: 'keydiff:ratio=0.5', perHead: half, total: half * H * L, bytes: denseBytes, tolerance: 0, decode: 'grows' },
  { spec: 'expectedattention:ratio=0.5', perHead: half, total: half * H * L, bytes: denseBytes, tolerance: 0, decode: 'grows' },
  { spec: 'streamingllm:ratio=0.5', perHead: half, total: half * H * L, bytes: () => L * denseLayerBytes(half, false), tolerance: 0, decode: 'fixed' },
  { spec: 'h2o:budget=120', perHead: 120, total: 120 * H * L, bytes: () => L * denseLayerBytes(120, false), tolerance: 0, decode: 'fixed' },
  { spec: 'scissorhands:ratio=0.5', perHead: half, total: half * H * L, bytes: () => L * denseLayerBytes(half, false), tolerance: 0, decode: 'fixed' },
  { spec: 'snapkv:ratio=0.75', perHead: 75, total: 75 * H * L, bytes: denseBytes, tolerance: 0, decode: 'grows' },
  { spec: 'chunkkv:ratio=0.5', perHead: half, total: half * H * L, bytes: denseBytes, tolerance: 0, decode: 'grows' },
  { spec: 'pyramidkv:ratio=0.5', perHead: null, total: half * H * L, bytes: denseBytes, tolerance: 0, decode: 'grows' },
  { spec: 'adakv:ratio=0.5', perHead: null, perLayer: [half * H, half * H, half * H], total: half * H * L, bytes: raggedBytes, tolerance: 0, decode: 'grows' },
  { spec: 'tova:ratio=0.5', perHead: half, total: half * H * L, bytes: () => L * denseLayerBytes(half, false), tolerance: 0, decode: 'fixed' },
  { spec: 'infllm:topk=16', perHead: 192, total: 192 * H * L, bytes: () => INFLLM_HELD, active: INFLLM_ACTIVE, tolerance: 0, decode: 'bounded' },
  { spec: 'quest:budget=512', perHead: 156, total: 156 * H * L, bytes: () => QUEST_HELD, active: QUEST_ACTIVE, tolerance: 0, decode: 'bounded' },
  // 300 tokens: floor((300 − 128) / 32)·32 = 160 quantized, 140 in the residual; 40 decode steps later 192 and 148.
  { spec: 'kivi:bits=2', perHead: T, total: T * H * L, bytes: (_, n) => (n ? kiviBytes(T + n, 192, 2) : kiviBytes(T, 160, 2)), tolerance: 4 / 3 / 2 + 1e-2, decode: 'grows' },
  { spec: 'kivi:bits=4', perHead: T, total: T * H * L, bytes: (_, n) => (n ? kiviBytes(T + n, 192, 4) : kiviBytes(T, 160, 4)), tolerance: 4 / 15 / 2 + 1e-2, decode: 'grows' },
  { spec: 'flexgen:bits=4', perHead: T, total: T * H * L, bytes: (_, n) => perTokenBytes(T + n, 4, 64, 2, true), tolerance: 4 / 15 / 2 + 1e-2, decode: 'grows' },
  { spec: 'int8', perHead: T, total: T * H * L, bytes: (_, n) => perTokenBytes(T + n, 8, 32, 2, false), tolerance: 2 / 127 / 2 + 1e-3, decode: 'grows' },
  { spec: 'fp8', perHead: T, total: T * H * L, bytes: (_, n) => perTokenBytes(T + n, 8, D, 4, false), tolerance: 2 * 2 ** -4 + 1e-6, decode: 'grows' },
  // q8_0 keys err by at most half a step of absmax/127 (keys in ±2); q4_0 values by up to a step of absmax/8 at the clamped end.
  { spec: 'llamacpp:k=q8_0,v=q4_0', perHead: T, total: T * H * L, bytes: (cache) => rowFormatBytes(cache, Q8_0_ROW, Q4_0_ROW), tolerance: 1 / 8 + 1e-3, decode: 'grows' },
  { spec: 'llamacpp:k=bf16,v=iq4_nl', perHead: T, total: T * H * L, bytes: (cache) => rowFormatBytes(cache, BF16_ROW, Q4_0_ROW), tolerance: 0.15, decode: 'grows' },
  // vLLM's fp8: one code byte per element and an fp32 scale per layer for keys and one for values; relative error 2^-4 (e4m3), 2^-3 (e5m2).
  { spec: 'vllm:dtype=fp8_e4m3', perHead: T, total: T * H * L, bytes: (cache) => rowFormatBytes(cache, D, D) + L * 8, tolerance: 2 * 2 ** -4 + 1e-6, decode: 'grows' },
  { spec: 'vllm:dtype=fp8_e5m2,scale=calculated', perHead: T, total: T * H * L, bytes: (cache) => rowFormatBytes(cache, D, D) + L * 8, tolerance: 2 * 2 ** -3 + 1e-6, decode: 'grows' },
  // ThinK: half of each key's channels (fp32 here, the fixture's dtype) and every value channel, plus one byte per kept channel
  // and head; a pruned channel reads as 0, so a key element may be off by its whole value (keys in ±2).
  { spec: 'think:ratio=0.5', perHead: T, total: T * H * L, bytes: (cache) => rowFormatBytes(cache, 32 * F32, D * F32) + L * H * 32, tolerance: 2, decode: 'grows' },
  { spec: 'llmlingua:ratio=0.5', perHead: T, total: T * H * L, bytes: (_, n) => L * denseLayerBytes(T + n, false), tolerance: 0, decode: 'grows' },
  { spec: 'snapkv:ratio=0.5+kivi:bits=4,residual=32', perHead: half, total: half * H * L, bytes: (_, n) => (n ? kiviBytes(half + n, 128, 4) : kiviBytes(half, 96, 4)), tolerance: 4 / 15 / 2 + 1e-2, decode: 'grows' },
  { spec: 'adakv:ratio=0.5+flexgen:bits=4', perHead: null, perLayer: [half * H, half * H, half * H], total: half * H * L, bytes: (cache) => perHeadQuantBytes(cache, 4, 64, 2, true), tolerance: 4 / 15 / 2 + 1e-2, decode: 'grows' },
  { spec: 'streamingllm:ratio=0.5+int8', perHead: half, total: half * H * L, bytes: () => perTokenBytes(half, 8, 32, 2, false), tolerance: 2 / 127 / 2 + 1e-3, decode: 'fixed' },
  { spec: 'h2o:budget=120+fp8', perHead: 120, total: 120 * H * L, bytes: () => perTokenBytes(120, 8, D, 4, false), tolerance: 2 * 2 ** -4 + 1e-6, decode: 'fixed' },
  { spec: 'tova:ratio=0.5+flexgen:bits=4', perHead: half, total: half * H * L, bytes: () => perTokenBytes(half, 4, 64, 2, true), tolerance: 4 / 15 / 2 + 1e-2, decode: 'fixed' },
  { spec: 'streamingllm:ratio=0.5+llamacpp:k=q5_1,v=q4_0', perHead: half, total: half * H * L, bytes: (cache) => rowFormatBytes(cache, Q5_1_ROW, Q4_0_ROW), tolerance: 1 / 8 + 1e-3, decode: 'fixed' },
  { spec: 'adakv:ratio=0.5+llamacpp:k=q8_0,v=q8_0', perHead: null, perLayer: [half * H, half * H, half * H], total: half * H * L, bytes: (cache) => rowFormatBytes(cache, Q8_0_ROW, Q8_0_ROW), tolerance: 2 / 127 / 2 + 1e-3, decode: 'grows' },
  { spec: 'h2o:budget=120+vllm:dtype=fp8_e5m2', perHead: 120, total: 120 * H * L, bytes: (cache) => rowFormatBytes(cache, D, D) + L * 8, tolerance: 2 * 2 ** -3 + 1e-6, decode: 'fixed' },
  { spec: 'keydiff:ratio=0.5+llamacpp:k=q8_0,v=q4_0', perHead: half, total: half * H * L, bytes: (cache) => rowFormatBytes(cache, Q8_0_ROW, Q4_0_ROW), tolerance: 1 / 8 + 1e-3, decode: 'grows' },
  { spec: 'scissorhands:budget=120+llamacpp:k=q4_0,v=q8_0', perHead: 120, total: 120 * H * L, bytes: (cache) => rowFormatBytes(cache, Q4_0_ROW, Q8_0_ROW), tolerance: 1 / 4 + 1e-3, decode: 'fixed' },
  { spec: 'snapkv:ratio=0.5+think:ratio=0.25', perHead: half, total: half * H * L, bytes: (cache) => rowFormatBytes(cache, 48 * F32, D * F32) + L * H * 48, tolerance: 2, decode: 'grows' },
  { spec: 'knorm:ratio=0.5+int8', perHead: half, total: half * H * L, bytes: (_, n) => perTokenBytes(half + n, 8, 32, 2, false), tolerance: 2 / 127 / 2 + 1e-3, decode: 'grows' },
];

test('the matrix covers every registered method', () => {
  const covered = new Set(cases.flatMap((c) => c.spec.split('+').map((stage) => stage.split(':')[0])));
  for (const m of METHODS) assert.ok(covered.has(m.name), `no matrix case for ${m.name}`);
});

function checkBytesAddUp(cache: MethodCache): void {
  const b = cache.bytes();
  assert.equal(b.held, b.packed + b.scales + b.zeroPoints + b.fullPrecision + b.positions + b.blockStore + b.blockIndex);
  assert.ok(b.active <= b.held);
}

/** Every view holds per head exactly the reported tokens, each at an original position, with data matching that token. */
function checkViews(cache: MethodCache, prefill: Prefill, tolerance: number, decoded: Set<number>): void {
  const counts = cache.tokensPerHead();
  cache.views().forEach((view, l) => {
    for (let h = 0; h < H; h++) {
      const positions = headPositions(view, h);
      assert.equal(positions.length, counts[l][h], `layer ${l} head ${h}: view size vs tokensPerHead`);
      assert.equal(new Set(positions).size, positions.length, 'a position appears twice');
      for (let s = 0; s < view.length; s++) {
        if (view.valid && !view.valid[s * H + h]) continue;
        const p = view.positions[s * H + h];
        if (decoded.has(p)) continue;
        const t = (p - 7) / 3;
        assert.ok(Number.isInteger(t) && t >= 0 && t < prefill.length, `position ${p} is neither a prompt nor a decoded position`);
        for (const [data, original] of [
          [view.keys, prefill.keys[l]],
          [view.values, prefill.values[l]],
        ] as const) {
          const got = rowOf(data, s, h, view);
          const want = rowOf(original, t, h, view);
          for (let c = 0; c < D; c++) {
            assert.ok(Math.abs(got[c] - want[c]) <= tolerance, `layer ${l} head ${h} position ${p} channel ${c}: ${got[c]} vs ${want[c]}`);
          }
        }
      }
    }
  });
}

/** For quantized caches, what attention reads must be exactly what the packed store decodes to. */
function checkReadBack(cache: MethodCache): void {
  if (!(cache instanceof QuantizedCache)) return;
  cache.views().forEach((view, l) => {
    const stored = cache.readBack(l);
    for (let i = 0; i < view.length * H; i++) {
      if (view.valid && !view.valid[i]) continue;
      assert.deepEqual(stored.keys.subarray(i * D, (i + 1) * D), view.keys.subarray(i * D, (i + 1) * D), `layer ${l} keys of slot-head ${i}`);
      assert.deepEqual(stored.values.subarray(i * D, (i + 1) * D), view.values.subarray(i * D, (i + 1) * D));
    }
  });
}

for (const c of cases) {
  test(`matrix: ${c.spec}`, async () => {
    const prefill = makePrefill(T);
    const method = createMethod(c.spec);
    const needs = method.needs(T);
    assert.ok((needs.window ?? 0) <= 32, 'needs a wider window than the fixture provides');
    if (needs.queries) {
      // Rotated prompt queries (Expected Attention), from a generator of their own so the other statistics stay as they were.
      const next = rng(7);
      for (const stats of prefill.stats) stats.queries = new Float32Array(T * prefill.config.numHeads * D).map(() => next() - 0.5);
    }
    if (method.compressPrompt) {
      const tokens = Array.from({ length: T }, (_, i) => 1000 + i);
      const info = async (t: number[]) => new Float32Array(t.length).map((_, i) => (i * 7919) % 101);
      const shorter = await method.compressPrompt(tokens, { selfInformation: info, protectedSuffix: 20 });
      // 4 first + 20 question tokens kept; half of the 276 in between.
      assert.equal(shorter.length, 4 + 20 + 138);
    }
    const before = snapshot(prefill.layers);
    const cache = method.compress({ layers: prefill.layers, stats: prefill.stats, config: prefill.config });
    assert.deepEqual(snapshot(prefill.layers), before, 'compress() modified the prefill cache');

    const verification = verifyCompression(method, cache, prefill.layers, prefill.config);
    assert.equal(verification.note, c.spec === 'full' ? 'no compression (full cache)' : null);
    const counts = cache.tokensPerHead();
    assert.equal(counts.flat().reduce((a, b) => a + b, 0), c.total);
    if (c.perHead !== null) for (const heads of counts) for (const n of heads) assert.equal(n, c.perHead);
    if (c.perLayer) assert.deepEqual(counts.map((heads) => heads[0] + heads[1]), c.perLayer);

    checkBytesAddUp(cache);
    assert.equal(cache.bytes().held, c.bytes(cache, 0), 'held bytes vs the size computed from the layout');
    assert.equal(cache.bytes().active, c.active ?? c.bytes(cache, 0));
    checkViews(cache, prefill, c.tolerance, new Set());
    checkReadBack(cache);

    const steps = 40;
    const before2 = cache.tokensPerHead();
    const keptBefore = cache.views().map((view) => [0, 1].map((h) => new Set(headPositions(view, h))));
    const appended = decode(method, cache, prefill, steps);
    verifyDecode(method, cache, T, steps, prefill.config);
    const after = cache.tokensPerHead();
    after.forEach((heads, l) =>
      heads.forEach((n, h) => {
        if (c.decode === 'grows') assert.equal(n, before2[l][h] + steps);
        if (c.decode === 'fixed') assert.equal(n, before2[l][h]);
        if (c.decode === 'bounded') assert.ok(n >= before2[l][h] && n < before2[l][h] + 27);
      }),
    );
    checkBytesAddUp(cache);
    if (c.decode !== 'bounded') assert.equal(cache.bytes().held, c.bytes(cache, c.decode === 'grows' ? steps : 0), 'held bytes after decode');
    checkReadBack(cache);
    checkViews(cache, prefill, Math.max(c.tolerance, 0), new Set(appended));
    if (c.decode !== 'bounded') {
      // No evicted token comes back: after decoding, a head holds only what it kept before plus decoded tokens.
      cache.views().forEach((view, l) => {
        for (let h = 0; h < H; h++) {
          for (const p of headPositions(view, h)) assert.ok(keptBefore[l][h].has(p) || appended.includes(p), `evicted position ${p} is back`);
        }
      });
    }
    if (!c.spec.startsWith('tova')) {
      const last = appended[appended.length - 1];
      for (const view of cache.views()) for (let h = 0; h < H; h++) assert.ok(headPositions(view, h).includes(last), 'the newest token is missing');
    }
    if (c.decode === 'grows') {
      for (const view of cache.views()) for (let h = 0; h < H; h++) for (const p of appended) assert.ok(headPositions(view, h).includes(p));
    }
  });
}

test('matrix: positions in the fixture are not slot indices', () => {
  assert.notEqual(positionOf(0), 0);
});

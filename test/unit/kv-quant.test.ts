import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createMethod, verifyCompression } from '../../src/engine/kv';
import { BitStream } from '../../src/engine/kv/quant/bits';
import { decodeE4M3, encodeE4M3 } from '../../src/engine/kv/quant/fp8';
import { fromHalfBits, roundHalfUp, toHalfBits } from '../../src/engine/kv/quant/half';
import type { MethodCache } from '../../src/engine/kv/method';
import { QuantizedCache, RowQueue } from '../../src/engine/kv/quant/quantized-cache';
import { DenseLayerCache } from '../../src/engine/kv/cache';
import { makeCodec, type QuantScheme } from '../../src/engine/kv/quant/scheme';
import { decode, makePrefill, positionOf, rowOf, type Prefill } from './kv-fixture';

/** Decodes an E4M3 byte from its bit fields as the OCP FP8 spec tabulates them (independent of the library). */
function referenceE4M3(byte: number): number {
  const bits = byte.toString(2).padStart(8, '0');
  const sign = bits[0] === '1' ? -1 : 1;
  const exponent = parseInt(bits.slice(1, 5), 2);
  const mantissa = parseInt(bits.slice(5), 2);
  if (exponent === 0b1111 && mantissa === 0b111) return NaN;
  if (exponent === 0) return sign * (mantissa / 8) * Math.pow(2, 1 - 7);
  return sign * (1 + mantissa / 8) * Math.pow(2, exponent - 7);
}

test('fp16: known bit patterns', () => {
  const cases: [number, number][] = [
    [1, 0x3c00],
    [-2, 0xc000],
    [65504, 0x7bff],
    [2 ** -14, 0x0400],
    [2 ** -24, 0x0001],
    [0.1, 0x2e66],
    [1 / 3, 0x3555],
    [65520, 0x7c00], // rounds up past the largest finite value
    [1 + 2 ** -11, 0x3c00], // tie goes to the even mantissa
    [1 + 3 * 2 ** -11, 0x3c02],
    [2 ** -25, 0x0000], // tie between 0 and the smallest subnormal: even is 0
    [3 * 2 ** -25, 0x0002],
  ];
  for (const [value, bits] of cases) assert.equal(toHalfBits(value), bits, `${value}`);
  assert.equal(fromHalfBits(0x3555), 0.333251953125);
  assert.equal(fromHalfBits(0x0001), 2 ** -24);
  assert.equal(fromHalfBits(0xfbff), -65504);
  assert.ok(roundHalfUp(0.1) >= 0.1 && roundHalfUp(0.1) - 0.1 < 2 ** -13);
});

test('fp8 e4m3: known values, saturation, subnormals, NaN', () => {
  const cases: [number, number][] = [
    [448, 0x7e],
    [-448, 0xfe],
    [500, 0x7e],
    [1e9, 0x7e],
    [464, 0x7e],
    [1, 0x38],
    [-1, 0xb8],
    [240, 0x77],
    [0.015625, 0x08], // 2^-6, the smallest normal
    [2 ** -9, 0x01], // the smallest subnormal
    [7 * 2 ** -9, 0x07], // the largest subnormal
    [2 ** -10, 0x00], // halfway to the smallest subnormal: ties to even (0)
    [3 * 2 ** -10, 0x02], // 1.5 subnormal steps: ties to even (2)
    [1.0625, 0x38], // halfway between 1 and 1.125: even mantissa 0
    [1.1875, 0x3a], // halfway between 1.125 and 1.25: even mantissa 2
    [1.07, 0x39],
    [0, 0x00],
  ];
  for (const [value, byte] of cases) assert.equal(encodeE4M3(value), byte, `encode ${value}`);
  assert.equal(encodeE4M3(NaN), 0x7f);
  assert.equal(encodeE4M3(-0), 0x80);
  assert.ok(Number.isNaN(decodeE4M3(0x7f)) && Number.isNaN(decodeE4M3(0xff)));
  assert.equal(decodeE4M3(0x7e), 448);
  assert.equal(decodeE4M3(0x08), 0.015625);
  assert.equal(decodeE4M3(0x01), 0.001953125);
});

test('fp8 e4m3: every code decodes as the reference and re-encodes to itself; midpoints round to even', () => {
  const positive: number[] = [];
  for (let byte = 0; byte < 256; byte++) {
    const reference = referenceE4M3(byte);
    if (Number.isNaN(reference)) {
      assert.ok(Number.isNaN(decodeE4M3(byte)));
      continue;
    }
    assert.equal(decodeE4M3(byte), reference, `decode 0x${byte.toString(16)}`);
    assert.equal(encodeE4M3(reference), byte === 0x80 ? 0x80 : byte, `encode ${reference}`);
    if (byte < 0x80) positive.push(byte);
  }
  for (let i = 0; i + 1 < positive.length; i++) {
    const [lo, hi] = [referenceE4M3(positive[i]), referenceE4M3(positive[i + 1])];
    const mid = (lo + hi) / 2;
    assert.equal(encodeE4M3(mid), positive[i] % 2 === 0 ? positive[i] : positive[i + 1], `midpoint ${mid}`);
    assert.equal(encodeE4M3(mid + (hi - lo) / 1000), positive[i + 1]);
    assert.equal(encodeE4M3(mid - (hi - lo) / 1000), positive[i]);
  }
});

test('bit packing: codes of any width come back unchanged, back to back', () => {
  for (const bits of [2, 3, 4, 8]) {
    const stream = new BitStream(bits);
    const first = Array.from({ length: 37 }, (_, i) => (i * 5 + 1) % 2 ** bits);
    const second = Array.from({ length: 11 }, (_, i) => (i * 3) % 2 ** bits);
    const a = stream.write(first);
    const b = stream.write(second);
    assert.equal(b, 37 * bits);
    const out1 = new Uint8Array(37);
    const out2 = new Uint8Array(11);
    stream.read(a, out1);
    stream.read(b, out2);
    assert.deepEqual(Array.from(out1), first);
    assert.deepEqual(Array.from(out2), second);
    assert.equal(stream.used().byteLength, Math.ceil((48 * bits) / 8));
  }
  const two = new BitStream(2);
  two.write([1, 2, 3, 0]);
  assert.equal(two.used()[0], 0b00111001); // little-endian within the byte: code i at bits 2i..2i+1
});

function compress(spec: string, prefill: Prefill): MethodCache {
  const method = createMethod(spec);
  const cache = method.compress({ layers: prefill.layers, stats: prefill.stats, config: prefill.config });
  verifyCompression(method, cache, prefill.layers, prefill.config);
  return cache;
}

/** Bound for asymmetric b-bit quantization of a group spanning [min, max], with fp16 scale and zero-point. */
function uniformBound(group: number[], bits: number): number {
  const min = Math.min(...group);
  const max = Math.max(...group);
  return (max - min) / (2 ** bits - 1) / 2 + 2 ** -10 * Math.max(Math.abs(min), Math.abs(max)) + 1e-6;
}

function checkGroups(
  prefill: Prefill,
  cache: MethodCache,
  which: 'keys' | 'values',
  groups: (t: number, c: number) => [number, number][],
  bound: (group: number[]) => number,
  tokens: number,
): number {
  const { numKvHeads: heads, headDim: d } = prefill.config;
  let worst = 0;
  cache.views().forEach((view, l) => {
    const original = which === 'keys' ? prefill.keys[l] : prefill.values[l];
    const got = which === 'keys' ? view.keys : view.values;
    for (let h = 0; h < heads; h++) {
      for (let t = 0; t < tokens; t++) {
        assert.equal(view.positions[t * heads + h], positionOf(t));
        for (let c = 0; c < d; c++) {
          const group = groups(t, c).map(([gt, gc]) => rowOf(original, gt, h, view)[gc]);
          const error = Math.abs(rowOf(got, t, h, view)[c] - rowOf(original, t, h, view)[c]);
          worst = Math.max(worst, error);
          assert.ok(error <= bound(group), `layer ${l} head ${h} token ${t} channel ${c}: error ${error} > ${bound(group)}`);
        }
      }
    }
  });
  return worst;
}

const channelsOfToken = (size: number, d = 64) => (t: number, c: number): [number, number][] => {
  const start = Math.floor(c / size) * size;
  return Array.from({ length: Math.min(size, d - start) }, (_, i) => [t, start + i]);
};
const tokensOfChannel = (size: number) => (t: number, c: number): [number, number][] => {
  const start = Math.floor(t / size) * size;
  return Array.from({ length: size }, (_, i) => [start + i, c]);
};

for (const bits of [2, 4]) {
  test(`kivi-${bits}: keys per channel over 32 tokens, values per token over 32 channels, residual exact`, () => {
    const prefill = makePrefill(300);
    const cache = compress(`kivi:bits=${bits}`, prefill);
    // 300 tokens, residual 128: floor(172 / 32)·32 = 160 quantized.
    const keyError = checkGroups(prefill, cache, 'keys', tokensOfChannel(32), (g) => uniformBound(g, bits), 160);
    const valueError = checkGroups(prefill, cache, 'values', channelsOfToken(32), (g) => uniformBound(g, bits), 160);
    assert.ok(keyError > 0.01 && valueError > 0.001, 'nothing was actually quantized');
    cache.views().forEach((view, l) => {
      for (let t = 160; t < 300; t++) {
        for (let h = 0; h < 2; h++) {
          assert.deepEqual(rowOf(view.keys, t, h, view), rowOf(prefill.keys[l], t, h, view));
          assert.deepEqual(rowOf(view.values, t, h, view), rowOf(prefill.values[l], t, h, view));
        }
      }
    });
    const b = cache.bytes();
    assert.equal(b.packed, 3 * 2 * 2 * (160 * 64 * bits) / 8);
    assert.equal(b.fullPrecision, 3 * 2 * 2 * 140 * 64 * 4);
  });
}

test('kivi: decode moves whole key groups out of the residual and keeps the recent 128 exact', () => {
  const prefill = makePrefill(300);
  const method = createMethod('kivi:bits=2');
  const cache = method.compress({ layers: prefill.layers, stats: prefill.stats, config: prefill.config });
  const residualBefore = cache.bytes().fullPrecision;
  decode(method, cache, prefill, 19); // residual 140 -> 159: no full group beyond 128 yet
  assert.equal(cache.bytes().fullPrecision, residualBefore + 3 * 2 * 2 * 19 * 64 * 4);
  decode(method, cache, prefill, 1, 5); // 160 -> one 32-token group quantized, 128 left
  assert.equal(cache.bytes().fullPrecision, 3 * 2 * 2 * 128 * 64 * 4);
  assert.equal(cache.quantizedElements(), 3 * 2 * 2 * 192 * 64);
  // Tokens 160..191 were the group just quantized: now within the 2-bit bound, no longer exact.
  const keyError = checkGroups(prefill, cache, 'keys', tokensOfChannel(32), (g) => uniformBound(g, 2), 192);
  assert.ok(keyError > 0.01);
  const view = cache.views()[0];
  for (let t = 192; t < 300; t++) assert.deepEqual(rowOf(view.keys, t, 1, view), rowOf(prefill.keys[0], t, 1, view));
});

test('flexgen-4: asymmetric groups of 64 channels per token', () => {
  const prefill = makePrefill(100);
  const cache = compress('flexgen:bits=4', prefill);
  for (const which of ['keys', 'values'] as const) {
    const worst = checkGroups(prefill, cache, which, channelsOfToken(64), (g) => uniformBound(g, 4), 100);
    assert.ok(worst > 0.005);
  }
  assert.equal(cache.bytes().packed, 3 * 2 * 2 * (100 * 64 * 4) / 8);
});

test('flexgen-2 with groups of 16 uses the bound of each 16-channel group', () => {
  const prefill = makePrefill(60);
  const cache = compress('flexgen:bits=2,group=16', prefill);
  checkGroups(prefill, cache, 'keys', channelsOfToken(16), (g) => uniformBound(g, 2), 60);
  assert.equal(cache.bytes().scales, 3 * 2 * 2 * 60 * 4 * 2);
});

test('int8 (q8_0 layout): symmetric, absmax/127 fp16 scale per 32 channels', () => {
  const prefill = makePrefill(80);
  const cache = compress('int8', prefill);
  const bound = (g: number[]) => (Math.max(...g.map(Math.abs)) / 127 / 2) * (1 + 2 ** -9) + 1e-7;
  for (const which of ['keys', 'values'] as const) {
    const worst = checkGroups(prefill, cache, which, channelsOfToken(32), bound, 80);
    assert.ok(worst > 1e-4);
  }
  const b = cache.bytes();
  assert.equal(b.packed, 3 * 2 * 2 * 80 * 64);
  assert.equal(b.scales, 3 * 2 * 2 * 80 * 2 * 2);
  assert.equal(b.zeroPoints, 0);
});

test('fp8: e4m3 codes of x / (absmax/448) per token and head', () => {
  const prefill = makePrefill(80);
  const cache = compress('fp8', prefill);
  const bound = (x: number, scale: number) => (Math.abs(x) / scale) * 2 ** -4 * scale + 2 ** -10 * scale + 1e-7;
  const { numKvHeads: heads } = prefill.config;
  cache.views().forEach((view, l) => {
    for (let t = 0; t < 80; t++) {
      for (let h = 0; h < heads; h++) {
        for (const [got, original] of [
          [rowOf(view.keys, t, h, view), rowOf(prefill.keys[l], t, h, view)],
          [rowOf(view.values, t, h, view), rowOf(prefill.values[l], t, h, view)],
        ]) {
          const scale = Math.max(...Array.from(original, Math.abs)) / 448;
          for (let c = 0; c < 64; c++) assert.ok(Math.abs(got[c] - original[c]) <= bound(original[c], scale), `${got[c]} vs ${original[c]}`);
          // Each element is a representable e4m3 value times the row's scale (to float32 precision).
          const representable = Array.from(got).every((x) => {
            const code = encodeE4M3(x / scale);
            return Math.abs(referenceE4M3(code) * scale - x) <= 1e-6 * Math.abs(x) + 1e-9;
          });
          assert.ok(representable);
        }
      }
    }
  });
  assert.equal(cache.bytes().scales, 3 * 2 * 2 * 80 * 4);
});

test('verify catches a quantized cache that lies about its bit width', () => {
  const prefill = makePrefill(80);
  const method = createMethod('flexgen:bits=4');
  const cache = method.compress({ layers: prefill.layers, stats: prefill.stats, config: prefill.config });
  const liar: MethodCache = Object.assign(Object.create(Object.getPrototypeOf(cache)), cache, {
    bytes: () => {
      const b = cache.bytes();
      return { ...b, packed: b.packed * 2, held: b.held + b.packed, active: b.active + b.packed };
    },
  });
  assert.throws(() => verifyCompression(method, liar, prefill.layers, prefill.config), /not 4 bits each/);
  const wrongBits: MethodCache = Object.assign(Object.create(Object.getPrototypeOf(cache)), cache, { bits: 8 });
  assert.throws(() => verifyCompression(method, wrongBits, prefill.layers, prefill.config), /stores 8 bits, the method declares 4/);
});

test('residual queue: rows stay in order through drops, in-place reuse and growth', () => {
  const queue = new RowQueue(3);
  const model: number[][] = [];
  let next = 0;
  for (let round = 0; round < 400; round++) {
    const pushes = (round * 7) % 5;
    for (let i = 0; i < pushes; i++) {
      const row = [next, next + 0.5, -next];
      next++;
      queue.push(Float32Array.from(row));
      model.push(row);
    }
    const drops = Math.min(model.length, (round * 3) % 4);
    queue.dropFront(drops);
    model.splice(0, drops);
    assert.equal(queue.count, model.length);
    assert.deepEqual(Array.from(queue.used()), model.flat());
    if (model.length) assert.deepEqual(Array.from(queue.row(model.length - 1)), model[model.length - 1]);
  }
  assert.ok(next > 500);
});

test('bit packing: removing codes moves the later ones down and clears the freed bits', () => {
  for (const bits of [2, 3, 4, 8]) {
    const stream = new BitStream(bits);
    const model = Array.from({ length: 50 }, (_, i) => (i * 7 + 3) % 2 ** bits);
    stream.write(model);
    for (const [index, count] of [
      [0, 3],
      [10, 1],
      [20, 7],
      [25, 5],
    ]) {
      stream.removeCodes(index, count);
      model.splice(index, count);
    }
    stream.removeCodes(model.length - 2, 2);
    model.splice(model.length - 2, 2);
    const out = new Uint8Array(model.length);
    stream.read(0, out);
    assert.deepEqual(Array.from(out), model);
    assert.equal(stream.used().byteLength, Math.ceil((model.length * bits) / 8));
    // Appending after removals must not OR into stale bits.
    stream.write([2 ** bits - 1, 0, 1]);
    const again = new Uint8Array(model.length + 3);
    stream.read(0, again);
    assert.deepEqual(Array.from(again), [...model, 2 ** bits - 1, 0, 1]);
  }
});

/**
 * Distinct Float32Array buffers reachable from `root` through object properties and array elements (closures are not
 * followed): what the cache keeps alive in fp32, whatever bytes() says. Capacity counts, not only the used part.
 */
function reachableFloat32(root: unknown): { total: number; largest: number } {
  const seen = new Set<object>();
  const buffers = new Set<ArrayBufferLike>();
  const stack: unknown[] = [root];
  while (stack.length) {
    const item = stack.pop();
    if (item === null || typeof item !== 'object' || seen.has(item)) continue;
    seen.add(item);
    if (ArrayBuffer.isView(item)) {
      if (item instanceof Float32Array) buffers.add(item.buffer);
      continue;
    }
    if (item instanceof Map || item instanceof Set) stack.push(...item.values(), ...(item instanceof Map ? item.keys() : []));
    for (const key of Reflect.ownKeys(item)) {
      const descriptor = Object.getOwnPropertyDescriptor(item, key);
      if (descriptor && 'value' in descriptor) stack.push(descriptor.value);
    }
  }
  const sizes = Array.from(buffers, (b) => b.byteLength);
  return { total: sizes.reduce((a, b) => a + b, 0), largest: Math.max(0, ...sizes) };
}

const QL = 3; // layers, KV heads, head size of the fixture
const QH = 2;
const QD = 64;

for (const { spec, residualTokens, queueRows, fp32Scales } of [
  // Per-token schemes pass each row straight through the residual queue, which therefore never holds more than 2 rows.
  { spec: 'int8', residualTokens: () => 0, queueRows: 2, fp32Scales: false },
  { spec: 'flexgen:bits=4', residualTokens: () => 0, queueRows: 2, fp32Scales: false },
  { spec: 'streamingllm:ratio=0.5+int8', residualTokens: () => 0, queueRows: 2, fp32Scales: false },
  { spec: 'h2o:budget=120+fp8', residualTokens: () => 0, queueRows: 2, fp32Scales: true },
  // KIVI: 300 tokens leave 140 in the residual, 40 decode steps 148; the queue peaks at 128 + 32 rows before a group moves out.
  { spec: 'kivi:bits=2', residualTokens: (decoded: number) => (decoded ? 148 : 140), queueRows: 2 * (128 + 32 + 1), fp32Scales: false },
]) {
  test(`${spec}: between steps the cache keeps no fp32 copy of its keys and values, only the residual`, () => {
    const prefill = makePrefill(300);
    const method = createMethod(spec);
    const cache = method.compress({ layers: prefill.layers, stats: prefill.stats, config: prefill.config });
    for (const decoded of [0, 40]) {
      if (decoded) decode(method, cache, prefill, decoded);
      const views = cache.views(); // what attention read this step; the runner drops it before the next
      const tokens = Math.max(...cache.tokensPerHead().flat());
      const denseLayer = tokens * QH * QD * 4;
      assert.equal(views[0].keys.byteLength, denseLayer, 'the views are not the full dequantized cache');
      const reachable = reachableFloat32(cache);
      const residual = residualTokens(decoded) * QH * QD * 4 * 2 * QL;
      const b = cache.bytes();
      assert.equal(b.fullPrecision, residual, 'reported residual vs the size computed here');
      const queues = QL * QH * 2;
      // fp32 scale lists start at 64 entries and at most double past what they hold.
      const scaleRoom = fp32Scales ? 2 * b.scales + queues * 64 * 4 : 0;
      assert.ok(reachable.total >= residual, `only ${reachable.total} fp32 bytes reachable, the residual alone is ${residual}`);
      assert.ok(
        reachable.total <= queues * queueRows * QD * 4 + scaleRoom,
        `${reachable.total} fp32 bytes reachable from the cache: more than the residual queues (${residual} used) and fp32 scales can hold`,
      );
      assert.ok(reachable.largest < denseLayer, `a ${reachable.largest}-byte fp32 array is alive, as large as a layer's dense keys`);
      // The views are fresh each call: writing into one must not reach the cache or the next views.
      views[0].keys.fill(1e6);
      assert.ok(cache.views()[0].keys.every((x) => x !== 1e6));
    }
  });
}

test('codecs: the per-code table views() decodes with gives what decode() gives, for every code', () => {
  const schemes: QuantScheme[] = [
    { name: 'uniform-4', bits: 4, codec: 'uniform', keyAxis: 'channels', keyGroup: 32, valueGroup: 32, residual: 0, scaleStorage: 'fp16' },
    { name: 'uniform-2', bits: 2, codec: 'uniform', keyAxis: 'tokens', keyGroup: 32, valueGroup: 32, residual: 0, scaleStorage: 'fp16' },
    { name: 'int8', bits: 8, codec: 'absmax-int8', keyAxis: 'channels', keyGroup: 32, valueGroup: 32, residual: 0, scaleStorage: 'fp16' },
    { name: 'e4m3', bits: 8, codec: 'e4m3', keyAxis: 'channels', keyGroup: Infinity, valueGroup: Infinity, residual: 0, scaleStorage: 'fp32' },
  ];
  for (const scheme of schemes) {
    const codec = makeCodec(scheme);
    const codes = Uint8Array.from({ length: 2 ** scheme.bits }, (_, c) => c);
    const params = { scale: 0.37, zero: codec.hasZero ? -1.25 : 0 };
    const expected = new Float32Array(codes.length);
    codec.decode(codes, params, expected);
    codes.forEach((code) => {
      const got = Math.fround(params.zero + codec.levels[code] * params.scale);
      assert.ok(got === expected[code] || (Number.isNaN(got) && Number.isNaN(expected[code])), `${scheme.name} code ${code}: ${got} vs ${expected[code]}`);
    });
  }
});

test('quantized cache: a prefill cache whose slots are not in position order is refused with a clear error', () => {
  const layer = new DenseLayerCache(2, 32);
  const row = new Float32Array(2 * 32).map((_, i) => Math.sin(i));
  layer.append(row, row, [9]);
  layer.append(row, row, [4]);
  const scheme: QuantScheme = { name: 'int8', bits: 8, codec: 'absmax-int8', keyAxis: 'channels', keyGroup: 32, valueGroup: 32, residual: 0, scaleStorage: 'fp16' };
  assert.throws(() => new QuantizedCache([layer], scheme), /quantize\(int8\): a head holds its tokens out of position order/);
  const ordered = new DenseLayerCache(2, 32);
  ordered.append(row, row, [4]);
  ordered.append(row, row, [9]);
  assert.deepEqual(Array.from(new QuantizedCache([ordered], scheme).views()[0].positions), [4, 4, 9, 9]);
});

// vLLM's fp8 KV cache (kv_cache_dtype fp8_e4m3 / fp8_e5m2): codes as torch rounds them (test/fixtures/fp8, made by
// tools/make_fp8_fixture.py), saturation as vLLM's conversion does it, and one scale per layer for keys and for values.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { canonicalSpec, createMethod, verifyCompression } from '../../src/engine/kv';
import { decodeE4M3, encodeE4M3 } from '../../src/engine/kv/quant/fp8';
import { decodeE5M2, encodeE5M2 } from '../../src/engine/kv/quant/e5m2';
import { makePrefill } from './kv-fixture';

const fixture = JSON.parse(readFileSync(resolve(__dirname, '..', 'fixtures', 'fp8', 'reference.json'), 'utf8')) as Record<
  'e4m3' | 'e5m2',
  { values: number[]; codes: number[]; decoded: (number | null)[] }
>;
const FORMATS = { e4m3: { encode: encodeE4M3, decode: decodeE4M3 }, e5m2: { encode: encodeE5M2, decode: decodeE5M2 } };

for (const name of ['e4m3', 'e5m2'] as const) {
  test(`fp8 ${name}: every code decodes and every value encodes as torch's float8 conversion does`, () => {
    const { encode, decode } = FORMATS[name];
    const ref = fixture[name];
    ref.decoded.forEach((value, code) => {
      if (value === null) assert.ok(!Number.isFinite(decode(code)), `code 0x${code.toString(16)} is not finite in torch`);
      else assert.equal(decode(code), value, `decode 0x${code.toString(16)}`);
    });
    let ties = 0;
    ref.values.forEach((value, i) => {
      const x = Math.fround(value);
      assert.equal(encode(x), ref.codes[i], `encode ${x}`);
      const code = ref.codes[i];
      const distance = Math.abs(decode(code) - x);
      if (distance > 0 && [code - 1, code + 1].some((n) => Math.abs(decode(n & 0xff) - x) === distance)) ties++;
    });
    assert.ok(ties > 50, `the fixture exercises ties (${ties})`);
  });
}

test('fp8 e5m2: saturates to ±57344 (vLLM converts with __NV_SATFINITE), NaN stays NaN', () => {
  assert.equal(encodeE5M2(57344), 0x7b);
  assert.equal(encodeE5M2(61440), 0x7b);
  assert.equal(encodeE5M2(1e9), 0x7b);
  assert.equal(encodeE5M2(-Infinity), 0xfb);
  assert.ok(Number.isNaN(decodeE5M2(encodeE5M2(NaN))));
  assert.equal(decodeE5M2(0x7c), Infinity);
  assert.equal(decodeE5M2(0x01), 2 ** -16);
});

test('vllm: specs; one scale per layer and tensor, codes of x / scale', () => {
  assert.equal(canonicalSpec('vllm'), 'vllm:dtype=fp8_e4m3');
  assert.equal(canonicalSpec('vllm:scale=calculated,dtype=FP8_E5M2'), 'vllm:dtype=fp8_e5m2,scale=calculated');
  assert.throws(() => canonicalSpec('vllm:dtype=fp8'), /dtype needs one of fp8_e4m3, fp8_e5m2/);
  const prefill = makePrefill(80);
  const { config } = prefill;
  const d = config.headDim;
  for (const [spec, format, calculated] of [
    ['vllm:dtype=fp8_e4m3', 'e4m3', false],
    ['vllm:dtype=fp8_e5m2', 'e5m2', false],
    ['vllm:dtype=fp8_e4m3,scale=calculated', 'e4m3', true],
    ['vllm:dtype=fp8_e5m2,scale=calculated', 'e5m2', true],
  ] as const) {
    const method = createMethod(spec);
    const cache = method.compress({ layers: prefill.layers, stats: null, config });
    verifyCompression(method, cache, prefill.layers, config);
    const b = cache.bytes();
    const rows = 80 * config.numKvHeads * config.numLayers;
    assert.equal(b.packed, 2 * rows * d, spec);
    assert.equal(b.scales, 2 * 4 * config.numLayers, `${spec}: one fp32 scale per layer for keys and one for values`);
    assert.equal(b.held, 2 * rows * d + 8 * config.numLayers + rows * 4);
    const { encode, decode } = FORMATS[format];
    cache.views().forEach((view, l) => {
      for (const [got, source, range] of [
        [view.keys, prefill.keys[l], 200],
        [view.values, prefill.values[l], 100],
      ] as const) {
        const max = source.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
        const scale = calculated ? Math.fround(max / range) : 1;
        for (let i = 0; i < source.length; i++) {
          const want = Math.fround(decode(encode(Math.fround(source[i] / scale))) * scale);
          assert.equal(got[i], want, `${spec} layer ${l} element ${i}`);
        }
      }
    });
  }
});

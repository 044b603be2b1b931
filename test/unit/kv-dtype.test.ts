// The cache's element type: fp16/bf16 rounding against IEEE bit patterns, what 16-bit caches report holding,
// and the ONNX graph reading an fp16 cache as stored against the fp32 graph fed the same rounded values.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { allocateKv, decodeKv, encodeKv, parseKvDtype, roundToKv } from '../../src/engine/kv/kv-dtype';
import { DenseLayerCache } from '../../src/engine/kv/cache';
import { denseBytes } from '../../src/engine/kv/dense-cache';
import { RaggedMethodCache } from '../../src/engine/kv/ragged-cache';
import { createOnnxForward } from '../../src/engine/model/onnx/onnxForward';
import { ReferenceForward } from '../../src/engine/model/reference';
import { prefill } from '../../src/engine/model/prefill';
import { testConfig, randomWeights, seededRandom } from '../helpers/random-model';

const encode = (dtype: 'fp16' | 'bf16', values: number[]): number[] => {
  const out = allocateKv(dtype, values.length);
  encodeKv(dtype, Float32Array.from(values), out, 0);
  return Array.from(out);
};

test('fp16 encoding gives the IEEE 754 binary16 patterns, ties to even, overflow to infinity', () => {
  // 1, -2, 0.1 (0x2e66), 1/3 (0x3555), the largest half 65504, the smallest subnormal 2^-24, and zero.
  assert.deepEqual(encode('fp16', [1, -2, 0.1, 1 / 3, 65504, 2 ** -24, 0]), [0x3c00, 0xc000, 0x2e66, 0x3555, 0x7bff, 0x0001, 0]);
  // 65520 is halfway between 65504 and 65536 (not representable): ties to even rounds up, to infinity.
  assert.deepEqual(encode('fp16', [65520, -1e6, Infinity]), [0x7c00, 0xfc00, 0x7c00]);
  // 1 + 2^-11 is halfway between 1 and 1 + 2^-10: ties to even keeps 1; 1 + 3·2^-11 rounds up to 1 + 2^-9.
  assert.deepEqual(encode('fp16', [1 + 2 ** -11, 1 + 3 * 2 ** -11]), [0x3c00, 0x3c02]);
  assert.ok(Number.isNaN(decodeKv('fp16', Uint16Array.from(encode('fp16', [NaN])))[0]));
});

test('bf16 encoding keeps the top 16 bits of fp32, rounded to nearest even', () => {
  // 1 = 0x3f800000; 1/3 = 0x3eaaaaab rounds up to 0x3eab; 1 + 2^-8 (0x3f808000) is a tie: even keeps 0x3f80.
  assert.deepEqual(encode('bf16', [1, 1 / 3, 1 + 2 ** -8, 1 + 3 * 2 ** -8, -0.5]), [0x3f80, 0x3eab, 0x3f80, 0x3f82, 0xbf00]);
  assert.deepEqual(Array.from(decodeKv('bf16', Uint16Array.of(0x3f80, 0x3eab, 0xbf00))), [1, 0.333984375, -0.5]);
});

test('--kv-dtype accepts fp16, bf16 and fp32 only', () => {
  assert.equal(parseKvDtype('bf16'), 'bf16');
  assert.throws(() => parseKvDtype('fp8'), /unknown KV dtype "fp8" \(choose fp16, bf16, fp32\)/);
});

test('a 16-bit cache holds half the key/value bytes of an fp32 one, and its views decode to the rounded values', () => {
  const random = seededRandom(3);
  const [heads, d, tokens] = [2, 8, 5];
  const keys = Float32Array.from({ length: tokens * heads * d }, () => random() * 4 - 2);
  const values = Float32Array.from({ length: tokens * heads * d }, () => random() * 4 - 2);
  const positions = [0, 1, 2, 3, 4];
  const wide = new DenseLayerCache(heads, d, 1, 'fp32');
  const half = new DenseLayerCache(heads, d, 1, 'fp16');
  wide.append(keys, values, positions);
  half.append(keys, values, positions);
  const positionBytes = tokens * heads * 4;
  assert.equal(denseBytes([wide.view()]).fullPrecision, 2 * tokens * heads * d * 4);
  assert.equal(denseBytes([half.view()]).fullPrecision, 2 * tokens * heads * d * 2);
  assert.equal(half.bytes(), 2 * tokens * heads * d * 2 + positionBytes);
  const view = half.view();
  assert.equal(view.stored?.dtype, 'fp16');
  assert.deepEqual(Array.from(view.keys), Array.from(roundToKv('fp16', keys)));
  // Eviction and cloning move stored patterns, never re-round them.
  half.retain([[0, 2, 4], [1, 3, 4]]);
  const clone = half.clone();
  assert.equal(clone.dtype, 'fp16');
  const rounded = roundToKv('fp16', keys);
  assert.deepEqual(Array.from(clone.view().keys.subarray(heads * d, heads * d + d)), Array.from(rounded.subarray((2 * heads) * d, (2 * heads) * d + d)));
  // Rows already in the cache's dtype are copied as stored: the same cache as appending their decoded values.
  const copied = new DenseLayerCache(heads, d, 1, 'fp16');
  copied.appendStored(view.stored!.keys, view.stored!.values, positions);
  assert.deepEqual(Array.from(copied.view().stored!.keys), Array.from(view.stored!.keys));
  assert.throws(() => copied.appendStored(keys, values, positions), /not stored as fp16/);
  // Per-head (ragged) storage follows the dtype it is given.
  const ragged = new RaggedMethodCache([new DenseLayerCache(heads, d, 1, 'bf16')].map((c) => (c.append(keys, values, positions), c.view())), [[[0, 1], [2]]]);
  assert.equal(ragged.bytes().fullPrecision, 2 * 3 * d * 2);
  assert.equal(ragged.views()[0].stored?.dtype, 'bf16');
});

test('onnx: an fp16 cache fed as stored gives the logits of the fp32 graph fed the same values rounded to fp16', async () => {
  const config = testConfig({ architecture: 'qwen2', attentionBias: true });
  const weights = randomWeights(config, 52);
  const half = await createOnnxForward({ config, weights }, { provider: 'cpu', threads: 1, kvDtype: 'fp16' });
  const wide = await createOnnxForward({ config, weights }, { provider: 'cpu', threads: 1, kvDtype: 'fp32' });
  try {
    assert.equal(half.kvDtype, 'fp16');
    const random = seededRandom(9);
    const tokens = Array.from({ length: 11 }, () => Math.floor(random() * config.vocabSize));
    const pre = await prefill(half, tokens, { chunkSize: 4 });
    assert.equal(pre.layers[0].dtype, 'fp16');
    const past16 = pre.layers.map((layer) => layer.view());
    // The same cache as fp32 arrays holding the fp16-rounded values.
    const past32 = past16.map((kv) => ({ ...kv, keys: Float32Array.from(kv.keys), values: Float32Array.from(kv.values), stored: undefined }));
    const step = { tokens: [7], positions: [tokens.length], logits: 'last' as const, attention: { window: 1, keySums: true } };
    const fromHalf = await half.forward({ ...step, past: past16 });
    const fromWide = await wide.forward({ ...step, past: past32 });
    const oracle = await new ReferenceForward(config, weights).forward({ ...step, past: past16 });
    let drift = 0;
    let oracleDrift = 0;
    for (let i = 0; i < fromHalf.logits.length; i++) {
      drift = Math.max(drift, Math.abs(fromHalf.logits[i] - fromWide.logits[i]));
      oracleDrift = Math.max(oracleDrift, Math.abs(fromHalf.logits[i] - oracle.logits[i]));
    }
    assert.ok(drift <= 1e-5, `fp16-fed vs fp32-fed logits differ by ${drift}`);
    assert.ok(oracleDrift <= 1e-4, `fp16-fed onnx vs the reference reading the decoded cache: ${oracleDrift}`);
    // A quantized store's rebuilt fp32 rows are rounded to fp16 on the way in, as a deployment reads them.
    const fromRows = await half.forward({ ...step, past: past32 });
    assert.deepEqual(Array.from(fromRows.logits), Array.from(fromHalf.logits));
  } finally {
    await half.dispose();
    await wide.dispose();
  }
});

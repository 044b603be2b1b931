// Quantized stores read as held: the graph dequantizes the packed codes itself, and must attend exactly as the
// reference forward does over the same store dequantized in JS (decodePerToken / decodePerChannel).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { createMethod } from '../../src/engine/kv';
import type { LayerKV } from '../../src/engine/kv/cache';
import { roundToKv } from '../../src/engine/kv/kv-dtype';
import { loadModel } from '../../src/engine/model/loader';
import { prefill } from '../../src/engine/model/prefill';
import { argmax, createReferenceForward } from '../../src/engine/model/reference';
import { createOnnxForward } from '../../src/engine/model/onnx/onnxForward';
import { rng } from './kv-fixture';

const model = loadModel(join(__dirname, '../fixtures/models/llama-gqa-tied-rope3-f32'));
const { config } = model;
const reference = createReferenceForward(model, 'fp16');
const next = rng(11);
const tokens = Array.from({ length: 150 }, () => 2 + Math.floor(next() * (config.vocabSize - 2)));
const shared = prefill(reference, tokens, { chunkSize: 64, attention: { keySums: true, window: 32, queries: true } });
const onnx = createOnnxForward(model, { kvDtype: 'fp16' });

function maxRelativeDifference(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let scale = 0;
  let worst = 0;
  for (let i = 0; i < a.length; i++) scale = Math.max(scale, Math.abs(b[i]));
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst / scale;
}

/**
 * The same views with the packed form removed: what a forward pass must read through keys/values. A store the graph
 * cannot read packed reaches it as fp16 rows (the graph's past input type), so the oracle reads those too.
 */
function dequantizedInJs(views: LayerKV[], packed = true): LayerKV[] {
  const rows = (x: Float32Array) => (packed ? x : roundToKv('fp16', x));
  return views.map((view) => ({ ...view, keys: rows(view.keys), values: rows(view.values), quantized: undefined }));
}

const cases: { spec: string; packed: boolean }[] = [
  { spec: 'kivi:bits=2,residual=32', packed: true },
  { spec: 'kivi:bits=4,residual=16,group=8', packed: true },
  { spec: 'kivi:bits=2,residual=0,group=8', packed: true },
  { spec: 'flexgen:bits=4,group=8', packed: true },
  { spec: 'int8', packed: true },
  { spec: 'snapkv:ratio=0.5+kivi:bits=4,residual=32', packed: true },
  { spec: 'fp8', packed: true },
  // Dense caches, and per-head layouts, feed no packed slots.
  { spec: 'full', packed: false },
  { spec: 'adakv:ratio=0.5+int8', packed: false },
];

for (const { spec, packed } of cases) {
  test(`in-graph dequantization: ${spec} attends as the reference over the JS-dequantized store`, async () => {
    const { layers, stats, lastLogits } = await shared;
    const method = createMethod(spec);
    const cache = method.compress({ layers: layers.map((l) => l.clone()), stats, config });
    const forward = await onnx;
    let token = argmax(lastLogits);
    for (let step = 0; step < 5; step++) {
      const position = tokens.length + step;
      const views = cache.views();
      assert.equal(views.every((view) => view.quantized !== undefined), packed, 'packed form offered');
      const request = { keySums: true };
      const [graph, oracle] = [
        await forward.forward({ tokens: [token], positions: [position], past: views, attention: request }),
        await reference.forward({ tokens: [token], positions: [position], past: dequantizedInJs(views, packed), attention: request }),
      ];
      assert.ok(maxRelativeDifference(graph.logits, oracle.logits) < 1e-4, `step ${step} logits differ by ${maxRelativeDifference(graph.logits, oracle.logits)}`);
      graph.attention?.forEach((layer, l) => {
        const expected = oracle.attention?.[l].keySums as Float32Array;
        assert.ok(maxRelativeDifference(layer.keySums as Float32Array, expected) < 1e-4, `step ${step} layer ${l} key sums`);
      });
      graph.newKeys.forEach((k, l) => cache.append(l, k, graph.newValues[l], [position]));
      cache.afterStep?.(graph.attention, position);
      token = argmax(graph.logits);
    }
  });
}

test('in-graph dequantization: a prompt read through packed codes continues exactly as through dense fp32 rows', async () => {
  // Several new tokens at once over a quantized past (the prefill form of attention) also reads the codes.
  const { layers, stats } = await shared;
  const cache = createMethod('kivi:bits=4,residual=16,group=8').compress({ layers: layers.map((l) => l.clone()), stats, config });
  const views = cache.views();
  assert.ok(views[0].quantized && views[0].quantized.tokens > 0);
  const input = { tokens: [5, 9, 13], positions: [tokens.length, tokens.length + 1, tokens.length + 2], logits: 'all' as const };
  const graph = await (await onnx).forward({ ...input, past: views });
  const oracle = await reference.forward({ ...input, past: dequantizedInJs(views) });
  assert.ok(maxRelativeDifference(graph.logits, oracle.logits) < 1e-4);
});

test('in-graph dequantization: the session is released', async () => {
  await (await onnx).dispose();
});

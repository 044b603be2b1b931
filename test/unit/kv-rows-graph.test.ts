// llama.cpp blocks and vLLM's FP8 bytes read as held: the graph dequantizes the codes itself, and must attend exactly as
// the reference forward does over the same rows decoded in JS. The default model's head size (32) holds one ggml block.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { createMethod } from '../../src/engine/kv';
import type { LayerKV } from '../../src/engine/kv/cache';
import { loadModel } from '../../src/engine/model/loader';
import { prefill } from '../../src/engine/model/prefill';
import { argmax, createReferenceForward } from '../../src/engine/model/reference';
import { createOnnxForward } from '../../src/engine/model/onnx/onnxForward';
import { rng } from './kv-fixture';

const model = loadModel(join(__dirname, '../../models/default'));
const { config } = model;
const reference = createReferenceForward(model, 'fp16');
const next = rng(13);
const tokens = Array.from({ length: 120 }, () => 4 + Math.floor(next() * (config.vocabSize - 4)));
const shared = prefill(reference, tokens, { chunkSize: 64, attention: { keySums: true, window: 1 } });
const onnx = createOnnxForward(model, { kvDtype: 'fp16' });

function maxRelativeDifference(a: Float32Array, b: Float32Array): number {
  let scale = 0;
  let worst = 0;
  for (let i = 0; i < a.length; i++) scale = Math.max(scale, Math.abs(b[i]));
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst / scale;
}

const decodedInJs = (views: LayerKV[]): LayerKV[] => views.map((view) => ({ ...view, keys: view.keys, values: view.values, quantized: undefined, stored: undefined }));

for (const spec of ['llamacpp:k=q8_0,v=q8_0', 'llamacpp:k=q4_0,v=q4_1', 'llamacpp:k=iq4_nl,v=iq4_nl', 'vllm:dtype=fp8_e5m2,scale=calculated', 'streamingllm:ratio=0.5+llamacpp:k=q4_0,v=q4_0']) {
  test(`rows read as codes in the graph: ${spec} attends as the reference over the JS-decoded rows`, async () => {
    const { layers, stats, lastLogits } = await shared;
    const method = createMethod(spec);
    const cache = method.compress({ layers: layers.map((l) => l.clone()), stats, config });
    const forward = await onnx;
    let token = argmax(lastLogits);
    for (let step = 0; step < 4; step++) {
      const position = tokens.length + step;
      const views = cache.views();
      assert.ok(views.every((view) => view.quantized !== undefined), 'offered as codes');
      const request = method.decodeNeeds ?? { keySums: true };
      const [graph, oracle] = [
        await forward.forward({ tokens: [token], positions: [position], past: views, attention: request }),
        await reference.forward({ tokens: [token], positions: [position], past: decodedInJs(views), attention: request }),
      ];
      const difference = maxRelativeDifference(graph.logits, oracle.logits);
      assert.ok(difference < 1e-4, `step ${step} logits differ by ${difference}`);
      graph.newKeys.forEach((k, l) => cache.append(l, k, graph.newValues[l], [position]));
      cache.afterStep?.(graph.attention, position);
      token = argmax(graph.logits);
    }
  });
}

test('rows read as codes: the session is released', async () => {
  await (await onnx).dispose();
});

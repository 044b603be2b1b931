// Every method on a real (tiny fixture) model: the reference forward's prefill statistics feed compression, decode keeps the promise,
// and `full` generates exactly what plain greedy decoding generates.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { createMethod, mergeNeeds, verifyCompression, verifyDecode } from '../../src/engine/kv';
import type { KvMethod, MethodCache } from '../../src/engine/kv/method';
import { loadModel } from '../../src/engine/model/loader';
import { greedyDecode, prefill } from '../../src/engine/model/prefill';
import { argmax, createReferenceForward } from '../../src/engine/model/reference';
import { rng } from './kv-fixture';

const model = loadModel(join(__dirname, '../fixtures/models/llama-gqa-tied-rope3-f32'));
const forward = createReferenceForward(model);
const { config } = model;
const next = rng(5);
const tokens = Array.from({ length: 160 }, () => 2 + Math.floor(next() * (config.vocabSize - 2)));

const specs = [
  'full',
  'random:ratio=0.5',
  'knorm:ratio=0.5',
  'streamingllm:ratio=0.5',
  'h2o:ratio=0.5',
  'snapkv:ratio=0.5',
  'pyramidkv:ratio=0.5',
  'adakv:ratio=0.5',
  'tova:ratio=0.5',
  'infllm:topk=4',
  'kivi:bits=2,residual=32',
  'kivi:bits=4,residual=32',
  'flexgen:bits=4',
  'int8',
  'fp8',
  'snapkv:ratio=0.5+kivi:bits=4,residual=32',
  'adakv:ratio=0.5+int8',
  'h2o:ratio=0.5+int8',
  'streamingllm:ratio=0.5+fp8',
];
const methods = specs.map((s) => createMethod(s));
const shared = prefill(forward, tokens, { chunkSize: 64, attention: mergeNeeds(...methods.map((m) => m.needs(tokens.length))) });

async function generate(method: KvMethod, cache: MethodCache, steps: number): Promise<{ tokens: number[]; firstLogits: Float32Array }> {
  let logits = (await shared).lastLogits;
  let firstLogits: Float32Array | null = null;
  const out: number[] = [];
  for (let s = 0; s < steps; s++) {
    const token = argmax(logits);
    out.push(token);
    const position = tokens.length + s;
    const output = await forward.forward({ tokens: [token], positions: [position], past: cache.views(), attention: method.decodeNeeds });
    output.newKeys.forEach((k, l) => cache.append(l, k, output.newValues[l], [position]));
    cache.afterStep?.(output.attention, position);
    logits = output.logits;
    firstLogits ??= logits;
  }
  return { tokens: out, firstLogits: firstLogits as Float32Array };
}

const firstLogits = new Map<string, Float32Array>();

for (const method of methods) {
  test(`on the fixture model: ${method.spec}`, async () => {
    const { layers, stats } = await shared;
    const cache = method.compress({ layers, stats, config });
    verifyCompression(method, cache, layers, config);
    const steps = 12;
    const result = await generate(method, cache, steps);
    verifyDecode(method, cache, tokens.length, steps, config);
    firstLogits.set(method.spec, result.firstLogits);
    if (method.spec === 'full') {
      const dense = await greedyDecode(forward, layers.map((l) => l.clone()), (await shared).lastLogits, {
        maxNewTokens: steps,
        startPosition: tokens.length,
      });
      assert.deepEqual(result.tokens, dense.tokens);
    }
  });
}

test('on the fixture model: finer quantization stays closer to the full cache', () => {
  const full = firstLogits.get('full');
  assert.ok(full);
  const distance = (spec: string) => {
    const logits = firstLogits.get(spec) as Float32Array;
    let worst = 0;
    for (let i = 0; i < full.length; i++) worst = Math.max(worst, Math.abs(logits[i] - full[i]));
    return worst;
  };
  const d = Object.fromEntries(['int8', 'fp8', 'kivi:bits=4,residual=32', 'kivi:bits=2,residual=32', 'flexgen:bits=4'].map((s) => [s, distance(s)]));
  assert.ok(d.int8 < d['kivi:bits=4,residual=32'] && d['kivi:bits=4,residual=32'] < d['kivi:bits=2,residual=32'], JSON.stringify(d));
  assert.ok(d.int8 > 0, 'int8 changed nothing');
});

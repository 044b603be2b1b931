import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { RUNTIME_BASE_BYTES, estimateModelMemory, inspectModel } from '../../src/engine/model/loader';
import { RESIDENT_FACTOR } from '../../src/engine/model/onnx/graph';
import { estimateRun } from '../../src/engine/bench/estimate';

const FIXTURE = join(__dirname, '..', 'fixtures', 'models', 'qwen2-bias-untied-f32');

test('the run estimate: weights in the chosen format, the fp16 full cache at the longest length, less for compressed methods', () => {
  const e = estimateRun(FIXTURE, [512, 1024], ['full', 'kivi:bits=2', 'snapkv:ratio=0.75', 'h2o:budget=99999'], { weights: 'fp32' });
  // Qwen2 fixture: 2 layers, 2 KV heads, head dim 16 → K+V fp16 per token = 2 * 2 * 2 * 16 * 2 bytes.
  const context = 1024 + 64;
  assert.equal(e.contextTokens, context);
  assert.equal(e.kvDtype, 'fp16');
  assert.equal(e.fullKvBytes, context * 2 * 2 * 2 * 16 * 2);
  assert.equal(e.methods[0].kvBytes, e.fullKvBytes);
  // kivi-2: 2 bits of code + about 1 bit of group scale/zero per element, against 16 bits.
  assert.equal(e.methods[1].kvBytes, Math.round((e.fullKvBytes * 3) / 16));
  assert.equal(e.methods[2].kvBytes, Math.round(e.fullKvBytes * (Math.floor(context * 0.25) / context)));
  assert.equal(e.methods[3].kvBytes, null);
  assert.match(e.methods[3].problem ?? '', /budget 99999 is not below the prompt length/);
  // fp32 weights: 4 bytes per graph parameter (all but the untied embedding table, which is read from the file per
  // lookup) times what onnxruntime keeps once its Gemm kernels have repacked them (RESIDENT_FACTOR.fp32).
  assert.equal(e.weightFormat, 'fp32');
  const plan = inspectModel(FIXTURE);
  const graphParameters = plan.parameterCount - plan.config.vocabSize * plan.config.hiddenSize;
  assert.ok(e.weightBytes >= graphParameters * 4 && e.weightBytes <= graphParameters * 4 * RESIDENT_FACTOR.fp32, `weights ${e.weightBytes} vs ${graphParameters * 4}`);
  assert.ok(e.weightBytes > graphParameters * 4 * 1.5, 'the repacked copy is counted');
  // The runtime: a fixed base plus three copies of prefill's largest score chunk ([heads, 512, n] fp32 at n = 1088).
  const memory = estimateModelMemory(FIXTURE, context, { weights: 'fp32', kvBytesPerElement: 2 });
  assert.equal(memory.runtimeBytes, RUNTIME_BASE_BYTES + 3 * plan.config.numHeads * 512 * context * 4);
  assert.equal(e.totalBytes, e.weightBytes + e.fullKvBytes + memory.runtimeBytes);
  assert.equal(e.fits, e.totalBytes <= e.freeBytes);
  assert.match(e.summary, /weights .* in fp32 \+ full fp16 KV cache .* at 1088 tokens \+ runtime .*\) of .* free/);
  const wide = estimateRun(FIXTURE, [1024], ['full'], { kvDtype: 'fp32' });
  assert.equal(wide.fullKvBytes, 2 * e.fullKvBytes);
});

test('estimating an unknown model names it', () => {
  assert.throws(() => estimateRun('/no/such/model', [1024], ['full']), /\/no\/such\/model/);
});

// Qwen3 (per-head q/k norm, explicit head_dim), Gemma 2 (sandwich norms, GeGLU, soft-capping) and sliding-window
// attention (Mistral, Gemma 2's alternate layers, Qwen3's windowed layers):
// both forwards against transformers' own greedy generate on the fixtures (tools/make_family_fixtures.py; their
// logits and decode steps are checked by the transformers parity loop in parity.test.ts), and the ONNX graph
// against the reference forward on random models whose windows cut through chunked prefill, ragged caches and
// quantized stores.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadModel } from '../../src/engine/model/loader';
import { describeAttentionLayout, parseConfig, type ModelConfig } from '../../src/engine/model/config';
import { modelInfo } from '../../src/engine/model/info';
import { argmax, createReferenceForward, ReferenceForward, ropeInverseFrequencies } from '../../src/engine/model/reference';
import { createOnnxForward } from '../../src/engine/model/onnx/onnxForward';
import { prefill } from '../../src/engine/model/prefill';
import { createMethod } from '../../src/engine/kv';
import { DenseLayerCache, type LayerKV } from '../../src/engine/kv/cache';
import type { DecoderForward, ForwardOutput } from '../../src/engine/model/types';
import { randomWeights, seededRandom, testConfig } from '../helpers/random-model';

const TOLERANCE = 1e-4;
const FIXTURES = join(__dirname, '..', 'fixtures', 'models');

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>, what: string): number {
  assert.equal(a.length, b.length, `${what}: length ${a.length} vs ${b.length}`);
  let max = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= max)) max = d;
  }
  return max;
}

function assertClose(a: ArrayLike<number>, b: ArrayLike<number>, what: string): void {
  const diff = maxAbsDiff(a, b, what);
  assert.ok(diff <= TOLERANCE, `${what}: max abs diff ${diff} > ${TOLERANCE}`);
}

function assertSameOutput(onnx: ForwardOutput, ref: ForwardOutput, what: string): void {
  assertClose(onnx.logits, ref.logits, `${what} logits`);
  ref.newKeys.forEach((keys, l) => assertClose(onnx.newKeys[l], keys, `${what} layer ${l} keys`));
  ref.attention?.forEach((r, l) => {
    for (const key of ['window', 'keySums', 'queries'] as const) if (r[key]) assertClose(onnx.attention![l][key]!, r[key]!, `${what} layer ${l} ${key}`);
  });
}

const emptyPast = (config: ModelConfig): LayerKV[] =>
  Array.from({ length: config.numLayers }, () => new DenseLayerCache(config.numKvHeads, config.headDim).view());

interface FamilyReference {
  architecture: string;
  layerWindows: (number | null)[];
  headDim: number;
  ids: number[];
  prefill: { positions: number[]; logits: number[] };
  greedy: { promptLength: number; tokens: number[] };
}

const FAMILY_FIXTURES = ['qwen3-qknorm-headdim24-bf16', 'qwen3-window12-top-layer-bf16', 'mistral-window12-bf16', 'gemma2-softcap-window12-bf16', 'gemma3-local-global-bf16'];

for (const name of FAMILY_FIXTURES) {
  test(`${name}: config as transformers reads it, and 24 greedy tokens equal transformers' cached generate (reference and onnx)`, async () => {
    const dir = join(FIXTURES, name);
    const expected = JSON.parse(readFileSync(join(dir, 'reference.json'), 'utf8')) as FamilyReference;
    const model = loadModel(dir);
    const { config } = model;
    assert.equal(config.hfArchitecture, expected.architecture);
    assert.equal(config.headDim, expected.headDim);
    assert.deepEqual(config.layerWindows ?? expected.layerWindows.map(() => null), expected.layerWindows);
    assert.equal(config.qkNorm === true, expected.architecture === 'Qwen3ForCausalLM' || expected.architecture === 'Gemma3ForCausalLM');

    if (expected.layerWindows.some((w) => w !== null)) {
      // The window changes transformers' logits on this prompt: attending to everything would not pass parity.
      const unwindowed = new ReferenceForward({ ...config, layerWindows: undefined }, model.weights);
      const all = unwindowed.forwardSync({ tokens: expected.ids, positions: expected.prefill.positions, past: emptyPast(config), logits: 'all' });
      assert.ok(maxAbsDiff(all.logits, expected.prefill.logits, 'unwindowed') > 1e-2, 'the fixture prompt must be longer than its window');
    }

    const onnx = await createOnnxForward(model, { provider: 'cpu', kvDtype: 'fp32', threads: 1 });
    try {
      for (const forward of [createReferenceForward(model), onnx] as DecoderForward[]) {
        const prompt = expected.ids.slice(0, expected.greedy.promptLength);
        const { layers, lastLogits } = await prefill(forward, prompt, { chunkSize: 16 });
        // transformers was asked for min_new_tokens = 24: it masks the EOS logits until then.
        let logits = lastLogits;
        const tokens: number[] = [];
        for (let position = prompt.length; tokens.length < expected.greedy.tokens.length; position++) {
          for (const eos of config.eosTokenIds) logits[eos] = -Infinity;
          const token = argmax(logits);
          tokens.push(token);
          const out = await forward.forward({ tokens: [token], positions: [position], past: layers.map((c) => c.view()) });
          layers.forEach((c, l) => c.append(out.newKeys[l], out.newValues[l], [position]));
          logits = out.logits;
        }
        assert.deepEqual(tokens, expected.greedy.tokens, `${name} ${forward === onnx ? 'onnx' : 'reference'}`);
      }
    } finally {
      await onnx.dispose();
    }
  });
}

const RANDOM_CASES: [string, Partial<ModelConfig>][] = [
  ['qwen3 q/k norm, head_dim 12 != 32 / 4', { architecture: 'qwen3', hfArchitecture: 'Qwen3ForCausalLM', qkNorm: true, headDim: 12 }],
  ['mistral, every layer a 4-token window', { architecture: 'mistral', hfArchitecture: 'MistralForCausalLM', layerWindows: [4, 4] }],
  ['full layer 0, 3-token window on layer 1, q/k norm', { architecture: 'qwen3', qkNorm: true, layerWindows: [null, 3] }],
  ['two window sizes', { numLayers: 3, layerWindows: [5, null, 2] }],
  [
    'gemma2: sandwich norms, GeGLU, soft-capped attention and logits, sliding / full',
    { architecture: 'gemma2', hfArchitecture: 'Gemma2ForCausalLM', layerWindows: [4, null], attentionScale: 0.3, attentionLogitCap: 2, finalLogitCap: 3, tieWordEmbeddings: true },
  ],
];

for (const [label, overrides] of RANDOM_CASES) {
  test(`onnx vs reference (${label}): prefill, chunked prefill with statistics, decode steps`, async () => {
    const config = testConfig(overrides);
    const weights = randomWeights(config, 23);
    const ref = new ReferenceForward(config, weights);
    const onnx = await createOnnxForward({ config, weights }, { provider: 'cpu', kvDtype: 'fp32', threads: 1 });
    try {
      const random = seededRandom(7);
      const tokens = Array.from({ length: 13 }, () => Math.floor(random() * config.vocabSize));
      const positions = tokens.map((_, i) => i);
      const attention = { window: 4, keySums: true, queries: true };
      const whole = await ref.forward({ tokens, positions, past: emptyPast(config), logits: 'all', attention });
      assertSameOutput(await onnx.forward({ tokens, positions, past: emptyPast(config), logits: 'all', attention }), whole, 'prefill');
      // Chunks of 5: each chunk's queries reach back into the previous chunk's cache only as far as the window.
      const chunked = await prefill(onnx, tokens, { chunkSize: 5, attention });
      assertClose(chunked.lastLogits, whole.logits.subarray((tokens.length - 1) * config.vocabSize), 'chunked prefill last logits');
      for (let l = 0; l < config.numLayers; l++) assertClose(chunked.stats![l].keySums!, whole.attention![l].keySums!, `chunked layer ${l} key sums`);
      const caches = chunked.layers;
      for (let step = 0; step < 4; step++) {
        const position = tokens.length + step;
        const input = { tokens: [(5 + 3 * step) % config.vocabSize], positions: [position], past: caches.map((c) => c.view()), attention: { keySums: true } };
        const stepRef = await ref.forward(input);
        assertSameOutput(await onnx.forward(input), stepRef, `decode at ${position}`);
        caches.forEach((c, l) => c.append(stepRef.newKeys[l], stepRef.newValues[l], [position]));
      }
    } finally {
      await onnx.dispose();
    }
  });
}

test('sliding window: keys out of the window get exactly zero attention; ragged per-head caches keep their own positions', async () => {
  const config = testConfig({ architecture: 'mistral', layerWindows: [4, 6] });
  const weights = randomWeights(config, 29);
  const ref = new ReferenceForward(config, weights);
  const onnx = await createOnnxForward({ config, weights }, { provider: 'cpu', kvDtype: 'fp32', threads: 1 });
  try {
    const tokens = Array.from({ length: 12 }, (_, i) => (i * 7 + 3) % config.vocabSize);
    const { layers } = await prefill(ref, tokens, { chunkSize: 12 });
    // Head 0 keeps 8 tokens, head 1 keeps 5: the same slot holds different positions in the two heads.
    layers[0].retain([[0, 1, 2, 4, 6, 8, 10, 11], [0, 3, 9, 10, 11]]);
    const past = layers.map((c) => c.view());
    for (const q of [3, 1]) {
      const input = { tokens: [3, 4, 5].slice(0, q), positions: [12, 13, 14].slice(0, q), past, logits: 'all' as const, attention: { window: q, keySums: true } };
      const outRef = await ref.forward(input);
      const outOnnx = await onnx.forward(input);
      assertSameOutput(outOnnx, outRef, `ragged, ${q} new`);
      const group = config.numHeads / config.numKvHeads;
      for (let l = 0; l < config.numLayers; l++) {
        const window = config.layerWindows![l]!;
        const P = past[l].length;
        const T = P + q;
        const probs = outOnnx.attention![l].window!; // [H, q, T]
        const valid = past[l].valid;
        for (let h = 0; h < config.numHeads; h++) {
          const kvh = Math.floor(h / group);
          for (let r = 0; r < q; r++) {
            const queryPosition = input.positions[r];
            for (let j = 0; j < T; j++) {
              const keyPosition = j < P ? past[l].positions[j * config.numKvHeads + kvh] : input.positions[j - P];
              const visible = (j >= P || !valid || valid[j * config.numKvHeads + kvh] === 1) && keyPosition <= queryPosition && queryPosition - keyPosition < window;
              const p = probs[(h * q + r) * T + j];
              if (visible) assert.ok(p > 0, `layer ${l} head ${h} query ${queryPosition} key ${keyPosition} should be seen`);
              else assert.equal(p, 0, `layer ${l} head ${h} query ${queryPosition} key ${keyPosition} is out of the window`);
            }
          }
        }
      }
    }
  } finally {
    await onnx.dispose();
  }
});

test('sliding window over a quantized store read as packed codes: the graph attends as the reference over the dequantized store', async () => {
  const model = loadModel(join(FIXTURES, 'mistral-window12-bf16'));
  const { config } = model;
  const reference = createReferenceForward(model, 'fp16');
  const onnx = await createOnnxForward(model, { provider: 'cpu', kvDtype: 'fp16', threads: 1 });
  try {
    const tokens = Array.from({ length: 60 }, (_, i) => 2 + ((i * 37) % (config.vocabSize - 2)));
    const { layers, stats, lastLogits } = await prefill(reference, tokens, { chunkSize: 32, attention: { keySums: true, window: 8 } });
    const cache = createMethod('kivi:bits=4,residual=8,group=8').compress({ layers: layers.map((l) => l.clone()), stats, config });
    let token = argmax(lastLogits);
    for (let step = 0; step < 3; step++) {
      const position = tokens.length + step;
      const views = cache.views();
      assert.ok(views.every((view) => view.quantized && view.quantized.tokens > 0), 'packed slots offered');
      const dequantized = views.map((view) => ({ ...view, quantized: undefined }));
      const graph = await onnx.forward({ tokens: [token], positions: [position], past: views });
      const oracle = await reference.forward({ tokens: [token], positions: [position], past: dequantized });
      const scale = Math.max(...Array.from(oracle.logits, Math.abs));
      assert.ok(maxAbsDiff(graph.logits, oracle.logits, 'packed') / scale < 1e-4, `step ${step}`);
      graph.newKeys.forEach((k, l) => cache.append(l, k, graph.newValues[l], [position]));
      token = argmax(graph.logits);
    }
  } finally {
    await onnx.dispose();
  }
});

test('config: sliding windows and q/k norm as transformers decides them; other architectures still refused with the list', () => {
  const base = { hidden_size: 64, num_attention_heads: 4, num_key_value_heads: 2, intermediate_size: 96, num_hidden_layers: 3, vocab_size: 100 };
  const mistral = parseConfig({ ...base, architectures: ['MistralForCausalLM'], sliding_window: 4096 }, 'config.json');
  assert.deepEqual(mistral.layerWindows, [4096, 4096, 4096]);
  assert.equal(mistral.attentionBias, false);
  assert.equal(parseConfig({ ...base, architectures: ['MistralForCausalLM'], sliding_window: null }, 'config.json').layerWindows, undefined);
  assert.deepEqual(parseConfig({ ...base, architectures: ['MistralForCausalLM'] }, 'config.json').layerWindows, [4096, 4096, 4096], "MistralConfig's default");
  // Qwen: the window only with use_sliding_window, on the layers from max_window_layers on (or as layer_types says).
  const qwen3 = { ...base, architectures: ['Qwen3ForCausalLM'], head_dim: 32, sliding_window: 16 };
  assert.equal(parseConfig(qwen3, 'config.json').layerWindows, undefined);
  assert.deepEqual(parseConfig({ ...qwen3, use_sliding_window: true, max_window_layers: 2 }, 'config.json').layerWindows, [null, null, 16]);
  const listed = parseConfig({ ...qwen3, use_sliding_window: true, layer_types: ['sliding_attention', 'full_attention', 'sliding_attention'] }, 'config.json');
  assert.deepEqual(listed.layerWindows, [16, null, 16]);
  assert.equal(listed.qkNorm, true);
  assert.equal(listed.headDim, 32);
  assert.deepEqual(parseConfig({ ...base, architectures: ['Qwen2ForCausalLM'], use_sliding_window: true, sliding_window: 8, max_window_layers: 1 }, 'config.json').layerWindows, [null, 8, 8]);
  assert.throws(() => parseConfig({ ...qwen3, use_sliding_window: true, layer_types: ['full_attention'] }, 'config.json'), /"layer_types" must list .* 3 layers/);
  assert.throws(() => parseConfig({ ...base, architectures: ['MistralForCausalLM'], sliding_window: 0 }, 'config.json'), /"sliding_window" must be an integer >= 1/);
  assert.throws(
    () => parseConfig({ ...base, architectures: ['Phi3ForCausalLM'] }, 'config.json'),
    /unsupported architecture "Phi3ForCausalLM" \(supported: LlamaForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, MistralForCausalLM, Gemma2ForCausalLM, Gemma3ForCausalLM\)/,
  );
});

test('kvlens info names the attention layout: full, one window everywhere, or per layer', () => {
  const info = (name: string) => modelInfo(loadModel(join(FIXTURES, name))).attentionLayout;
  assert.equal(info('qwen3-qknorm-headdim24-bf16'), 'full attention in every layer; q/k RMSNorm per head');
  assert.equal(info('qwen3-window12-top-layer-bf16'), 'full: layer 0; sliding window 12: layer 1; q/k RMSNorm per head');
  assert.equal(info('mistral-window12-bf16'), 'sliding window of 12 tokens in every layer');
  assert.equal(describeAttentionLayout(testConfig({ numLayers: 4, layerWindows: [8, null, 8, 4] })), 'sliding window 8: layers 0, 2; full: layer 1; sliding window 4: layer 3');
});

test('qwen3 GGUF (llama.cpp names and metadata): the same config as the HF folder it was written from', () => {
  const fromGguf = loadModel(join(FIXTURES, 'qwen3-qknorm-gguf', 'model.gguf')).config;
  const fromFolder = loadModel(join(FIXTURES, 'qwen3-qknorm-headdim24-bf16')).config;
  for (const key of ['architecture', 'hfArchitecture', 'hiddenSize', 'intermediateSize', 'numLayers', 'numHeads', 'numKvHeads', 'headDim', 'vocabSize', 'tieWordEmbeddings', 'attentionBias', 'qkNorm', 'layerWindows', 'ropeTheta'] as const) {
    assert.deepEqual(fromGguf[key], fromFolder[key], key);
  }
  assert.ok(Math.abs(fromGguf.rmsNormEps - fromFolder.rmsNormEps) < 1e-12);
});

test('config: Gemma 2 as transformers reads it (scale, caps, alternating windows, tied) and its activation checked', () => {
  const base = { hidden_size: 48, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 16, intermediate_size: 96, num_hidden_layers: 3, vocab_size: 100, architectures: ['Gemma2ForCausalLM'] };
  const defaults = parseConfig(base, 'config.json');
  assert.deepEqual(defaults.layerWindows, [4096, null, 4096]);
  assert.equal(defaults.attentionScale, 256 ** -0.5);
  assert.deepEqual([defaults.attentionLogitCap, defaults.finalLogitCap, defaults.tieWordEmbeddings], [50, 30, true]);
  const uncapped = parseConfig({ ...base, attn_logit_softcapping: null, final_logit_softcapping: null, sliding_window: null }, 'config.json');
  assert.deepEqual([uncapped.attentionLogitCap, uncapped.finalLogitCap, uncapped.layerWindows], [undefined, undefined, undefined]);
  assert.throws(() => parseConfig({ ...base, hidden_activation: 'gelu' }, 'config.json'), /hidden_activation "gelu" is not supported for Gemma2ForCausalLM \(supported: gelu_pytorch_tanh\)/);
  assert.throws(() => parseConfig({ ...base, query_pre_attn_scalar: 0 }, 'config.json'), /"query_pre_attn_scalar" must be positive/);
});

test('config: Gemma 3 text as transformers reads it (5:1 local/global by default, two RoPE tables, q/k norm, no caps)', () => {
  const base = { hidden_size: 48, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 16, intermediate_size: 96, num_hidden_layers: 7, vocab_size: 100, architectures: ['Gemma3ForCausalLM'], sliding_window: 512 };
  const old = parseConfig({ ...base, rope_theta: 1000000, rope_local_base_freq: 10000, rope_scaling: { rope_type: 'linear', factor: 8 } }, 'config.json');
  assert.deepEqual(old.layerWindows, [512, 512, 512, 512, 512, null, 512]);
  assert.deepEqual([old.ropeTheta, old.slidingRopeTheta, old.ropeLinearFactor, old.qkNorm, old.tieWordEmbeddings], [1000000, 10000, 8, true, true]);
  assert.deepEqual([old.attentionLogitCap, old.finalLogitCap, old.ropeScaling], [undefined, undefined, null]);
  // Local layers use their own base, global ones the scaled table.
  const local = ropeInverseFrequencies(old, 0);
  const global = ropeInverseFrequencies(old, 5);
  assert.equal(local[1], Math.fround(1 / Math.fround(Math.pow(10000, Math.fround(2 / 16)))));
  assert.equal(global[1], Math.fround(Math.fround(1 / Math.fround(Math.pow(1000000, Math.fround(2 / 16)))) / 8));
  assert.throws(() => parseConfig({ ...base, rope_parameters: { full_attention: { rope_type: 'yarn', factor: 4 } } }, 'config.json'), /Gemma 3 rope type "yarn" on full_attention layers is not supported/);
  assert.throws(() => parseConfig({ ...base, use_bidirectional_attention: true }, 'config.json'), /use_bidirectional_attention/);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { RUNTIME_BASE_BYTES,
  checkFitsInMemory,
  estimateMemory,
  estimateModelMemory,
  inspectModel,
  loadModel,
  resolveModelDir,
} from '../../src/engine/model/loader';
import { modelInfo, formatModelInfo } from '../../src/engine/model/info';
import { KvlensError } from '../../src/engine/errors';
import type { WeightMap } from '../../src/engine/model/types';
import { assertKvlensError } from '../helpers/errors';

const MODELS = resolve(__dirname, '..', 'fixtures', 'models');
const LLAMA = join(MODELS, 'llama-gqa-tied-rope3-f32');
const QWEN = join(MODELS, 'qwen2-bias-untied-f32');

// Parameter counts written out from the architectures (hidden 64, 2 layers, 4 heads, 2 KV heads, head dim 16).
const LLAMA_PARAMS = 320 * 64 + 2 * (64 + 64 * 64 + 2 * (32 * 64) + 64 * 64 + 64 + 3 * (128 * 64)) + 64; // tied: no lm_head
const QWEN_PARAMS = 2 * 384 * 64 + 2 * (64 + (64 * 64 + 64) + 2 * (32 * 64 + 32) + 64 * 64 + 64 + 3 * (96 * 64)) + 64;

function copyModel(source: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'kvlens-loader-'));
  for (const name of readdirSync(source)) copyFileSync(join(source, name), join(dir, name));
  return dir;
}

function editConfig(dir: string, edit: (config: Record<string, unknown>) => void): void {
  const file = join(dir, 'config.json');
  const config = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  edit(config);
  writeFileSync(file, JSON.stringify(config));
}

/** A minimal F32 safetensors writer, so tests can add or drop tensors. */
function writeF32Safetensors(file: string, weights: WeightMap): void {
  const header: Record<string, unknown> = {};
  const chunks: Buffer[] = [];
  let offset = 0;
  for (const [name, tensor] of weights) {
    const bytes = Buffer.from(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength);
    header[name] = { dtype: 'F32', shape: tensor.shape, data_offsets: [offset, offset + bytes.length] };
    chunks.push(bytes);
    offset += bytes.length;
  }
  const json = Buffer.from(JSON.stringify(header));
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(json.length));
  writeFileSync(file, Buffer.concat([prefix, json, ...chunks]));
}


test('loader: llama fixture (GQA, tied, llama3 rope) loads with config, counts and bytes', () => {
  const model = loadModel(LLAMA);
  assert.equal(model.dir, LLAMA);
  assert.equal(model.config.architecture, 'llama');
  assert.equal(model.config.tieWordEmbeddings, true);
  assert.equal(model.config.ropeTheta, 20000);
  assert.deepEqual(model.config.ropeScaling, { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 32 });
  assert.equal(model.weights.has('lm_head.weight'), false);
  assert.equal(model.parameterCount, LLAMA_PARAMS);
  // transformers' own count, written into the sharded index
  const index = JSON.parse(readFileSync(join(MODELS, 'llama-gqa-tied-rope3-f32-sharded', 'model.safetensors.index.json'), 'utf8'));
  assert.equal(model.parameterCount, index.metadata.total_parameters);
  assert.equal(model.weightBytesOnDisk, LLAMA_PARAMS * 4);
  assert.equal(model.dtype, 'F32');
  assert.deepEqual(model.weights.get('model.layers.1.self_attn.k_proj.weight')!.shape, [32, 64]);
  assert.deepEqual(model.weights.get('model.layers.0.mlp.down_proj.weight')!.shape, [64, 128]);
  for (const tensor of model.weights.values()) assert.ok(tensor.data instanceof Float32Array);
});

test('loader: qwen2 fixture (biases, untied) loads every bias and lm_head', () => {
  const model = loadModel(QWEN);
  assert.equal(model.config.architecture, 'qwen2');
  assert.equal(model.config.tieWordEmbeddings, false);
  assert.equal(model.config.ropeTheta, 1e6);
  assert.equal(model.config.ropeScaling, null);
  assert.deepEqual(model.config.eosTokenIds, [2, 0]);
  assert.deepEqual(model.weights.get('lm_head.weight')!.shape, [384, 64]);
  assert.deepEqual(model.weights.get('model.layers.0.self_attn.q_proj.bias')!.shape, [64]);
  assert.deepEqual(model.weights.get('model.layers.1.self_attn.v_proj.bias')!.shape, [32]);
  assert.equal(model.parameterCount, QWEN_PARAMS);
  assert.notDeepEqual(model.weights.get('lm_head.weight')!.data, model.weights.get('model.embed_tokens.weight')!.data);
});

test('loader: half-precision fixtures report their dtype and half the bytes', () => {
  for (const [name, dtype] of [['qwen2-bias-untied-f16', 'F16'], ['llama-gqa-tied-rope3-bf16', 'BF16']] as const) {
    const model = loadModel(join(MODELS, name));
    assert.equal(model.dtype, dtype);
    assert.equal(model.weightBytesOnDisk, model.parameterCount * 2);
    for (const tensor of model.weights.values()) assert.equal(tensor.sourceDtype, dtype);
  }
});

test('loader: the sharded fixture loads to the same weights as the single file', () => {
  const single = loadModel(LLAMA);
  const sharded = loadModel(join(MODELS, 'llama-gqa-tied-rope3-f32-sharded'));
  assert.equal(sharded.weights.size, single.weights.size);
  for (const [name, tensor] of single.weights) assert.deepEqual(sharded.weights.get(name)!.data, tensor.data, name);
});

test('loader errors: shape mismatch with the config names the tensor and both shapes', () => {
  const dir = copyModel(LLAMA);
  editConfig(dir, (c) => {
    c.num_key_value_heads = 4;
  });
  assertKvlensError(
    () => loadModel(dir),
    join(dir, 'model.safetensors'),
    /tensor "model\.layers\.0\.self_attn\.k_proj\.weight" has shape \[32, 64\] but config\.json implies \[64, 64\]/,
  );
  editConfig(dir, (c) => {
    c.num_key_value_heads = 2;
    c.vocab_size = 321;
  });
  assertKvlensError(() => loadModel(dir), join(dir, 'model.safetensors'), /model\.embed_tokens\.weight" has shape \[320, 64\] but config\.json implies \[321, 64\]/);
});

test('loader errors: a config with more layers than the checkpoint holds names both files and both counts', () => {
  const dir = copyModel(LLAMA);
  editConfig(dir, (c) => {
    c.num_hidden_layers = 3;
  });
  const message = `^${join(dir, 'config.json')}: "num_hidden_layers" is 3 but the weights \\(${join(dir, 'model.safetensors')}\\) hold tensors of 2 layers$`;
  assertKvlensError(() => loadModel(dir), join(dir, 'config.json'), new RegExp(message));
});

test('loader errors: an absurd layer count is refused at once, by the config bounds and by what the weights hold', () => {
  const dir = copyModel(LLAMA);
  const config = join(dir, 'config.json');
  // Under the config bound, over what the checkpoint holds: refused before a table of 12 000 tensors is built.
  editConfig(dir, (c) => {
    c.num_hidden_layers = 1000;
  });
  assertKvlensError(() => loadModel(dir), config, /"num_hidden_layers" is 1000 but the weights \(.*model\.safetensors\) hold tensors of 2 layers/);
  // 1e9 layers spent a minute and gigabytes in the memory pre-check, then failed with no file name.
  editConfig(dir, (c) => {
    c.num_hidden_layers = 1e9;
  });
  const started = Date.now();
  const before = process.resourceUsage().maxRSS;
  assertKvlensError(() => estimateModelMemory(dir, 4096), config, /"num_hidden_layers" is 1000000000, more than any supported model has \(at most 1024\)/);
  assertKvlensError(() => loadModel(dir), config, /"num_hidden_layers" is 1000000000, more than any supported model has/);
  assert.ok(Date.now() - started < 2000, `${Date.now() - started} ms`);
  assert.ok((process.resourceUsage().maxRSS - before) / 1024 < 64, 'no memory spent on the layer count');
});

test('loader errors: missing config, unsupported architecture', () => {
  const dir = copyModel(LLAMA);
  editConfig(dir, (c) => {
    c.architectures = ['GemmaForCausalLM'];
  });
  assertKvlensError(() => loadModel(dir), join(dir, 'config.json'), /unsupported architecture "GemmaForCausalLM" \(supported: LlamaForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, MistralForCausalLM, Gemma2ForCausalLM, Gemma3ForCausalLM\)/);
  const empty = mkdtempSync(join(tmpdir(), 'kvlens-loader-'));
  assertKvlensError(() => loadModel(empty), join(empty, 'config.json'), /missing config\.json/);
});

test('loader: an untied config without lm_head ties, and with tie on a stray lm_head is ignored like transformers', () => {
  const dir = copyModel(LLAMA);
  editConfig(dir, (c) => {
    c.tie_word_embeddings = false;
  });
  const tied = loadModel(dir);
  assert.equal(tied.config.tieWordEmbeddings, true);
  assert.equal(tied.parameterCount, LLAMA_PARAMS);

  const weights = loadModel(LLAMA).weights;
  weights.set('lm_head.weight', weights.get('model.embed_tokens.weight')!);
  writeF32Safetensors(join(dir, 'model.safetensors'), weights);
  editConfig(dir, (c) => {
    c.tie_word_embeddings = true;
  });
  const stray = loadModel(dir);
  assert.equal(stray.weights.has('lm_head.weight'), false);
  assert.equal(stray.parameterCount, LLAMA_PARAMS);
});

test('loader errors: an unexpected learned tensor (e.g. an MLP bias) is refused, not silently dropped', () => {
  const dir = copyModel(LLAMA);
  const weights = loadModel(LLAMA).weights;
  weights.set('model.layers.0.mlp.gate_proj.bias', { shape: [128], data: new Float32Array(128), sourceDtype: 'F32' });
  weights.set('model.rotary_emb.inv_freq', { shape: [8], data: new Float32Array(8), sourceDtype: 'F32' });
  writeF32Safetensors(join(dir, 'model.safetensors'), weights);
  assertKvlensError(() => loadModel(dir), join(dir, 'model.safetensors'), /unexpected tensor "model\.layers\.0\.mlp\.gate_proj\.bias"/);
  weights.delete('model.layers.0.mlp.gate_proj.bias');
  writeF32Safetensors(join(dir, 'model.safetensors'), weights);
  assert.equal(loadModel(dir).weights.has('model.rotary_emb.inv_freq'), false);
});

test('loader: llama with attention_bias expects q/k/v biases and accepts an o_proj bias', () => {
  const dir = copyModel(LLAMA);
  editConfig(dir, (c) => {
    c.attention_bias = true;
  });
  assertKvlensError(() => loadModel(dir), join(dir, 'model.safetensors'), /missing tensor "model\.layers\.0\.self_attn\.q_proj\.bias"/);
  const weights = loadModel(LLAMA).weights;
  for (let l = 0; l < 2; l++) {
    for (const [part, size] of [['q', 64], ['k', 32], ['v', 32], ['o', 64]] as const) {
      weights.set(`model.layers.${l}.self_attn.${part}_proj.bias`, { shape: [size], data: new Float32Array(size).fill(0.5), sourceDtype: 'F32' });
    }
  }
  writeF32Safetensors(join(dir, 'model.safetensors'), weights);
  const model = loadModel(dir);
  assert.equal(model.weights.get('model.layers.1.self_attn.o_proj.bias')!.data[3], 0.5);
  assert.equal(model.parameterCount, LLAMA_PARAMS + 2 * (64 + 32 + 32 + 64));
});

test('loader: memory estimate from config alone matches the loaded model and KV arithmetic', () => {
  const model = loadModel(QWEN);
  const estimate = estimateMemory(model.config, 1000);
  assert.equal(estimate.parameters, QWEN_PARAMS);
  assert.equal(estimate.weightBytes, QWEN_PARAMS * 4);
  // K and V x 2 layers x 2 KV heads x 16 dims x 4 bytes x 1000 tokens
  assert.equal(estimate.kvBytes, 2 * 2 * 2 * 16 * 4 * 1000);
  // The runtime: its fixed base plus three copies of one prefill chunk's scores ([4 heads, 512, 1000] fp32).
  assert.equal(estimate.runtimeBytes, RUNTIME_BASE_BYTES + 3 * 4 * 512 * 1000 * 4);
  assert.equal(estimate.totalBytes, estimate.weightBytes + estimate.kvBytes + estimate.runtimeBytes);
  assert.equal(estimateMemory(model.config, 1000, { kvBytesPerElement: 2 }).kvBytes, 2 * 2 * 2 * 16 * 2 * 1000);
  assert.equal(estimateMemory(model.config, 0, { weightCopies: 2 }).weightBytes, QWEN_PARAMS * 8);
});

test('loader: the estimate needs no weights (works with garbage weight files) and refuses up front', () => {
  const dir = copyModel(QWEN);
  writeFileSync(join(dir, 'model.safetensors'), 'not a safetensors file');
  const estimate = estimateModelMemory(dir, 4096);
  assert.equal(estimate.parameters, QWEN_PARAMS);
  assert.equal(estimate.filesBytes, 'not a safetensors file'.length);
  const gguf = join(MODELS, 'llama-gqa-tied-rope3-gguf', 'model.gguf');
  assert.equal(estimateModelMemory(gguf, 10).filesBytes, readFileSync(gguf).length);
  assert.equal(estimateModelMemory(gguf, 10).parameters, LLAMA_PARAMS);
  assert.throws(
    () => checkFitsInMemory(estimate, dir, { freeBytes: 1024 ** 2, totalBytes: 2 * 1024 ** 3 }),
    (error: unknown) =>
      error instanceof KvlensError && error.message.includes(dir) && /needs about 0\.44 GiB .*runtime and prefill scratch 0\.44 GiB/.test(error.message) && /only 0\.00 GiB of 2\.00 GiB is free/.test(error.message),
  );
  // 2 (K, V) x 80 layers x 8 KV heads x 128 dims x 4 bytes = 655,360 bytes per token
  const big = estimateMemory({ ...loadModel(QWEN).config, numLayers: 80, numKvHeads: 8, headDim: 128 }, 1_000_000);
  assert.throws(() => checkFitsInMemory(big, 'big-model', { freeBytes: 20 * 1024 ** 3, totalBytes: 24 * 1024 ** 3 }), /needs about \d+\.\d\d GiB .* KV cache 610\.35 GiB for 1000000 tokens/);
  checkFitsInMemory(estimate, dir, { freeBytes: 1024 ** 3, totalBytes: 2 * 1024 ** 3 });
});

test('loader: inspectModel lists the tensors to read, then reads them on demand', () => {
  const plan = inspectModel(QWEN);
  assert.equal(plan.format, 'safetensors');
  assert.equal(plan.parameterCount, QWEN_PARAMS);
  assert.equal(plan.tensorNames.length, 1 + 2 * 12 + 1 + 1);
  assert.equal(plan.read().size, plan.tensorNames.length);
});

test('resolveModelDir: folders, missing paths, non-model files, default', () => {
  assert.equal(resolveModelDir(LLAMA), LLAMA);
  assertKvlensError(() => resolveModelDir('/no/such/model'), '/no/such/model', /no such model folder or \.gguf file/);
  const empty = mkdtempSync(join(tmpdir(), 'kvlens-loader-'));
  assertKvlensError(() => resolveModelDir(empty), empty, /missing config\.json/);
  assertKvlensError(() => loadModel(empty), join(empty, 'config.json'), /missing config\.json/);
  assertKvlensError(() => resolveModelDir(join(LLAMA, 'config.json')), join(LLAMA, 'config.json'), /not a model folder or a \.gguf file/);
  const gguf = join(empty, 'm.gguf');
  writeFileSync(gguf, '');
  assert.equal(resolveModelDir(gguf), gguf);
  // A folder with one .gguf and no config.json stands for the file; with two it asks which.
  assert.equal(resolveModelDir(empty), gguf);
  writeFileSync(join(empty, 'n.gguf'), '');
  assertKvlensError(() => resolveModelDir(empty), empty, /several \.gguf files \(m\.gguf, n\.gguf\)/);
  const ggufFixture = join(MODELS, 'llama-gqa-tied-rope3-gguf');
  assert.equal(loadModel(ggufFixture).weights.size, loadModel(join(ggufFixture, 'model.gguf')).weights.size);
  // The default model is installed by its own tool; either it resolves to a folder with config.json or the error lists where it looked.
  try {
    const dir = resolveModelDir('default');
    assert.ok(readdirSync(dir).includes('config.json'));
  } catch (error) {
    assert.ok(error instanceof KvlensError && /default model is not installed \(looked in .*models\/default/.test(error.message));
  }
});

test('info: model facts for `kvlens info`', () => {
  const info = modelInfo(loadModel(LLAMA));
  assert.equal(info.architecture, 'llama');
  assert.equal(info.hfArchitecture, 'LlamaForCausalLM');
  assert.equal(info.parameters, LLAMA_PARAMS);
  assert.equal(info.dtype, 'F32');
  assert.equal(info.weightBytesOnDisk, LLAMA_PARAMS * 4);
  assert.equal(info.kvBytesPer1kTokens.fp32, 2 * 2 * 2 * 16 * 4 * 1000);
  assert.equal(info.kvBytesPer1kTokens.fp16, 2 * 2 * 2 * 16 * 2 * 1000);
  assert.deepEqual(
    [info.layers, info.heads, info.kvHeads, info.headDim, info.vocabSize, info.contextLength, info.tiedEmbeddings],
    [2, 4, 2, 16, 320, 4096, true],
  );
  assert.equal(info.ropeScaling, 'llama3 (factor 8, low 1, high 4, original context 32)');
  const text = formatModelInfo(info);
  assert.match(text, /parameters\s+94,528/);
  assert.match(text, /KV cache per 1k tokens\s+500 KiB fp32, 250 KiB fp16/);
});

test('info: a GGUF file mixing storage types lists each with its share of the parameters', () => {
  // tools/make_kquant_gguf_fixture.py: 2 layers, hidden 256, MLP 512, 4 heads and 2 KV heads of 64, vocab 320, untied.
  const info = modelInfo(loadModel(join(MODELS, 'llama-kquant-gguf', 'model.gguf')));
  const [embedding, square, kv, mlp] = [320 * 256, 256 * 256, 128 * 256, 512 * 256];
  const expected: Record<string, number> = {
    Q4_K: 2 * square + kv + 2 * mlp, // q (both layers), k (layer 0), gate (both)
    Q3_K: 2 * mlp, // up
    Q2_K: 2 * mlp, // down
    Q6_K: 2 * embedding + kv, // token_embd, output, v (layer 0)
    Q5_K: square, // o (layer 0)
    Q5_1: square, // o (layer 1)
    Q4_1: kv, // k (layer 1)
    Q5_0: kv, // v (layer 1)
    F32: 5 * 256, // norms
  };
  const total = Object.values(expected).reduce((a, b) => a + b, 0);
  assert.equal(info.parameters, total);
  assert.equal(info.dtype, 'Q4_K');
  assert.deepEqual(Object.fromEntries(info.dtypeShares.map((s) => [s.dtype, Math.round(s.share * total)])), expected);
  assert.ok(info.dtypeShares.every((s, i) => i === 0 || s.share <= info.dtypeShares[i - 1].share), 'largest share first');
  assert.match(formatModelInfo(info), /dtype on disk\s+Q4_K 32%, (Q3_K|Q2_K) 19%, (Q2_K|Q3_K) 19%, Q6_K 15%, .*F32 <1%/);
});

test('fixtures: every reference.json matches its checkpoint (vocab, layers, KV shapes) and the documented layout', () => {
  // Recurrent fixtures hold recurrent-reference.json instead (test/integration/recurrent-parity.test.ts).
  const names = readdirSync(MODELS).filter((name) => !existsSync(join(MODELS, name, 'recurrent-reference.json'))).sort();
  assert.deepEqual(names, [
    'gemma2-softcap-window12-bf16',
    'gemma3-local-global-bf16',
    'llama-gqa-tied-rope3-bf16',
    'llama-gqa-tied-rope3-f16',
    'llama-gqa-tied-rope3-f32',
    'llama-gqa-tied-rope3-f32-sharded',
    'llama-gqa-tied-rope3-gguf',
    'llama-kquant-gguf',
    'mistral-window12-bf16',
    'qwen2-bias-untied-bf16',
    'qwen2-bias-untied-f16',
    'qwen2-bias-untied-f32',
    'qwen3-qknorm-gguf',
    'qwen3-qknorm-headdim24-bf16',
    'qwen3-window12-top-layer-bf16',
  ]);
  for (const name of names) {
    const plan = inspectModel(name.endsWith('-gguf') ? join(MODELS, name, 'model.gguf') : join(MODELS, name));
    const ref = JSON.parse(readFileSync(join(MODELS, name, 'reference.json'), 'utf8'));
    const c = plan.config;
    assert.equal(ref.format, 'kvlens-reference-v1');
    assert.equal(ref.vocabSize, c.vocabSize);
    assert.equal(ref.numLayers, c.numLayers);
    assert.equal(ref.numHeads, c.numHeads);
    assert.equal(ref.numKvHeads, c.numKvHeads);
    assert.equal(ref.headDim, c.headDim);
    const n = ref.ids.length;
    assert.equal(n, 48);
    assert.ok(ref.ids.every((id: number) => Number.isInteger(id) && id >= 0 && id < c.vocabSize));
    assert.equal(ref.prefill.logits.length, n * c.vocabSize);
    assert.equal(ref.prefill.attention.length, c.numLayers);
    const w = ref.prefill.attentionWindow;
    for (const layer of ref.prefill.attention) {
      assert.equal(layer.window.length, c.numHeads * w * n);
      assert.equal(layer.keySums.length, c.numHeads * n);
    }
    const p = ref.decode.prefixLength;
    assert.equal(ref.decode.prefixLastLogits.length, c.vocabSize);
    for (const layer of ref.decode.prefixCache) {
      assert.equal(layer.keys.length, p * c.numKvHeads * c.headDim);
      assert.equal(layer.values.length, p * c.numKvHeads * c.headDim);
    }
    assert.deepEqual(ref.decode.steps.map((s: { position: number }) => s.position), Array.from({ length: n - p }, (_, i) => p + i));
    // A decode step sees the same context as the full prefill at that position.
    for (const step of ref.decode.steps) {
      assert.equal(step.token, ref.ids[step.position]);
      const row = ref.prefill.logits.slice(step.position * c.vocabSize, (step.position + 1) * c.vocabSize);
      const diff = Math.max(...row.map((v: number, i: number) => Math.abs(v - step.logits[i])));
      assert.ok(diff < 1e-4, `${name} step ${step.position}: ${diff}`);
    }
  }
});

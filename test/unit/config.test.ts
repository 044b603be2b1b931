import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig, readConfig, kvBytesPerToken } from '../../src/engine/model/config';
import { KvlensError } from '../../src/engine/errors';

const llamaBase = {
  architectures: ['LlamaForCausalLM'],
  model_type: 'llama',
  hidden_size: 64,
  intermediate_size: 128,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  vocab_size: 320,
  hidden_act: 'silu',
};

test('config: transformers 5 rope_parameters carry rope_theta and llama3 scaling', () => {
  const config = parseConfig(
    {
      ...llamaBase,
      rope_parameters: {
        rope_type: 'llama3',
        rope_theta: 20000,
        factor: 8,
        low_freq_factor: 1,
        high_freq_factor: 4,
        original_max_position_embeddings: 32,
      },
    },
    'config.json',
  );
  assert.equal(config.ropeTheta, 20000);
  assert.deepEqual(config.ropeScaling, {
    type: 'llama3',
    factor: 8,
    lowFreqFactor: 1,
    highFreqFactor: 4,
    originalMaxPositionEmbeddings: 32,
  });
});

test('config: rope_parameters of type default (or without a type) mean plain RoPE', () => {
  const a = parseConfig({ ...llamaBase, rope_parameters: { rope_type: 'default', rope_theta: 1e6 } }, 'c');
  assert.equal(a.ropeScaling, null);
  assert.equal(a.ropeTheta, 1e6);
  const b = parseConfig({ ...llamaBase, rope_parameters: { rope_theta: 5e5 } }, 'c');
  assert.equal(b.ropeScaling, null);
  assert.equal(b.ropeTheta, 5e5);
});

test('config: transformers 4 style rope_scaling + rope_theta still parse', () => {
  const config = parseConfig(
    { ...llamaBase, rope_theta: 500000, rope_scaling: { rope_type: 'llama3', factor: 32, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 } },
    'c',
  );
  assert.equal(config.ropeTheta, 500000);
  assert.equal(config.ropeScaling?.factor, 32);
});

test('config: unsupported rope scaling type is named', () => {
  assert.throws(
    () => parseConfig({ ...llamaBase, rope_parameters: { rope_type: 'yarn', factor: 4, rope_theta: 1e4 } }, '/m/config.json'),
    (error: unknown) => error instanceof KvlensError && /yarn/.test(error.message) && /\/m\/config\.json/.test(error.message),
  );
});

test('config: unsupported architecture lists the supported ones', () => {
  assert.throws(
    () => parseConfig({ ...llamaBase, architectures: ['Phi3ForCausalLM'] }, '/m/config.json'),
    (error: unknown) =>
      error instanceof KvlensError &&
      /Phi3ForCausalLM/.test(error.message) &&
      /LlamaForCausalLM/.test(error.message) &&
      /Qwen2ForCausalLM/.test(error.message),
  );
});

test('config: heads not divisible by kv heads, bad ints and non-silu activations are refused', () => {
  assert.throws(() => parseConfig({ ...llamaBase, num_key_value_heads: 3 }, 'c'), /multiple of num_key_value_heads/);
  assert.throws(() => parseConfig({ ...llamaBase, hidden_size: 0 }, 'c'), /hidden_size/);
  assert.throws(() => parseConfig({ ...llamaBase, hidden_act: 'gelu' }, 'c'), /gelu/);
  assert.throws(() => parseConfig([], 'c'), /JSON object/);
});

test('config: qwen2 always has q/k/v biases; GQA head dim derives from hidden size', () => {
  const config = parseConfig({ ...llamaBase, architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2', eos_token_id: [5, 7] }, 'c');
  assert.equal(config.architecture, 'qwen2');
  assert.equal(config.attentionBias, true);
  assert.equal(config.headDim, 16);
  assert.deepEqual(config.eosTokenIds, [5, 7]);
  // 2 (K and V) x 2 layers x 2 kv heads x 16 dims x 4 bytes
  assert.equal(kvBytesPerToken(config), 2 * 2 * 2 * 16 * 4);
  assert.equal(kvBytesPerToken(config, 2), 2 * 2 * 2 * 16 * 2);
});

test('config: missing and malformed config.json name the file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kvlens-config-'));
  assert.throws(() => readConfig(dir), (error: unknown) => error instanceof KvlensError && error.message.includes(join(dir, 'config.json')) && /missing/.test(error.message));
  writeFileSync(join(dir, 'config.json'), '{"hidden_size": 64,');
  assert.throws(() => readConfig(dir), /not valid JSON/);
});

test('config: absurd sizes are refused by name before anything is sized by them', () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ num_hidden_layers: 1e9 }, /"num_hidden_layers" is 1000000000, more than any supported model has \(at most 1024\)/],
    [{ hidden_size: 2 ** 40, num_attention_heads: 4 }, /"hidden_size" is 1099511627776, more than any supported model has/],
    [{ intermediate_size: 1e12 }, /"intermediate_size" is 1000000000000, more than/],
    [{ vocab_size: 1e9 }, /"vocab_size" is 1000000000, more than any supported model has \(at most 4194304\)/],
    [{ num_attention_heads: 2 ** 20, num_key_value_heads: 2 ** 20, head_dim: 64 }, /"num_attention_heads" is 1048576, more than/],
    [{ head_dim: 2 ** 20 }, /"head_dim" is 1048576, more than/],
    [{ max_position_embeddings: 1e12 }, /"max_position_embeddings" is 1000000000000, more than/],
    [{ max_position_embeddings: 0 }, /"max_position_embeddings" must be a positive integer, found 0/],
  ];
  for (const [override, pattern] of cases) {
    assert.throws(
      () => parseConfig({ ...llamaBase, ...override }, '/m/config.json'),
      (error: unknown) => error instanceof KvlensError && error.message.startsWith('/m/config.json: ') && pattern.test(error.message),
      JSON.stringify(override),
    );
  }
});

test('config: a non-positive rms_norm_eps or rope_theta (NaN logits) is refused', () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ rms_norm_eps: -1 }, /"rms_norm_eps" must be a positive number, found -1/],
    [{ rms_norm_eps: 0 }, /"rms_norm_eps" must be a positive number, found 0/],
    [{ rope_theta: 0 }, /"rope_theta" must be a positive number, found 0 \(RoPE frequencies would be NaN\)/],
    [{ rope_theta: -10000 }, /"rope_theta" must be a positive number, found -10000/],
    [{ rope_parameters: { rope_type: 'default', rope_theta: 0 } }, /"rope_theta" must be a positive number, found 0/],
    [
      { rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 4, high_freq_factor: 4, original_max_position_embeddings: 8192 } },
      /llama3 rope scaling needs factor > 0, 0 < low_freq_factor < high_freq_factor .*found 8, 4, 4, 8192/,
    ],
  ];
  for (const [override, pattern] of cases) {
    assert.throws(
      () => parseConfig({ ...llamaBase, ...override }, '/m/config.json'),
      (error: unknown) => error instanceof KvlensError && error.message.startsWith('/m/config.json: ') && pattern.test(error.message),
      JSON.stringify(override),
    );
  }
  assert.equal(parseConfig({ ...llamaBase, rms_norm_eps: 1e-6, rope_theta: 1e6 }, 'c').ropeTheta, 1e6);
});

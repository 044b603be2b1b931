// In-memory decoders with seeded random weights, for tests and benchmarks that must not depend on a checkpoint.
import type { ModelConfig } from '../../src/engine/model/config';
import { mulberry32 } from '../../src/engine/random';
import type { WeightMap } from '../../src/engine/model/types';

/** Deterministic uniform [0, 1) numbers: the engine's own seeded generator. */
export const seededRandom = mulberry32;

export function testConfig(overrides: Partial<ModelConfig> = {}): ModelConfig {
  return {
    architecture: 'llama',
    hfArchitecture: 'LlamaForCausalLM',
    hiddenSize: 32,
    intermediateSize: 48,
    numLayers: 2,
    numHeads: 4,
    numKvHeads: 2,
    headDim: 8,
    vocabSize: 50,
    rmsNormEps: 1e-5,
    ropeTheta: 10000,
    ropeScaling: null,
    tieWordEmbeddings: false,
    attentionBias: false,
    maxPositionEmbeddings: 4096,
    bosTokenId: null,
    eosTokenIds: [],
    torchDtype: 'float32',
    ...overrides,
  };
}

/**
 * Random weights under Hugging Face names. Scales keep activations O(1) so logits and attention are not
 * degenerate (near-uniform softmax would hide masking and RoPE bugs).
 */
export function randomWeights(config: ModelConfig, seed = 1): WeightMap {
  const random = seededRandom(seed);
  const weights: WeightMap = new Map();
  const add = (name: string, shape: number[], scale: number, offset = 0): void => {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    for (let i = 0; i < data.length; i++) data[i] = offset + (random() * 2 - 1) * scale;
    weights.set(name, { shape, data, sourceDtype: 'F32' });
  };
  const { hiddenSize: hidden, numHeads, numKvHeads, headDim, intermediateSize: ffn, vocabSize } = config;
  const projection = (fanIn: number): number => 1.7 / Math.sqrt(fanIn);
  add('model.embed_tokens.weight', [vocabSize, hidden], 1);
  for (let l = 0; l < config.numLayers; l++) {
    const p = `model.layers.${l}.`;
    add(`${p}input_layernorm.weight`, [hidden], 0.2, 1);
    add(`${p}self_attn.q_proj.weight`, [numHeads * headDim, hidden], 2.5 * projection(hidden));
    add(`${p}self_attn.k_proj.weight`, [numKvHeads * headDim, hidden], 2.5 * projection(hidden));
    add(`${p}self_attn.v_proj.weight`, [numKvHeads * headDim, hidden], projection(hidden));
    if (config.attentionBias) {
      add(`${p}self_attn.q_proj.bias`, [numHeads * headDim], 0.5);
      add(`${p}self_attn.k_proj.bias`, [numKvHeads * headDim], 0.5);
      add(`${p}self_attn.v_proj.bias`, [numKvHeads * headDim], 0.5);
    }
    if (config.qkNorm) {
      add(`${p}self_attn.q_norm.weight`, [headDim], 0.2, 1);
      add(`${p}self_attn.k_norm.weight`, [headDim], 0.2, 1);
    }
    add(`${p}self_attn.o_proj.weight`, [hidden, numHeads * headDim], projection(numHeads * headDim));
    add(`${p}post_attention_layernorm.weight`, [hidden], 0.2, 1);
    if (config.architecture === 'gemma2') {
      add(`${p}pre_feedforward_layernorm.weight`, [hidden], 0.2, 1);
      add(`${p}post_feedforward_layernorm.weight`, [hidden], 0.2, 1);
    }
    add(`${p}mlp.gate_proj.weight`, [ffn, hidden], projection(hidden));
    add(`${p}mlp.up_proj.weight`, [ffn, hidden], projection(hidden));
    add(`${p}mlp.down_proj.weight`, [hidden, ffn], projection(ffn));
  }
  add('model.norm.weight', [hidden], 0.2, 1);
  if (!config.tieWordEmbeddings) add('lm_head.weight', [vocabSize, hidden], projection(hidden));
  return weights;
}

// RecurrentGemma (RecurrentGemmaForCausalLM; Griffin, De et al. 2024, "Griffin: Mixing Gated Linear Recurrences
// with Local Attention for Efficient Language Models") as transformers' modeling_recurrent_gemma computes it.
//
// h = embed(token) * bf16(sqrt(H)); then per layer (block types repeat config.block_types):
//   x = RMSNorm(h) (scale 1 + weight);  h += temporal(x);  h += MLP(RMSNorm(h))     MLP: down(gelu(gate) * up), biased
// temporal = recurrent block (Hawk):
//   y = gelu(linear_y(x));  u = conv1d(linear_x(x) over the last W tokens)           [L]  (L = lru_width)
//   RG-LRU, per channel (gates are block-diagonal per head):
//     i = sigmoid(u W_in + b_in),  r = sigmoid(u W_rec + b_rec),  log a = -8 r softplus(recurrent_param)
//     s = a s + sqrt(1 - a^2) (i u)        (at position 0: s = i u, the reset)
//   out = linear_out(s * y)
// temporal = local attention block: GQA attention over the last attention_window_size tokens (this one
//   included), RoPE on the first half of each head (partial rotary), o_proj with bias.
// logits = cap * tanh(lm_head(RMSNorm(h)) / cap).
// Between tokens a recurrent layer carries its conv window and s; an attention layer a ring buffer of the last
// window keys and values: all fixed by the config, whatever the context.
import { KvlensError } from '../../errors';
import { configDtype, configIds, configInt, configPositive, tensor, type Json, type RecurrentCheckpoint } from './checkpoint';
import { linear, pickRows, sigmoid, softplus } from './math';
import { RecurrentState, type RecurrentConfig, type RecurrentForward, type StateArray } from './types';

const f32 = Math.fround;

export interface RecurrentGemmaConfig extends RecurrentConfig {
  architecture: 'recurrent_gemma';
  /** Per layer, 'recurrent' or 'attention'. */
  layerTypes: ('recurrent' | 'attention')[];
  lruWidth: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  /** Leading dimensions of each head that RoPE rotates. */
  rotaryDim: number;
  ropeTheta: number;
  attentionWindow: number;
  convWidth: number;
  logitsSoftCap: number;
  attentionBias: boolean;
  normEps: number;
}

function ropeParameter(json: Json, key: string): unknown {
  const params = json.rope_parameters;
  if (typeof params === 'object' && params !== null && !Array.isArray(params) && key in params) return (params as Json)[key];
  return json[key];
}

export function parseRecurrentGemmaConfig(json: Json, file: string): RecurrentGemmaConfig {
  const hiddenSize = configInt(json, 'hidden_size', file, 'width');
  const numLayers = configInt(json, 'num_hidden_layers', file, 'layers');
  const numHeads = configInt(json, 'num_attention_heads', file, 'width');
  const numKvHeads = json.num_key_value_heads === undefined || json.num_key_value_heads === null ? numHeads : configInt(json, 'num_key_value_heads', file, 'width');
  if (numHeads % numKvHeads !== 0) throw new KvlensError(`num_attention_heads (${numHeads}) must be a multiple of num_key_value_heads (${numKvHeads})`, file);
  const lruWidth = json.lru_width === undefined || json.lru_width === null ? hiddenSize : configInt(json, 'lru_width', file, 'width');
  if (hiddenSize % numHeads !== 0 || lruWidth % numHeads !== 0) {
    throw new KvlensError(`hidden_size (${hiddenSize}) and lru_width (${lruWidth}) must be multiples of num_attention_heads (${numHeads})`, file);
  }
  // transformers derives the head size from hidden_size, whatever head_dim says.
  const headDim = hiddenSize / numHeads;
  const factor = ropeParameter(json, 'partial_rotary_factor') ?? 0.5;
  const rotaryDim = typeof factor === 'number' ? Math.floor(headDim * factor) : NaN;
  if (!(rotaryDim >= 2) || rotaryDim % 2 !== 0 || rotaryDim > headDim) {
    throw new KvlensError(`"partial_rotary_factor" ${JSON.stringify(factor)} must give an even rotary width between 2 and the head size ${headDim}`, file);
  }
  const ropeType = ropeParameter(json, 'rope_type') ?? 'default';
  if (ropeType !== 'default') throw new KvlensError(`rope_type ${JSON.stringify(ropeType)} is not supported for RecurrentGemma (supported: default)`, file);
  const theta = ropeParameter(json, 'rope_theta') ?? 10000;
  if (typeof theta !== 'number' || !(theta > 0)) throw new KvlensError(`"rope_theta" must be a positive number, found ${JSON.stringify(theta)}`, file);
  const types = json.block_types ?? ['recurrent', 'recurrent', 'attention'];
  if (!Array.isArray(types) || types.length === 0 || types.some((t) => t !== 'recurrent' && t !== 'attention')) {
    throw new KvlensError(`"block_types" must list "recurrent" and "attention", found ${JSON.stringify(json.block_types)}`, file);
  }
  const activation = json.hidden_activation ?? 'gelu_pytorch_tanh';
  if (activation !== 'gelu_pytorch_tanh') {
    throw new KvlensError(`hidden_activation ${JSON.stringify(activation)} is not supported for RecurrentGemma (supported: gelu_pytorch_tanh)`, file);
  }
  const intermediate = configInt(json, 'intermediate_size', file, 'width');
  if (intermediate % 2 !== 0) throw new KvlensError(`"intermediate_size" (${intermediate}) must be even: the MLP is half as wide`, file);
  return {
    architecture: 'recurrent_gemma',
    hfArchitecture: 'RecurrentGemmaForCausalLM',
    hiddenSize,
    intermediateSize: intermediate / 2,
    numLayers,
    vocabSize: configInt(json, 'vocab_size', file, 'vocab'),
    tieWordEmbeddings: json.tie_word_embeddings === undefined ? true : Boolean(json.tie_word_embeddings),
    trainedContext: null,
    bosTokenId: typeof json.bos_token_id === 'number' ? json.bos_token_id : null,
    eosTokenIds: configIds(json.eos_token_id),
    torchDtype: configDtype(json),
    layerTypes: Array.from({ length: numLayers }, (_, l) => types[l % types.length] as 'recurrent' | 'attention'),
    lruWidth,
    numHeads,
    numKvHeads,
    headDim,
    rotaryDim,
    ropeTheta: theta,
    attentionWindow: configInt(json, 'attention_window_size', file, 'width', 2048),
    convWidth: configInt(json, 'conv1d_width', file, 'width', 4),
    logitsSoftCap: configPositive(json, 'logits_soft_cap', file, 30),
    attentionBias: Boolean(json.attention_bias ?? false),
    normEps: configPositive(json, 'rms_norm_eps', file, 1e-6),
  };
}

export function recurrentGemmaTensorShapes(config: RecurrentGemmaConfig): { expected: Map<string, number[]>; optional: Map<string, number[]> } {
  const { hiddenSize: H, intermediateSize: F, lruWidth: L, numHeads, numKvHeads, headDim: D, convWidth: W, vocabSize: V } = config;
  const block = L / numHeads;
  const expected = new Map<string, number[]>([['model.embed_tokens.weight', [V, H]]]);
  config.layerTypes.forEach((type, l) => {
    const p = `model.layers.${l}.`;
    expected.set(`${p}temporal_pre_norm.weight`, [H]);
    expected.set(`${p}channel_pre_norm.weight`, [H]);
    for (const proj of ['gate_proj', 'up_proj']) {
      expected.set(`${p}mlp_block.${proj}.weight`, [F, H]);
      expected.set(`${p}mlp_block.${proj}.bias`, [F]);
    }
    expected.set(`${p}mlp_block.down_proj.weight`, [H, F]);
    expected.set(`${p}mlp_block.down_proj.bias`, [H]);
    const t = `${p}temporal_block.`;
    if (type === 'recurrent') {
      for (const proj of ['linear_x', 'linear_y']) {
        expected.set(`${t}${proj}.weight`, [L, H]);
        expected.set(`${t}${proj}.bias`, [L]);
      }
      expected.set(`${t}linear_out.weight`, [H, L]);
      expected.set(`${t}linear_out.bias`, [H]);
      expected.set(`${t}conv_1d.weight`, [L, 1, W]);
      expected.set(`${t}conv_1d.bias`, [L]);
      expected.set(`${t}rg_lru.recurrent_param`, [L]);
      for (const gate of ['input_gate', 'recurrent_gate']) {
        expected.set(`${t}rg_lru.${gate}_weight`, [numHeads, block, block]);
        expected.set(`${t}rg_lru.${gate}_bias`, [numHeads, block]);
      }
    } else {
      expected.set(`${t}q_proj.weight`, [numHeads * D, H]);
      expected.set(`${t}k_proj.weight`, [numKvHeads * D, H]);
      expected.set(`${t}v_proj.weight`, [numKvHeads * D, H]);
      expected.set(`${t}o_proj.weight`, [H, numHeads * D]);
      expected.set(`${t}o_proj.bias`, [H]);
      if (config.attentionBias) {
        expected.set(`${t}q_proj.bias`, [numHeads * D]);
        expected.set(`${t}k_proj.bias`, [numKvHeads * D]);
        expected.set(`${t}v_proj.bias`, [numKvHeads * D]);
      }
    }
  });
  expected.set('model.final_norm.weight', [H]);
  const optional = new Map<string, number[]>();
  if (config.tieWordEmbeddings) optional.set('lm_head.weight', [V, H]);
  else expected.set('lm_head.weight', [V, H]);
  return { expected, optional };
}

/** gelu with torch's tanh approximation ("gelu_pytorch_tanh"). */
function gelu(x: number): number {
  return 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));
}

/** x / sqrt(mean(x^2) + eps) * (1 + weight), per row: Gemma's RMSNorm. */
function gemmaNorm(x: Float32Array, rows: number, dim: number, weight: Float32Array, eps: number): Float32Array {
  const out = new Float32Array(rows * dim);
  for (let t = 0; t < rows; t++) {
    let squares = 0;
    for (let i = 0; i < dim; i++) squares += x[t * dim + i] * x[t * dim + i];
    const scale = 1 / Math.sqrt(squares / dim + eps);
    for (let i = 0; i < dim; i++) out[t * dim + i] = x[t * dim + i] * scale * (1 + weight[i]);
  }
  return out;
}

/** The nearest bfloat16 to x (round to nearest even), as transformers stores the embedding normalizer. */
function roundToBfloat16(x: number): number {
  const bits = new Uint32Array(new Float32Array([x]).buffer)[0];
  const rounded = (bits + 0x7fff + ((bits >> 16) & 1)) & 0xffff0000;
  return new Float32Array(new Uint32Array([rounded >>> 0]).buffer)[0];
}

type Weights = (name: string) => Float32Array;

interface Mlp {
  gate: Float32Array;
  gateBias: Float32Array;
  up: Float32Array;
  upBias: Float32Array;
  down: Float32Array;
  downBias: Float32Array;
}

interface RecurrentBlock {
  kind: 'recurrent';
  linearX: Float32Array;
  linearXBias: Float32Array;
  linearY: Float32Array;
  linearYBias: Float32Array;
  linearOut: Float32Array;
  linearOutBias: Float32Array;
  /** [L, W], oldest input first. */
  conv: Float32Array;
  convBias: Float32Array;
  /** softplus(recurrent_param) * -8: log a = r * this. */
  logDecayScale: Float32Array;
  /** [heads, block, block] (input index, then output index) and [heads, block]. */
  inputGate: Float32Array;
  inputGateBias: Float32Array;
  recurrentGate: Float32Array;
  recurrentGateBias: Float32Array;
}

interface AttentionBlock {
  kind: 'attention';
  q: Float32Array;
  qBias: Float32Array | null;
  k: Float32Array;
  kBias: Float32Array | null;
  v: Float32Array;
  vBias: Float32Array | null;
  o: Float32Array;
  oBias: Float32Array;
}

interface GemmaLayer {
  temporalNorm: Float32Array;
  channelNorm: Float32Array;
  mlp: Mlp;
  temporal: RecurrentBlock | AttentionBlock;
}

/** The state before any token, for `config` (also what a memory estimate sizes, without reading a weight). */
export function recurrentGemmaInitialState(config: RecurrentGemmaConfig): RecurrentState {
  const { lruWidth: L, convWidth: W, attentionWindow, numKvHeads, headDim: D } = config;
  return new RecurrentState(
    config.layerTypes.map((type): StateArray[] =>
      type === 'recurrent'
        ? [
            { name: 'conv', shape: [W - 1, L], data: new Float32Array((W - 1) * L) },
            { name: 'lru', shape: [L], data: new Float32Array(L) },
          ]
        : [
            // Ring buffers: the token at position p sits in slot p mod window.
            { name: 'keys', shape: [attentionWindow, numKvHeads, D], data: new Float32Array(attentionWindow * numKvHeads * D) },
            { name: 'values', shape: [attentionWindow, numKvHeads, D], data: new Float32Array(attentionWindow * numKvHeads * D) },
          ],
    ),
  );
}

export class RecurrentGemmaForward implements RecurrentForward {
  private readonly embedding: Float32Array;
  private readonly normalizer: number;
  private readonly layers: GemmaLayer[];
  private readonly finalNorm: Float32Array;
  private readonly head: Float32Array;
  /** [rotaryDim / 2] inverse frequencies, fp32 as transformers computes them. */
  private readonly invFreq: Float32Array;

  constructor(readonly config: RecurrentGemmaConfig, weights: Map<string, Float32Array>) {
    const w: Weights = (name) => tensor(weights, name);
    this.embedding = w('model.embed_tokens.weight');
    this.normalizer = roundToBfloat16(Math.sqrt(config.hiddenSize));
    this.layers = config.layerTypes.map((type, l) => {
      const p = `model.layers.${l}.`;
      const t = `${p}temporal_block.`;
      const temporal: RecurrentBlock | AttentionBlock =
        type === 'recurrent'
          ? {
              kind: 'recurrent',
              linearX: w(`${t}linear_x.weight`),
              linearXBias: w(`${t}linear_x.bias`),
              linearY: w(`${t}linear_y.weight`),
              linearYBias: w(`${t}linear_y.bias`),
              linearOut: w(`${t}linear_out.weight`),
              linearOutBias: w(`${t}linear_out.bias`),
              conv: w(`${t}conv_1d.weight`),
              convBias: w(`${t}conv_1d.bias`),
              logDecayScale: w(`${t}rg_lru.recurrent_param`).map((v) => -8 * softplus(v)),
              inputGate: w(`${t}rg_lru.input_gate_weight`),
              inputGateBias: w(`${t}rg_lru.input_gate_bias`),
              recurrentGate: w(`${t}rg_lru.recurrent_gate_weight`),
              recurrentGateBias: w(`${t}rg_lru.recurrent_gate_bias`),
            }
          : {
              kind: 'attention',
              q: w(`${t}q_proj.weight`),
              qBias: weights.get(`${t}q_proj.bias`) ?? null,
              k: w(`${t}k_proj.weight`),
              kBias: weights.get(`${t}k_proj.bias`) ?? null,
              v: w(`${t}v_proj.weight`),
              vBias: weights.get(`${t}v_proj.bias`) ?? null,
              o: w(`${t}o_proj.weight`),
              oBias: w(`${t}o_proj.bias`),
            };
      return {
        temporalNorm: w(`${p}temporal_pre_norm.weight`),
        channelNorm: w(`${p}channel_pre_norm.weight`),
        mlp: {
          gate: w(`${p}mlp_block.gate_proj.weight`),
          gateBias: w(`${p}mlp_block.gate_proj.bias`),
          up: w(`${p}mlp_block.up_proj.weight`),
          upBias: w(`${p}mlp_block.up_proj.bias`),
          down: w(`${p}mlp_block.down_proj.weight`),
          downBias: w(`${p}mlp_block.down_proj.bias`),
        },
        temporal,
      };
    });
    this.finalNorm = w('model.final_norm.weight');
    this.head = weights.get('lm_head.weight') ?? this.embedding;
    const half = config.rotaryDim / 2;
    this.invFreq = new Float32Array(half);
    for (let i = 0; i < half; i++) this.invFreq[i] = f32(1 / f32(Math.pow(config.ropeTheta, f32(f32(2 * i) / config.rotaryDim))));
  }

  initialState(): RecurrentState {
    return recurrentGemmaInitialState(this.config);
  }

  forward(tokens: ArrayLike<number>, state: RecurrentState, logits: 'all' | 'last'): Float32Array {
    const { hiddenSize: H, intermediateSize: F, vocabSize: V, normEps, logitsSoftCap: cap } = this.config;
    const T = tokens.length;
    if (T === 0) throw new KvlensError('no tokens to run', 'recurrent_gemma');
    const start = state.tokensSeen;
    const h = new Float32Array(T * H);
    for (let t = 0; t < T; t++) {
      const id = tokens[t];
      if (!Number.isInteger(id) || id < 0 || id >= V) throw new KvlensError(`token id ${id} is outside the vocabulary (size ${V})`, 'recurrent_gemma');
      for (let i = 0; i < H; i++) h[t * H + i] = this.embedding[id * H + i] * this.normalizer;
    }
    this.layers.forEach((layer, l) => {
      const x = gemmaNorm(h, T, H, layer.temporalNorm, normEps);
      const temporal =
        layer.temporal.kind === 'recurrent'
          ? this.recurrentBlock(layer.temporal, x, T, start, state.get(l, 'conv'), state.get(l, 'lru'))
          : this.attentionBlock(layer.temporal, x, T, start, state.get(l, 'keys'), state.get(l, 'values'));
      for (let i = 0; i < h.length; i++) h[i] += temporal[i];
      const normed = gemmaNorm(h, T, H, layer.channelNorm, normEps);
      const gate = linear(normed, T, layer.mlp.gate, F, H, layer.mlp.gateBias);
      const up = linear(normed, T, layer.mlp.up, F, H, layer.mlp.upBias);
      for (let i = 0; i < gate.length; i++) gate[i] = gelu(gate[i]) * up[i];
      const mlp = linear(gate, T, layer.mlp.down, H, F, layer.mlp.downBias);
      for (let i = 0; i < h.length; i++) h[i] += mlp[i];
    });
    state.tokensSeen += T;
    const rows = pickRows(h, T, H, logits);
    const out = linear(gemmaNorm(rows.data, rows.rows, H, this.finalNorm, normEps), rows.rows, this.head, V, H);
    for (let i = 0; i < out.length; i++) out[i] = Math.tanh(out[i] / cap) * cap;
    return out;
  }

  private recurrentBlock(block: RecurrentBlock, x: Float32Array, T: number, start: number, convState: Float32Array, lru: Float32Array): Float32Array {
    const { hiddenSize: H, lruWidth: L, convWidth: W, numHeads } = this.config;
    const width = L / numHeads;
    const y = linear(x, T, block.linearY, L, H, block.linearYBias);
    for (let i = 0; i < y.length; i++) y[i] = gelu(y[i]);
    const xb = linear(x, T, block.linearX, L, H, block.linearXBias);
    const u = new Float32Array(L);
    const out = new Float32Array(T * L);
    for (let t = 0; t < T; t++) {
      // Causal depthwise conv over the last W inputs.
      for (let c = 0; c < L; c++) {
        let sum = block.convBias[c];
        for (let k = 0; k < W - 1; k++) sum += block.conv[c * W + k] * convState[k * L + c];
        u[c] = sum + block.conv[c * W + W - 1] * xb[t * L + c];
      }
      convState.copyWithin(0, L, (W - 1) * L);
      convState.set(xb.subarray(t * L, (t + 1) * L), (W - 2) * L);

      // RG-LRU with block-diagonal gates: head h's gates read only its own `width` channels.
      const reset = start + t === 0;
      for (let head = 0; head < numHeads; head++) {
        for (let j = 0; j < width; j++) {
          let inputGate = block.inputGateBias[head * width + j];
          let recurrentGate = block.recurrentGateBias[head * width + j];
          for (let i = 0; i < width; i++) {
            const ui = u[head * width + i];
            inputGate += ui * block.inputGate[(head * width + i) * width + j];
            recurrentGate += ui * block.recurrentGate[(head * width + i) * width + j];
          }
          const c = head * width + j;
          const logA = sigmoid(recurrentGate) * block.logDecayScale[c];
          const gated = u[c] * sigmoid(inputGate);
          // The input is scaled by sqrt(1 - a^2) so the state keeps unit scale; the first token resets it.
          lru[c] = reset ? gated : Math.exp(logA) * lru[c] + gated * Math.sqrt(1 - Math.exp(2 * logA));
          out[t * L + c] = lru[c] * y[t * L + c];
        }
      }
    }
    return linear(out, T, block.linearOut, H, L, block.linearOutBias);
  }

  private attentionBlock(block: AttentionBlock, x: Float32Array, T: number, start: number, keys: Float32Array, values: Float32Array): Float32Array {
    const { hiddenSize: H, numHeads, numKvHeads, headDim: D, rotaryDim: R, attentionWindow: window } = this.config;
    const q = linear(x, T, block.q, numHeads * D, H, block.qBias);
    const k = linear(x, T, block.k, numKvHeads * D, H, block.kBias);
    const v = linear(x, T, block.v, numKvHeads * D, H, block.vBias);
    const group = numHeads / numKvHeads;
    const scale = 1 / Math.sqrt(D);
    const out = new Float32Array(T * numHeads * D);
    const scores = new Float32Array(window);
    const half = R / 2;
    // "rotate half" RoPE on the first R dimensions of one head vector in place.
    const rotate = (vec: Float32Array, at: number, position: number) => {
      for (let i = 0; i < half; i++) {
        const angle = f32(position * this.invFreq[i]);
        const cos = Math.cos(angle);
        const sin = Math.sin(angle);
        const a = vec[at + i];
        const b = vec[at + i + half];
        vec[at + i] = a * cos - b * sin;
        vec[at + i + half] = b * cos + a * sin;
      }
    };
    for (let t = 0; t < T; t++) {
      const position = start + t;
      for (let head = 0; head < numHeads; head++) rotate(q, (t * numHeads + head) * D, position);
      for (let head = 0; head < numKvHeads; head++) rotate(k, (t * numKvHeads + head) * D, position);
      const slot = position % window;
      keys.set(k.subarray(t * numKvHeads * D, (t + 1) * numKvHeads * D), slot * numKvHeads * D);
      values.set(v.subarray(t * numKvHeads * D, (t + 1) * numKvHeads * D), slot * numKvHeads * D);
      // Keys of positions (position - window, position]: at most `window`, in the ring.
      const first = Math.max(0, position - window + 1);
      for (let head = 0; head < numHeads; head++) {
        const kvHead = Math.floor(head / group);
        const qAt = (t * numHeads + head) * D;
        let max = -Infinity;
        for (let p = first; p <= position; p++) {
          const kAt = ((p % window) * numKvHeads + kvHead) * D;
          let dot = 0;
          for (let d = 0; d < D; d++) dot += q[qAt + d] * keys[kAt + d];
          scores[p - first] = dot * scale;
          max = Math.max(max, scores[p - first]);
        }
        let sum = 0;
        for (let p = first; p <= position; p++) sum += scores[p - first] = Math.exp(scores[p - first] - max);
        for (let p = first; p <= position; p++) {
          const weight = scores[p - first] / sum;
          const vAt = ((p % window) * numKvHeads + kvHead) * D;
          for (let d = 0; d < D; d++) out[qAt + d] += weight * values[vAt + d];
        }
      }
    }
    return linear(out, T, block.o, H, numHeads * D, block.oBias);
  }
}

/** A RecurrentGemmaForCausalLM folder's config and tensor table, before any weight is read. */
export function recurrentGemmaCheckpoint(_dir: string, json: Json, file: string): RecurrentCheckpoint {
  const config = parseRecurrentGemmaConfig(json, file);
  return {
    config,
    ...recurrentGemmaTensorShapes(config),
    initialState: () => recurrentGemmaInitialState(config),
    create: (tensors) => new RecurrentGemmaForward(config, tensors),
  };
}

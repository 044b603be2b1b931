// RWKV-4 (RwkvForCausalLM, Peng et al. 2023, "RWKV: Reinventing RNNs for the Transformer Era") as transformers'
// modeling_rwkv computes it, on plain typed arrays, readable top to bottom.
//
// Per block (H hidden, F channel-mix width), each token mixed with the previous token's input ("token shift"):
//   x         = LayerNorm1(h)                                 [H]    (block 0 first applies pre_ln to h)
//   k, v, r   = key/value/receptance(x * mix + x_prev * (1 - mix))
//   wkv       = (e^(p - q) * num + e^(k + u - q) * v) / (e^(p - q) * den + e^(k + u - q)),  q = max(p, k + u)
//   num, den  decay by e^w (w = -exp(time_decay)) and take in e^k * v, e^k, all kept relative to the running
//             maximum exponent p so nothing overflows (the time-mix "linear attention")
//   h        += output(sigmoid(r) * wkv)
//   x         = LayerNorm2(h);  h += sigmoid(receptance(..)) * value(relu(key(..))^2)   (channel-mix)
// then logits = head(LayerNorm_out(h)). A layer carries five [H] vectors between tokens: both token-shift
// inputs and num, den, p: a state fixed by the config, whatever the context.
//
// As transformers does at inference, the output and channel-mix value weights of block l are divided by
// 2^floor(l / rescale_every) and h is halved after every rescale_every blocks (fp16 headroom; the same
// function in exact arithmetic, and the same rounding as transformers here).
import { KvlensError } from '../../errors';
import { configDtype, configIds, configInt, configPositive, tensor, type Json, type RecurrentCheckpoint } from './checkpoint';
import { layerNorm, linear, pickRows, sigmoid } from './math';
import { RecurrentState, type RecurrentConfig, type RecurrentForward } from './types';

export interface RwkvConfig extends RecurrentConfig {
  architecture: 'rwkv';
  normEps: number;
  /** Halve the residual stream after every this many blocks (0: never). */
  rescaleEvery: number;
}

/** transformers builds the final LayerNorm with torch's default epsilon, not layer_norm_epsilon. */
const OUTPUT_NORM_EPS = 1e-5;

export function parseRwkvConfig(json: Json, file: string): RwkvConfig {
  const hiddenSize = configInt(json, 'hidden_size', file, 'width');
  if (json.attention_hidden_size !== undefined && json.attention_hidden_size !== null && json.attention_hidden_size !== hiddenSize) {
    throw new KvlensError(`"attention_hidden_size" (${JSON.stringify(json.attention_hidden_size)}) must equal "hidden_size" (${hiddenSize}): the per-layer state has one width`, file);
  }
  const rescale = json.rescale_every ?? 6;
  if (typeof rescale !== 'number' || !Number.isInteger(rescale) || rescale < 0) throw new KvlensError(`"rescale_every" must be a non-negative integer, found ${JSON.stringify(rescale)}`, file);
  return {
    architecture: 'rwkv',
    hfArchitecture: 'RwkvForCausalLM',
    hiddenSize,
    intermediateSize: json.intermediate_size === undefined || json.intermediate_size === null ? 4 * hiddenSize : configInt(json, 'intermediate_size', file, 'width'),
    numLayers: configInt(json, 'num_hidden_layers', file, 'layers'),
    vocabSize: configInt(json, 'vocab_size', file, 'vocab'),
    tieWordEmbeddings: Boolean(json.tie_word_embeddings ?? false),
    trainedContext: configInt(json, 'context_length', file, 'vocab', 1024),
    bosTokenId: typeof json.bos_token_id === 'number' ? json.bos_token_id : null,
    eosTokenIds: configIds(json.eos_token_id),
    torchDtype: configDtype(json),
    normEps: configPositive(json, 'layer_norm_epsilon', file, 1e-5),
    rescaleEvery: rescale,
  };
}

export function rwkvTensorShapes(config: RwkvConfig): { expected: Map<string, number[]>; optional: Map<string, number[]> } {
  const { hiddenSize: H, intermediateSize: F, vocabSize: V } = config;
  const expected = new Map<string, number[]>([['rwkv.embeddings.weight', [V, H]]]);
  for (let l = 0; l < config.numLayers; l++) {
    const p = `rwkv.blocks.${l}.`;
    for (const norm of l === 0 ? ['pre_ln', 'ln1', 'ln2'] : ['ln1', 'ln2']) {
      expected.set(`${p}${norm}.weight`, [H]);
      expected.set(`${p}${norm}.bias`, [H]);
    }
    expected.set(`${p}attention.time_decay`, [H]);
    expected.set(`${p}attention.time_first`, [H]);
    for (const mix of ['key', 'value', 'receptance']) expected.set(`${p}attention.time_mix_${mix}`, [1, 1, H]);
    for (const proj of ['key', 'value', 'receptance', 'output']) expected.set(`${p}attention.${proj}.weight`, [H, H]);
    for (const mix of ['key', 'receptance']) expected.set(`${p}feed_forward.time_mix_${mix}`, [1, 1, H]);
    expected.set(`${p}feed_forward.key.weight`, [F, H]);
    expected.set(`${p}feed_forward.receptance.weight`, [H, H]);
    expected.set(`${p}feed_forward.value.weight`, [H, F]);
  }
  expected.set('rwkv.ln_out.weight', [H]);
  expected.set('rwkv.ln_out.bias', [H]);
  const optional = new Map<string, number[]>();
  if (config.tieWordEmbeddings) optional.set('head.weight', [V, H]);
  else expected.set('head.weight', [V, H]);
  return { expected, optional };
}

interface Norm {
  weight: Float32Array;
  bias: Float32Array;
}

interface RwkvBlock {
  preNorm: Norm | null;
  norm1: Norm;
  norm2: Norm;
  /** w = -exp(time_decay) and u = time_first, per channel. */
  decay: Float32Array;
  first: Float32Array;
  attMixKey: Float32Array;
  attMixValue: Float32Array;
  attMixReceptance: Float32Array;
  attKey: Float32Array;
  attValue: Float32Array;
  attReceptance: Float32Array;
  /** Already divided by the block's rescale factor. */
  attOutput: Float32Array;
  ffnMixKey: Float32Array;
  ffnMixReceptance: Float32Array;
  ffnKey: Float32Array;
  ffnReceptance: Float32Array;
  /** Already divided by the block's rescale factor. */
  ffnValue: Float32Array;
}

/** x * mix + previous * (1 - mix) per token, where token 0's previous is `shift` (the last token of the call before). */
function tokenShift(x: Float32Array, T: number, H: number, shift: Float32Array, mix: Float32Array): Float32Array {
  const out = new Float32Array(T * H);
  for (let t = 0; t < T; t++) {
    for (let i = 0; i < H; i++) {
      const previous = t === 0 ? shift[i] : x[(t - 1) * H + i];
      out[t * H + i] = x[t * H + i] * mix[i] + previous * (1 - mix[i]);
    }
  }
  return out;
}

/** The state before any token, for `config` (also what a memory estimate sizes, without reading a weight). */
export function rwkvInitialState(config: RwkvConfig): RecurrentState {
  const H = config.hiddenSize;
  return new RecurrentState(
    Array.from({ length: config.numLayers }, () => [
      { name: 'ffnShift', shape: [H], data: new Float32Array(H) },
      { name: 'attShift', shape: [H], data: new Float32Array(H) },
      { name: 'num', shape: [H], data: new Float32Array(H) },
      { name: 'den', shape: [H], data: new Float32Array(H) },
      // The running maximum exponent starts far below any real one, as transformers' -1e30.
      { name: 'maxExponent', shape: [H], data: new Float32Array(H).fill(-1e30) },
    ]),
  );
}

export class RwkvForward implements RecurrentForward {
  private readonly embedding: Float32Array;
  private readonly blocks: RwkvBlock[];
  private readonly outputNorm: Norm;
  private readonly head: Float32Array;

  constructor(readonly config: RwkvConfig, weights: Map<string, Float32Array>) {
    const w = (name: string) => tensor(weights, name);
    const norm = (name: string): Norm => ({ weight: w(`${name}.weight`), bias: w(`${name}.bias`) });
    this.embedding = w('rwkv.embeddings.weight');
    this.blocks = Array.from({ length: config.numLayers }, (_, l) => {
      const p = `rwkv.blocks.${l}.`;
      const scale = config.rescaleEvery > 0 ? 2 ** Math.floor(l / config.rescaleEvery) : 1;
      return {
        preNorm: l === 0 ? norm(`${p}pre_ln`) : null,
        norm1: norm(`${p}ln1`),
        norm2: norm(`${p}ln2`),
        decay: w(`${p}attention.time_decay`).map((v) => -Math.exp(v)),
        first: w(`${p}attention.time_first`),
        attMixKey: w(`${p}attention.time_mix_key`),
        attMixValue: w(`${p}attention.time_mix_value`),
        attMixReceptance: w(`${p}attention.time_mix_receptance`),
        attKey: w(`${p}attention.key.weight`),
        attValue: w(`${p}attention.value.weight`),
        attReceptance: w(`${p}attention.receptance.weight`),
        attOutput: w(`${p}attention.output.weight`).map((v) => v / scale),
        ffnMixKey: w(`${p}feed_forward.time_mix_key`),
        ffnMixReceptance: w(`${p}feed_forward.time_mix_receptance`),
        ffnKey: w(`${p}feed_forward.key.weight`),
        ffnReceptance: w(`${p}feed_forward.receptance.weight`),
        ffnValue: w(`${p}feed_forward.value.weight`).map((v) => v / scale),
      };
    });
    this.outputNorm = norm('rwkv.ln_out');
    this.head = weights.get('head.weight') ?? this.embedding;
  }

  initialState(): RecurrentState {
    return rwkvInitialState(this.config);
  }

  forward(tokens: ArrayLike<number>, state: RecurrentState, logits: 'all' | 'last'): Float32Array {
    const { hiddenSize: H, intermediateSize: F, vocabSize: V, normEps, rescaleEvery } = this.config;
    const T = tokens.length;
    if (T === 0) throw new KvlensError('no tokens to run', 'rwkv');
    // h: [T, H] residual stream.
    let h: Float32Array = new Float32Array(T * H);
    for (let t = 0; t < T; t++) {
      const id = tokens[t];
      if (!Number.isInteger(id) || id < 0 || id >= V) throw new KvlensError(`token id ${id} is outside the vocabulary (size ${V})`, 'rwkv');
      h.set(this.embedding.subarray(id * H, (id + 1) * H), t * H);
    }
    this.blocks.forEach((block, l) => {
      if (block.preNorm) h = layerNorm(h, T, H, block.preNorm.weight, block.preNorm.bias, normEps);

      // Time-mix: x [T, H]; k, v, r [T, H].
      const x = layerNorm(h, T, H, block.norm1.weight, block.norm1.bias, normEps);
      const attShift = state.get(l, 'attShift');
      const k = linear(tokenShift(x, T, H, attShift, block.attMixKey), T, block.attKey, H, H);
      const v = linear(tokenShift(x, T, H, attShift, block.attMixValue), T, block.attValue, H, H);
      const r = linear(tokenShift(x, T, H, attShift, block.attMixReceptance), T, block.attReceptance, H, H);
      attShift.set(x.subarray((T - 1) * H));
      const num = state.get(l, 'num');
      const den = state.get(l, 'den');
      const p = state.get(l, 'maxExponent');
      const gated = new Float32Array(T * H);
      for (let t = 0; t < T; t++) {
        for (let i = 0; i < H; i++) {
          const kt = k[t * H + i];
          const vt = v[t * H + i];
          // Output: the past (num/den at exponent p) plus this token with the bonus u.
          const q = Math.max(p[i], kt + block.first[i]);
          const past = Math.exp(p[i] - q);
          const now = Math.exp(kt + block.first[i] - q);
          const wkv = (past * num[i] + now * vt) / (past * den[i] + now);
          gated[t * H + i] = sigmoid(r[t * H + i]) * wkv;
          // State: decay the past by e^w and take this token in, at the new maximum exponent.
          const next = Math.max(p[i] + block.decay[i], kt);
          const kept = Math.exp(p[i] + block.decay[i] - next);
          const added = Math.exp(kt - next);
          num[i] = kept * num[i] + added * vt;
          den[i] = kept * den[i] + added;
          p[i] = next;
        }
      }
      const attention = linear(gated, T, block.attOutput, H, H);
      for (let i = 0; i < h.length; i++) h[i] += attention[i];

      // Channel-mix: x2 [T, H]; key [T, F].
      const x2 = layerNorm(h, T, H, block.norm2.weight, block.norm2.bias, normEps);
      const ffnShift = state.get(l, 'ffnShift');
      const key = linear(tokenShift(x2, T, H, ffnShift, block.ffnMixKey), T, block.ffnKey, F, H);
      for (let i = 0; i < key.length; i++) key[i] = key[i] > 0 ? key[i] * key[i] : 0;
      const value = linear(key, T, block.ffnValue, H, F);
      const receptance = linear(tokenShift(x2, T, H, ffnShift, block.ffnMixReceptance), T, block.ffnReceptance, H, H);
      ffnShift.set(x2.subarray((T - 1) * H));
      for (let i = 0; i < h.length; i++) h[i] += sigmoid(receptance[i]) * value[i];

      if (rescaleEvery > 0 && (l + 1) % rescaleEvery === 0) for (let i = 0; i < h.length; i++) h[i] /= 2;
    });
    state.tokensSeen += T;
    const rows = pickRows(h, T, H, logits);
    const normed = layerNorm(rows.data, rows.rows, H, this.outputNorm.weight, this.outputNorm.bias, OUTPUT_NORM_EPS);
    return linear(normed, rows.rows, this.head, V, H);
  }
}

/** An RwkvForCausalLM folder's config and tensor table, before any weight is read. */
export function rwkvCheckpoint(_dir: string, json: Json, file: string): RecurrentCheckpoint {
  const config = parseRwkvConfig(json, file);
  return { config, ...rwkvTensorShapes(config), initialState: () => rwkvInitialState(config), create: (tensors) => new RwkvForward(config, tensors) };
}

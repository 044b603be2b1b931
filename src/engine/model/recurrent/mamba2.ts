// Mamba-2 (Mamba2ForCausalLM, Dao & Gu 2024, "Transformers are SSMs: Generalized Models and Efficient Algorithms
// Through Structured State Space Duality") as transformers' modeling_mamba2 computes it, on plain typed arrays.
//
// Per layer, for each token (H hidden, I = expand * H inner = heads * P, G groups of B/C, N state size, K conv kernel):
//   x_in       = RMSNorm(h)                                      [H]
//   z, xBC, dt = in_proj(x_in)                                   [I], [I + 2GN], [heads]
//   x, B, C    = silu(conv1d(xBC over the last K tokens))        [I], [G, N], [G, N]   (depthwise, causal)
//   delta      = softplus(dt + dt_bias), clamped to time_step_limit        one per head
//   s[h]       = exp(delta[h] * A[h]) * s[h] + delta[h] * x[h] (outer) B[g]   [heads, P, N]  (A[h] = -exp(A_log[h]),
//                                                                         g = the group of head h)
//   y[h]       = s[h] . C[g] + D[h] * x[h]                       [heads, P]
//   h         += out_proj(RMSNorm(y * silu(z)))                  [H]   (the gated norm over all of I)
// then logits = lm_head(RMSNorm(h)). transformers' prefill evaluates the same recurrence with its chunked
// (state-space-duality) algorithm; this file runs the recurrence itself, one token at a time, which costs the
// same per token as decode. A layer carries the last K-1 conv inputs and s between tokens.
import { KvlensError } from '../../errors';
import { openSafetensorsCheckpoint } from '../safetensors';
import { configDtype, configIds, configInt, configPositive, tensor, type Json, type RecurrentCheckpoint } from './checkpoint';
import { linear, pickRows, rmsNorm, silu, softplus } from './math';
import { RecurrentState, type RecurrentConfig, type RecurrentForward } from './types';

export interface Mamba2Config extends RecurrentConfig {
  architecture: 'mamba2';
  numHeads: number;
  /** P: channels per head. */
  headDim: number;
  /** G: groups sharing one B and one C. */
  numGroups: number;
  stateSize: number;
  convKernel: number;
  useBias: boolean;
  useConvBias: boolean;
  normEps: number;
  /** [min, max] the time step is clamped to. */
  timeStepLimit: [number, number];
}

export function parseMamba2Config(json: Json, file: string): Mamba2Config {
  const hiddenSize = configInt(json, 'hidden_size', file, 'width');
  const expand = configInt(json, 'expand', file, 'width', 2);
  const numHeads = configInt(json, 'num_heads', file, 'width', 128);
  const headDim = configInt(json, 'head_dim', file, 'width', 64);
  const numGroups = configInt(json, 'n_groups', file, 'width', 8);
  if (expand * hiddenSize !== numHeads * headDim) {
    throw new KvlensError(`hidden_size * expand (${expand * hiddenSize}) must equal num_heads * head_dim (${numHeads * headDim})`, file);
  }
  if (numHeads % numGroups !== 0) throw new KvlensError(`"num_heads" (${numHeads}) must be a multiple of "n_groups" (${numGroups})`, file);
  if (json.hidden_act !== undefined && json.hidden_act !== 'silu') {
    throw new KvlensError(`hidden_act ${JSON.stringify(json.hidden_act)} is not supported for Mamba-2 (supported: silu)`, file);
  }
  const limit = json.time_step_limit ?? [0, null];
  // transformers writes an infinite bound as {"__float__": "Infinity"} (JSON has no infinity).
  const bound = (value: unknown, fallback: number): number => {
    if (value === null || value === undefined) return fallback;
    if (typeof value === 'object' && !Array.isArray(value)) return Number((value as Json).__float__);
    return typeof value === 'number' ? value : NaN;
  };
  const timeStepLimit: [number, number] = Array.isArray(limit) && limit.length === 2 ? [bound(limit[0], 0), bound(limit[1], Infinity)] : [NaN, NaN];
  if (!(timeStepLimit[0] >= 0) || !(timeStepLimit[1] > timeStepLimit[0])) {
    throw new KvlensError(`"time_step_limit" must be [min, max] with 0 <= min < max, found ${JSON.stringify(json.time_step_limit)}`, file);
  }
  return {
    architecture: 'mamba2',
    hfArchitecture: 'Mamba2ForCausalLM',
    hiddenSize,
    intermediateSize: expand * hiddenSize,
    numLayers: configInt(json, 'num_hidden_layers', file, 'layers'),
    vocabSize: configInt(json, 'vocab_size', file, 'vocab'),
    tieWordEmbeddings: Boolean(json.tie_word_embeddings ?? false),
    trainedContext: null,
    bosTokenId: typeof json.bos_token_id === 'number' ? json.bos_token_id : null,
    eosTokenIds: configIds(json.eos_token_id),
    torchDtype: configDtype(json),
    numHeads,
    headDim,
    numGroups,
    stateSize: configInt(json, 'state_size', file, 'width', 128),
    convKernel: configInt(json, 'conv_kernel', file, 'width', 4),
    useBias: Boolean(json.use_bias ?? false),
    useConvBias: Boolean(json.use_conv_bias ?? true),
    normEps: configPositive(json, 'layer_norm_epsilon', file, 1e-5),
    timeStepLimit,
  };
}

/** Channels the conv runs over: x, then every group's B, then every group's C. */
function convDim(config: Mamba2Config): number {
  return config.intermediateSize + 2 * config.numGroups * config.stateSize;
}

export function mamba2TensorShapes(config: Mamba2Config, embeddingName: string): { expected: Map<string, number[]>; optional: Map<string, number[]> } {
  const { hiddenSize: H, intermediateSize: I, numHeads, convKernel: K, vocabSize: V } = config;
  const conv = convDim(config);
  const expected = new Map<string, number[]>([[embeddingName, [V, H]]]);
  for (let l = 0; l < config.numLayers; l++) {
    const p = `backbone.layers.${l}.`;
    expected.set(`${p}norm.weight`, [H]);
    expected.set(`${p}mixer.in_proj.weight`, [I + conv + numHeads, H]);
    expected.set(`${p}mixer.conv1d.weight`, [conv, 1, K]);
    expected.set(`${p}mixer.dt_bias`, [numHeads]);
    expected.set(`${p}mixer.A_log`, [numHeads]);
    expected.set(`${p}mixer.D`, [numHeads]);
    expected.set(`${p}mixer.norm.weight`, [I]);
    expected.set(`${p}mixer.out_proj.weight`, [H, I]);
    if (config.useConvBias) expected.set(`${p}mixer.conv1d.bias`, [conv]);
    if (config.useBias) {
      expected.set(`${p}mixer.in_proj.bias`, [I + conv + numHeads]);
      expected.set(`${p}mixer.out_proj.bias`, [H]);
    }
  }
  expected.set('backbone.norm_f.weight', [H]);
  const optional = new Map<string, number[]>();
  if (config.tieWordEmbeddings) optional.set('lm_head.weight', [V, H]);
  else expected.set('lm_head.weight', [V, H]);
  return { expected, optional };
}

interface Mamba2Layer {
  norm: Float32Array;
  inProj: Float32Array;
  inProjBias: Float32Array | null;
  /** [convDim, K], oldest input first. */
  conv: Float32Array;
  convBias: Float32Array | null;
  dtBias: Float32Array;
  /** A = -exp(A_log), one per head. */
  a: Float32Array;
  d: Float32Array;
  gatedNorm: Float32Array;
  outProj: Float32Array;
  outProjBias: Float32Array | null;
}

/** The state before any token, for `config` (also what a memory estimate sizes, without reading a weight). */
export function mamba2InitialState(config: Mamba2Config): RecurrentState {
  const { numHeads, headDim: P, stateSize: N, convKernel: K } = config;
  const conv = convDim(config);
  return new RecurrentState(
    Array.from({ length: config.numLayers }, () => [
      { name: 'conv', shape: [K - 1, conv], data: new Float32Array((K - 1) * conv) },
      { name: 'ssm', shape: [numHeads, P, N], data: new Float32Array(numHeads * P * N) },
    ]),
  );
}

export class Mamba2Forward implements RecurrentForward {
  private readonly embedding: Float32Array;
  private readonly layers: Mamba2Layer[];
  private readonly finalNorm: Float32Array;
  private readonly head: Float32Array;

  constructor(readonly config: Mamba2Config, weights: Map<string, Float32Array>, embeddingName: string) {
    this.embedding = tensor(weights, embeddingName);
    this.layers = Array.from({ length: config.numLayers }, (_, l) => {
      const p = `backbone.layers.${l}.`;
      return {
        norm: tensor(weights, `${p}norm.weight`),
        inProj: tensor(weights, `${p}mixer.in_proj.weight`),
        inProjBias: weights.get(`${p}mixer.in_proj.bias`) ?? null,
        conv: tensor(weights, `${p}mixer.conv1d.weight`),
        convBias: weights.get(`${p}mixer.conv1d.bias`) ?? null,
        dtBias: tensor(weights, `${p}mixer.dt_bias`),
        a: tensor(weights, `${p}mixer.A_log`).map((v) => -Math.exp(v)),
        d: tensor(weights, `${p}mixer.D`),
        gatedNorm: tensor(weights, `${p}mixer.norm.weight`),
        outProj: tensor(weights, `${p}mixer.out_proj.weight`),
        outProjBias: weights.get(`${p}mixer.out_proj.bias`) ?? null,
      };
    });
    this.finalNorm = tensor(weights, 'backbone.norm_f.weight');
    this.head = weights.get('lm_head.weight') ?? this.embedding;
  }

  initialState(): RecurrentState {
    return mamba2InitialState(this.config);
  }

  forward(tokens: ArrayLike<number>, state: RecurrentState, logits: 'all' | 'last'): Float32Array {
    const { hiddenSize: H, vocabSize: V, normEps } = this.config;
    const T = tokens.length;
    if (T === 0) throw new KvlensError('no tokens to run', 'mamba2');
    const h = new Float32Array(T * H);
    for (let t = 0; t < T; t++) {
      const id = tokens[t];
      if (!Number.isInteger(id) || id < 0 || id >= V) throw new KvlensError(`token id ${id} is outside the vocabulary (size ${V})`, 'mamba2');
      h.set(this.embedding.subarray(id * H, (id + 1) * H), t * H);
    }
    this.layers.forEach((layer, l) => {
      const mixed = this.mixer(layer, rmsNorm(h, T, H, layer.norm, normEps), T, state.get(l, 'conv'), state.get(l, 'ssm'));
      for (let i = 0; i < h.length; i++) h[i] += mixed[i];
    });
    state.tokensSeen += T;
    const rows = pickRows(h, T, H, logits);
    return linear(rmsNorm(rows.data, rows.rows, H, this.finalNorm, normEps), rows.rows, this.head, V, H);
  }

  private mixer(layer: Mamba2Layer, x: Float32Array, T: number, convState: Float32Array, ssm: Float32Array): Float32Array {
    const { hiddenSize: H, intermediateSize: I, numHeads, headDim: P, numGroups: G, stateSize: N, convKernel: K, normEps } = this.config;
    const conv = convDim(this.config);
    const width = I + conv + numHeads;
    const headsPerGroup = numHeads / G;
    const [minStep, maxStep] = this.config.timeStepLimit;
    // proj: [T, width] = (z [I], xBC [conv], dt [heads]) per token.
    const proj = linear(x, T, layer.inProj, width, H, layer.inProjBias);
    // gated: [T, I] = y * silu(z), normed below.
    const gated = new Float32Array(T * I);
    const xbc = new Float32Array(conv);
    for (let t = 0; t < T; t++) {
      const row = t * width;
      // Causal depthwise conv over the last K inputs, then silu: xbc = (x [I], B [G, N], C [G, N]).
      for (let c = 0; c < conv; c++) {
        let sum = layer.convBias ? layer.convBias[c] : 0;
        for (let k = 0; k < K - 1; k++) sum += layer.conv[c * K + k] * convState[k * conv + c];
        sum += layer.conv[c * K + K - 1] * proj[row + I + c];
        xbc[c] = silu(sum);
      }
      convState.copyWithin(0, conv, (K - 1) * conv);
      convState.set(proj.subarray(row + I, row + I + conv), (K - 2) * conv);

      // The scan, head by head: each head reads its group's B and C.
      for (let head = 0; head < numHeads; head++) {
        const group = Math.floor(head / headsPerGroup);
        const b = I + group * N;
        const c = I + G * N + group * N;
        const delta = Math.min(maxStep, Math.max(minStep, softplus(proj[row + I + conv + head] + layer.dtBias[head])));
        const decay = Math.exp(delta * layer.a[head]);
        for (let p = 0; p < P; p++) {
          const channel = head * P + p;
          const xp = xbc[channel];
          const s = ssm.subarray(channel * N, (channel + 1) * N);
          let y = 0;
          for (let n = 0; n < N; n++) {
            s[n] = decay * s[n] + delta * xbc[b + n] * xp;
            y += s[n] * xbc[c + n];
          }
          gated[t * I + channel] = (y + layer.d[head] * xp) * silu(proj[row + channel]);
        }
      }
    }
    return linear(rmsNorm(gated, T, I, layer.gatedNorm, normEps), T, layer.outProj, H, I, layer.outProjBias);
  }
}

/** A Mamba2ForCausalLM folder's config and tensor table, before any weight is read. */
export function mamba2Checkpoint(dir: string, json: Json, file: string): RecurrentCheckpoint {
  const config = parseMamba2Config(json, file);
  const embeddingName = openSafetensorsCheckpoint(dir).tensorFile.has('backbone.embedding.weight') ? 'backbone.embedding.weight' : 'backbone.embeddings.weight';
  return {
    config,
    ...mamba2TensorShapes(config, embeddingName),
    initialState: () => mamba2InitialState(config),
    create: (tensors) => new Mamba2Forward(config, tensors, embeddingName),
  };
}

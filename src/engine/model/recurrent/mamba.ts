// Mamba (MambaForCausalLM, Gu & Dao 2023, "Mamba: Linear-Time Sequence Modeling with Selective State Spaces")
// as transformers' modeling_mamba computes it, on plain typed arrays, readable top to bottom.
//
// Per layer, for each token (H hidden, I = expand * H inner, N state size, R time-step rank, K conv kernel):
//   x_in      = RMSNorm(h)                                  [H]
//   x, z      = in_proj(x_in)                               [I], [I]   (z gates the output)
//   u         = silu(conv1d(x over the last K tokens))      [I]        (depthwise, causal)
//   dt, B, C  = x_proj(u)                                   [R], [N], [N]
//   delta     = softplus(dt_proj(dt))                       [I]
//   s         = exp(delta * A) * s + delta * B * u          [I, N]     (A = -exp(A_log), the selective scan)
//   y         = (s . C + D * u) * silu(z)                   [I]
//   h        += out_proj(y)                                 [H]
// then logits = lm_head(RMSNorm(h)). Between tokens a layer carries the last K-1 conv inputs and s: a state
// whose size is fixed by the config, whatever the context.
import { KvlensError } from '../../errors';
import { configDtype, configIds, configInt, configPositive, tensor, type Json, type RecurrentCheckpoint } from './checkpoint';
import { openSafetensorsCheckpoint } from '../safetensors';
import { linear, pickRows, rmsNorm, silu, softplus } from './math';
import { RecurrentState, type RecurrentConfig, type RecurrentForward } from './types';

export interface MambaConfig extends RecurrentConfig {
  architecture: 'mamba';
  /** N: size of each channel's state. */
  stateSize: number;
  /** K: width of the causal depthwise convolution. */
  convKernel: number;
  /** R: rank of the time-step projection. */
  timeStepRank: number;
  /** in_proj / out_proj carry biases. */
  useBias: boolean;
  useConvBias: boolean;
  normEps: number;
}

export function parseMambaConfig(json: Json, file: string): MambaConfig {
  const hiddenSize = configInt(json, 'hidden_size', file, 'width');
  const expand = configInt(json, 'expand', file, 'width', 2);
  const intermediateSize = json.intermediate_size === undefined ? expand * hiddenSize : configInt(json, 'intermediate_size', file, 'width');
  const rank = json.time_step_rank === undefined || json.time_step_rank === 'auto' ? Math.ceil(hiddenSize / 16) : configInt(json, 'time_step_rank', file, 'width');
  if (json.hidden_act !== undefined && json.hidden_act !== 'silu') {
    throw new KvlensError(`hidden_act ${JSON.stringify(json.hidden_act)} is not supported for Mamba (supported: silu)`, file);
  }
  return {
    architecture: 'mamba',
    hfArchitecture: 'MambaForCausalLM',
    hiddenSize,
    intermediateSize,
    numLayers: configInt(json, 'num_hidden_layers', file, 'layers'),
    vocabSize: configInt(json, 'vocab_size', file, 'vocab'),
    tieWordEmbeddings: json.tie_word_embeddings === undefined ? true : Boolean(json.tie_word_embeddings),
    trainedContext: null,
    bosTokenId: typeof json.bos_token_id === 'number' ? json.bos_token_id : null,
    eosTokenIds: configIds(json.eos_token_id),
    torchDtype: configDtype(json),
    stateSize: configInt(json, 'state_size', file, 'width', 16),
    convKernel: configInt(json, 'conv_kernel', file, 'width', 4),
    timeStepRank: rank,
    useBias: Boolean(json.use_bias ?? false),
    useConvBias: Boolean(json.use_conv_bias ?? true),
    normEps: configPositive(json, 'layer_norm_epsilon', file, 1e-5),
  };
}

/** The tensors transformers' MambaForCausalLM saves for `config`, with their shapes. */
export function mambaTensorShapes(config: MambaConfig, embeddingName: string): { expected: Map<string, number[]>; optional: Map<string, number[]> } {
  const { hiddenSize: H, intermediateSize: I, stateSize: N, timeStepRank: R, convKernel: K, vocabSize: V } = config;
  const expected = new Map<string, number[]>([[embeddingName, [V, H]]]);
  for (let l = 0; l < config.numLayers; l++) {
    const p = `backbone.layers.${l}.`;
    expected.set(`${p}norm.weight`, [H]);
    expected.set(`${p}mixer.in_proj.weight`, [2 * I, H]);
    expected.set(`${p}mixer.conv1d.weight`, [I, 1, K]);
    expected.set(`${p}mixer.x_proj.weight`, [R + 2 * N, I]);
    expected.set(`${p}mixer.dt_proj.weight`, [I, R]);
    expected.set(`${p}mixer.dt_proj.bias`, [I]);
    expected.set(`${p}mixer.A_log`, [I, N]);
    expected.set(`${p}mixer.D`, [I]);
    expected.set(`${p}mixer.out_proj.weight`, [H, I]);
    if (config.useConvBias) expected.set(`${p}mixer.conv1d.bias`, [I]);
    if (config.useBias) {
      expected.set(`${p}mixer.in_proj.bias`, [2 * I]);
      expected.set(`${p}mixer.out_proj.bias`, [H]);
    }
  }
  expected.set('backbone.norm_f.weight', [H]);
  const optional = new Map<string, number[]>();
  if (config.tieWordEmbeddings) optional.set('lm_head.weight', [V, H]);
  else expected.set('lm_head.weight', [V, H]);
  return { expected, optional };
}

interface MambaLayer {
  norm: Float32Array;
  inProj: Float32Array;
  inProjBias: Float32Array | null;
  /** [I, K]: conv weight of channel i for the input k steps before the newest, oldest first. */
  conv: Float32Array;
  convBias: Float32Array | null;
  xProj: Float32Array;
  dtProj: Float32Array;
  dtBias: Float32Array;
  /** [I, N]: A = -exp(A_log), precomputed. */
  a: Float32Array;
  d: Float32Array;
  outProj: Float32Array;
  outProjBias: Float32Array | null;
}

/** The state before any token, for `config` (also what a memory estimate sizes, without reading a weight). */
export function mambaInitialState(config: MambaConfig): RecurrentState {
  const { intermediateSize: I, stateSize: N, convKernel: K } = config;
  return new RecurrentState(
    Array.from({ length: config.numLayers }, () => [
      { name: 'conv', shape: [K - 1, I], data: new Float32Array((K - 1) * I) },
      { name: 'ssm', shape: [I, N], data: new Float32Array(I * N) },
    ]),
  );
}

export class MambaForward implements RecurrentForward {
  private readonly embedding: Float32Array;
  private readonly layers: MambaLayer[];
  private readonly finalNorm: Float32Array;
  private readonly head: Float32Array;

  constructor(readonly config: MambaConfig, weights: Map<string, Float32Array>, embeddingName: string) {
    this.embedding = tensor(weights, embeddingName);
    this.layers = Array.from({ length: config.numLayers }, (_, l) => {
      const p = `backbone.layers.${l}.`;
      const aLog = tensor(weights, `${p}mixer.A_log`);
      return {
        norm: tensor(weights, `${p}norm.weight`),
        inProj: tensor(weights, `${p}mixer.in_proj.weight`),
        inProjBias: weights.get(`${p}mixer.in_proj.bias`) ?? null,
        conv: tensor(weights, `${p}mixer.conv1d.weight`),
        convBias: weights.get(`${p}mixer.conv1d.bias`) ?? null,
        xProj: tensor(weights, `${p}mixer.x_proj.weight`),
        dtProj: tensor(weights, `${p}mixer.dt_proj.weight`),
        dtBias: tensor(weights, `${p}mixer.dt_proj.bias`),
        a: aLog.map((v) => -Math.exp(v)),
        d: tensor(weights, `${p}mixer.D`),
        outProj: tensor(weights, `${p}mixer.out_proj.weight`),
        outProjBias: weights.get(`${p}mixer.out_proj.bias`) ?? null,
      };
    });
    this.finalNorm = tensor(weights, 'backbone.norm_f.weight');
    // transformers ties lm_head to the embedding unless the checkpoint says otherwise.
    this.head = weights.get('lm_head.weight') ?? this.embedding;
  }

  initialState(): RecurrentState {
    return mambaInitialState(this.config);
  }

  forward(tokens: ArrayLike<number>, state: RecurrentState, logits: 'all' | 'last'): Float32Array {
    const { hiddenSize: H, vocabSize: V, normEps } = this.config;
    const T = tokens.length;
    if (T === 0) throw new KvlensError('no tokens to run', 'mamba');
    // h: [T, H] residual stream.
    const h = new Float32Array(T * H);
    for (let t = 0; t < T; t++) {
      const id = tokens[t];
      if (!Number.isInteger(id) || id < 0 || id >= V) throw new KvlensError(`token id ${id} is outside the vocabulary (size ${V})`, 'mamba');
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

  /** One layer's mixer over T tokens ([T, H] in and out), advancing its conv window and scan state in place. */
  private mixer(layer: MambaLayer, x: Float32Array, T: number, convState: Float32Array, ssm: Float32Array): Float32Array {
    const { hiddenSize: H, intermediateSize: I, stateSize: N, timeStepRank: R, convKernel: K } = this.config;
    // xz: [T, 2I], x in columns 0..I-1, the gate z in I..2I-1.
    const xz = linear(x, T, layer.inProj, 2 * I, H, layer.inProjBias);

    // Causal depthwise conv then silu. window: [K-1, I] the previous inputs, oldest first.
    const u = new Float32Array(T * I);
    for (let t = 0; t < T; t++) {
      for (let i = 0; i < I; i++) {
        const current = xz[t * 2 * I + i];
        let sum = layer.convBias ? layer.convBias[i] : 0;
        for (let k = 0; k < K - 1; k++) sum += layer.conv[i * K + k] * convState[k * I + i];
        sum += layer.conv[i * K + K - 1] * current;
        u[t * I + i] = silu(sum);
      }
      // Shift the window by one token: drop the oldest, append this token's input.
      convState.copyWithin(0, I, (K - 1) * I);
      for (let i = 0; i < I; i++) convState[(K - 2) * I + i] = xz[t * 2 * I + i];
    }

    // dbc: [T, R + 2N] = (dt, B, C) per token; delta: [T, I].
    const dbc = linear(u, T, layer.xProj, R + 2 * N, I);
    const delta = new Float32Array(T * I);
    for (let t = 0; t < T; t++) {
      for (let i = 0; i < I; i++) {
        let sum = layer.dtBias[i];
        for (let r = 0; r < R; r++) sum += layer.dtProj[i * R + r] * dbc[t * (R + 2 * N) + r];
        delta[t * I + i] = softplus(sum);
      }
    }

    // The selective scan, one token at a time: y: [T, I].
    const y = new Float32Array(T * I);
    for (let t = 0; t < T; t++) {
      const b = t * (R + 2 * N) + R;
      const c = b + N;
      for (let i = 0; i < I; i++) {
        const dt = delta[t * I + i];
        const ui = u[t * I + i];
        let out = 0;
        for (let n = 0; n < N; n++) {
          const s = Math.exp(dt * layer.a[i * N + n]) * ssm[i * N + n] + dt * dbc[b + n] * ui;
          ssm[i * N + n] = s;
          out += s * dbc[c + n];
        }
        y[t * I + i] = (out + layer.d[i] * ui) * silu(xz[t * 2 * I + I + i]);
      }
    }
    return linear(y, T, layer.outProj, H, I, layer.outProjBias);
  }
}

/** Loads a MambaForCausalLM folder: config, validated tensors, the forward pass. */
/** A MambaForCausalLM folder's config and tensor table, before any weight is read. */
export function mambaCheckpoint(dir: string, json: Json, file: string): RecurrentCheckpoint {
  const config = parseMambaConfig(json, file);
  // The original state-spaces checkpoints name the table `embedding`; transformers renames it on load.
  const embeddingName = openSafetensorsCheckpoint(dir).tensorFile.has('backbone.embedding.weight') ? 'backbone.embedding.weight' : 'backbone.embeddings.weight';
  return {
    config,
    ...mambaTensorShapes(config, embeddingName),
    initialState: () => mambaInitialState(config),
    create: (tensors) => new MambaForward(config, tensors, embeddingName),
  };
}

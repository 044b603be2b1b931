import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { KvlensError } from '../errors';

export const SUPPORTED_ARCHITECTURES = ['LlamaForCausalLM', 'Qwen2ForCausalLM', 'Qwen3ForCausalLM', 'MistralForCausalLM', 'Gemma2ForCausalLM', 'Gemma3ForCausalLM'] as const;
/** The last four are recurrent or hybrid models, loaded by model/recurrent (this file parses attention models only). */
export type Architecture = 'llama' | 'qwen2' | 'qwen3' | 'mistral' | 'gemma2' | 'gemma3' | 'mamba' | 'mamba2' | 'rwkv' | 'recurrent_gemma';

/** config.json's architecture (or, without one, its model_type) -> the forward pass that runs it. */
const ATTENTION_ARCHITECTURES: Record<(typeof SUPPORTED_ARCHITECTURES)[number], { modelType: string; architecture: Architecture }> = {
  LlamaForCausalLM: { modelType: 'llama', architecture: 'llama' },
  Qwen2ForCausalLM: { modelType: 'qwen2', architecture: 'qwen2' },
  Qwen3ForCausalLM: { modelType: 'qwen3', architecture: 'qwen3' },
  MistralForCausalLM: { modelType: 'mistral', architecture: 'mistral' },
  Gemma2ForCausalLM: { modelType: 'gemma2', architecture: 'gemma2' },
  Gemma3ForCausalLM: { modelType: 'gemma3_text', architecture: 'gemma3' },
};

/** Gemma 2 and Gemma 3 share the layer layout: (1 + weight) norms around attention and MLP, GeGLU, scaled embeddings. */
export function isGemma(config: Pick<ModelConfig, 'architecture'>): boolean {
  return config.architecture === 'gemma2' || config.architecture === 'gemma3';
}

/** Llama 3.x frequency-dependent RoPE rescaling (transformers' `rope_type: "llama3"`). */
export interface Llama3RopeScaling {
  type: 'llama3';
  factor: number;
  lowFreqFactor: number;
  highFreqFactor: number;
  originalMaxPositionEmbeddings: number;
}

/** A Hugging Face config.json, normalised to the fields the engine reads. */
export interface ModelConfig {
  architecture: Architecture;
  hfArchitecture: string;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  vocabSize: number;
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling: Llama3RopeScaling | null;
  tieWordEmbeddings: boolean;
  /** q/k/v projections carry biases (always for Qwen2, optional for Llama and Qwen3). */
  attentionBias: boolean;
  /** Qwen3: every query and key head is RMS-normalised over head_dim (q_norm/k_norm weights) before RoPE. */
  qkNorm?: boolean;
  /**
   * Per layer, the sliding attention window W (a query at position p sees keys at positions p - W + 1 .. p,
   * as transformers' sliding-window mask), or null for full attention. Absent: every layer attends to everything.
   */
  layerWindows?: (number | null)[];
  /** What q·k is multiplied by before the softmax (absent: 1 / sqrt(headDim); Gemma 2: query_pre_attn_scalar^-0.5). */
  attentionScale?: number;
  /** Gemma 2's soft-capping: scores become cap · tanh(scores / cap) (attention before masking, logits at the end). */
  attentionLogitCap?: number;
  finalLogitCap?: number;
  /** Gemma 3: the RoPE base of its sliding-window layers (rope_local_base_freq); full layers use ropeTheta. */
  slidingRopeTheta?: number;
  /** Gemma 3's linear RoPE scaling on its full layers: their inverse frequencies divided by this factor. */
  ropeLinearFactor?: number;
  maxPositionEmbeddings: number;
  bosTokenId: number | null;
  eosTokenIds: number[];
  /** The dtype the checkpoint declares (informational; tensors carry their own). */
  torchDtype: string | null;
}

type Json = Record<string, unknown>;

/**
 * Upper bounds on a config's sizes, well above any released llama or qwen2 model (Llama 3.1 405B: 126 layers,
 * hidden 16384, feed-forward 53248; vocabularies reach 262k): every loop and table sized by them stays small,
 * so a corrupt or hostile config is refused before anything is allocated. The weights then bound them exactly.
 */
export const CONFIG_LIMITS = {
  numLayers: 1024,
  hiddenSize: 1 << 17,
  intermediateSize: 1 << 20,
  numHeads: 1 << 12,
  numKvHeads: 1 << 12,
  headDim: 1 << 12,
  vocabSize: 1 << 22,
  maxPositionEmbeddings: 1 << 24,
} as const;

type BoundedKey = keyof typeof CONFIG_LIMITS;

/** How a config format names each checked value, for the error message. */
export type ConfigKeyNames = Record<BoundedKey | 'rmsNormEps' | 'ropeTheta', string>;

export const HF_CONFIG_KEYS: ConfigKeyNames = {
  numLayers: 'num_hidden_layers',
  hiddenSize: 'hidden_size',
  intermediateSize: 'intermediate_size',
  numHeads: 'num_attention_heads',
  numKvHeads: 'num_key_value_heads',
  headDim: 'head_dim',
  vocabSize: 'vocab_size',
  maxPositionEmbeddings: 'max_position_embeddings',
  rmsNormEps: 'rms_norm_eps',
  ropeTheta: 'rope_theta',
};

/**
 * Refuses sizes beyond CONFIG_LIMITS and the values that make every logit NaN (a non-positive norm epsilon
 * or RoPE base), naming the file and the key as that file spells it.
 */
export function checkConfigValues(config: ModelConfig, file: string, keys: ConfigKeyNames): ModelConfig {
  for (const key of Object.keys(CONFIG_LIMITS) as BoundedKey[]) {
    const value = config[key];
    if (!Number.isInteger(value) || value < 1) throw new KvlensError(`"${keys[key]}" must be a positive integer, found ${value}`, file);
    if (value > CONFIG_LIMITS[key]) throw new KvlensError(`"${keys[key]}" is ${value}, more than any supported model has (at most ${CONFIG_LIMITS[key]})`, file);
  }
  if (!(config.rmsNormEps > 0) || !Number.isFinite(config.rmsNormEps)) {
    throw new KvlensError(`"${keys.rmsNormEps}" must be a positive number, found ${config.rmsNormEps} (RMS norm would divide by zero or take the root of a negative)`, file);
  }
  if (!(config.ropeTheta > 0) || !Number.isFinite(config.ropeTheta)) {
    throw new KvlensError(`"${keys.ropeTheta}" must be a positive number, found ${config.ropeTheta} (RoPE frequencies would be NaN)`, file);
  }
  const scaling = config.ropeScaling;
  if (scaling) {
    const { factor, lowFreqFactor: low, highFreqFactor: high, originalMaxPositionEmbeddings: original } = scaling;
    if (!(factor > 0) || !(low > 0) || !(high > low) || !(original > 0) || ![factor, low, high, original].every(Number.isFinite)) {
      throw new KvlensError(
        `llama3 rope scaling needs factor > 0, 0 < low_freq_factor < high_freq_factor and original_max_position_embeddings > 0, found ${factor}, ${low}, ${high}, ${original}`,
        file,
      );
    }
  }
  return config;
}

function requireInt(raw: Json, key: string, file: string, min = 1): number {
  const value = raw[key];
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
    throw new KvlensError(`"${key}" must be an integer >= ${min}, found ${JSON.stringify(value)}`, file);
  }
  return value;
}

function optionalNumber(raw: Json, key: string, fallback: number, file: string): number {
  const value = raw[key];
  if (value === undefined || value === null) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new KvlensError(`"${key}" must be a number, found ${JSON.stringify(value)}`, file);
  }
  return value;
}

function idList(value: unknown): number[] {
  if (typeof value === 'number') return [value];
  if (Array.isArray(value)) return value.filter((v): v is number => typeof v === 'number');
  return [];
}

// transformers >= 5 writes `rope_parameters` (holding rope_theta too) instead of `rope_scaling` + `rope_theta`.
function ropeParameters(raw: Json): Json | null {
  const params = raw.rope_parameters;
  return typeof params === 'object' && params !== null && !Array.isArray(params) ? (params as Json) : null;
}

function parseRopeScaling(raw: Json, file: string): Llama3RopeScaling | null {
  const scaling = (raw.rope_scaling ?? ropeParameters(raw)) as Json | null;
  if (scaling === null) return null;
  const type = scaling.rope_type ?? scaling.type;
  // rope_parameters without a rope_type only carries rope_theta: plain RoPE.
  if (type === 'default' || (type === undefined && raw.rope_scaling == null)) return null;
  if (type !== 'llama3') {
    throw new KvlensError(`rope_scaling type ${JSON.stringify(type)} is not supported (supported: llama3, default)`, file);
  }
  return {
    type: 'llama3',
    factor: optionalNumber(scaling, 'factor', 8, file),
    lowFreqFactor: optionalNumber(scaling, 'low_freq_factor', 1, file),
    highFreqFactor: optionalNumber(scaling, 'high_freq_factor', 4, file),
    originalMaxPositionEmbeddings: optionalNumber(scaling, 'original_max_position_embeddings', 8192, file),
  };
}

/**
 * Which layers attend through a sliding window, as transformers decides it: Mistral windows every layer when
 * `sliding_window` is set; Qwen2/Qwen3 only with `use_sliding_window`, then the layers `layer_types` marks
 * "sliding_attention" (or, without it, those from `max_window_layers` on); Gemma 2 the layers `layer_types` marks, or
 * every other one from layer 0. Null when every layer is full.
 */
function parseLayerWindows(json: Json, architecture: Architecture, numLayers: number, file: string): (number | null)[] | null {
  if (architecture === 'llama') return null;
  if ((architecture === 'qwen2' || architecture === 'qwen3') && json.use_sliding_window !== true) return null;
  // transformers' configs default sliding_window to 4096 when the key is absent; null switches the window off.
  if (json.sliding_window === null) return null;
  const window = json.sliding_window === undefined ? 4096 : requireInt(json, 'sliding_window', file);
  if (architecture === 'mistral') return Array.from({ length: numLayers }, () => window);
  const types = json.layer_types;
  // Gemma 2 without layer_types alternates, starting with a sliding layer.
  if ((types === undefined || types === null) && architecture === 'gemma2') return Array.from({ length: numLayers }, (_, l) => (l % 2 === 0 ? window : null));
  // Gemma 3 without layer_types: every sliding_window_pattern-th layer (6: five local, one global) is full.
  if ((types === undefined || types === null) && architecture === 'gemma3') {
    const pattern = optionalNumber(json, 'sliding_window_pattern', optionalNumber(json, '_sliding_window_pattern', 6, file), file);
    return Array.from({ length: numLayers }, (_, l) => ((l + 1) % pattern !== 0 ? window : null));
  }
  if (types === undefined || types === null) {
    const first = optionalNumber(json, 'max_window_layers', numLayers, file);
    return Array.from({ length: numLayers }, (_, l) => (l >= first ? window : null));
  }
  if (!Array.isArray(types) || types.length !== numLayers || !types.every((t) => t === 'full_attention' || t === 'sliding_attention')) {
    throw new KvlensError(`"layer_types" must list "full_attention" or "sliding_attention" for each of the ${numLayers} layers, found ${JSON.stringify(types)}`, file);
  }
  return types.map((t) => (t === 'sliding_attention' ? window : null));
}

/** Gemma's attention scale and soft-caps (transformers' defaults where the config leaves them out: Gemma 3 has none). */
function gemmaScaling(json: Json, architecture: Architecture, file: string): Pick<ModelConfig, 'attentionScale' | 'attentionLogitCap' | 'finalLogitCap'> {
  if (json.use_bidirectional_attention === true) {
    throw new KvlensError('use_bidirectional_attention (an encoder variant) is not supported: kvlens runs causal decoders', file);
  }
  const scalar = optionalNumber(json, 'query_pre_attn_scalar', 256, file);
  if (!(scalar > 0)) throw new KvlensError(`"query_pre_attn_scalar" must be positive, found ${scalar}`, file);
  const cap = (key: string, fallback: number): number | undefined => {
    if (json[key] === null || (json[key] === undefined && architecture === 'gemma3')) return undefined;
    const value = optionalNumber(json, key, fallback, file);
    if (!(value > 0)) throw new KvlensError(`"${key}" must be positive or null, found ${value}`, file);
    return value;
  };
  const attentionLogitCap = cap('attn_logit_softcapping', 50);
  const finalLogitCap = cap('final_logit_softcapping', 30);
  return {
    attentionScale: scalar ** -0.5,
    ...(attentionLogitCap === undefined ? {} : { attentionLogitCap }),
    ...(finalLogitCap === undefined ? {} : { finalLogitCap }),
  };
}

/**
 * Gemma 3's two RoPE tables: rope_parameters per layer type (transformers >= 5), or rope_theta, rope_local_base_freq
 * and rope_scaling (older configs); only linear scaling of the full layers is supported.
 */
function gemma3Rope(json: Json, file: string): Pick<ModelConfig, 'ropeTheta' | 'slidingRopeTheta' | 'ropeLinearFactor'> {
  const params = ropeParameters(json);
  const asJson = (value: unknown): Json => (typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Json) : {});
  const full = { ...asJson(json.rope_scaling), ...asJson(params?.full_attention) };
  const sliding = asJson(params?.sliding_attention);
  for (const [kind, rope] of [['full_attention', full], ['sliding_attention', sliding]] as const) {
    const type = rope.rope_type ?? rope.type ?? 'default';
    if (type !== 'default' && !(type === 'linear' && kind === 'full_attention')) {
      throw new KvlensError(`Gemma 3 rope type ${JSON.stringify(type)} on ${kind} layers is not supported (supported: default, linear on full layers)`, file);
    }
  }
  const ropeTheta = optionalNumber(full, 'rope_theta', optionalNumber(json, 'rope_theta', 1_000_000, file), file);
  const slidingRopeTheta = optionalNumber(sliding, 'rope_theta', optionalNumber(json, 'rope_local_base_freq', 10_000, file), file);
  const factor = (full.rope_type ?? full.type) === 'linear' ? optionalNumber(full, 'factor', 1, file) : 1;
  if (!(slidingRopeTheta > 0) || !(factor > 0)) throw new KvlensError(`Gemma 3 rope needs a positive local base and factor, found ${slidingRopeTheta}, ${factor}`, file);
  return { ropeTheta, slidingRopeTheta, ...(factor === 1 ? {} : { ropeLinearFactor: factor }) };
}

export function parseConfig(raw: unknown, file: string): ModelConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new KvlensError('config.json must hold a JSON object', file);
  }
  const json = raw as Json;
  const architectures = Array.isArray(json.architectures) ? (json.architectures as unknown[]) : [];
  const hfArchitecture = architectures.find((a): a is string => typeof a === 'string') ?? String(json.model_type ?? 'unknown');
  const known = Object.entries(ATTENTION_ARCHITECTURES).find(
    ([name, entry]) => hfArchitecture === name || (architectures.length === 0 && json.model_type === entry.modelType),
  );
  if (!known) {
    throw new KvlensError(
      `unsupported architecture ${JSON.stringify(hfArchitecture)} (supported: ${SUPPORTED_ARCHITECTURES.join(', ')})`,
      file,
    );
  }
  const architecture = known[1].architecture;
  const hiddenSize = requireInt(json, 'hidden_size', file);
  const numHeads = requireInt(json, 'num_attention_heads', file);
  const numKvHeads = json.num_key_value_heads === undefined ? numHeads : requireInt(json, 'num_key_value_heads', file);
  if (numHeads % numKvHeads !== 0) {
    throw new KvlensError(`num_attention_heads (${numHeads}) must be a multiple of num_key_value_heads (${numKvHeads})`, file);
  }
  const headDim = json.head_dim === undefined || json.head_dim === null ? hiddenSize / numHeads : requireInt(json, 'head_dim', file);
  if (!Number.isInteger(headDim) || headDim % 2 !== 0) {
    throw new KvlensError(`head dimension ${headDim} must be an even integer`, file);
  }
  if (isGemma({ architecture })) {
    // Gemma's configs name the MLP activation hidden_activation (some also carry hidden_act): tanh-approximated GELU.
    for (const key of ['hidden_activation', 'hidden_act']) {
      if (json[key] !== undefined && json[key] !== null && json[key] !== 'gelu_pytorch_tanh') {
        throw new KvlensError(`${key} ${JSON.stringify(json[key])} is not supported for ${hfArchitecture} (supported: gelu_pytorch_tanh)`, file);
      }
    }
  } else if (json.hidden_act !== undefined && json.hidden_act !== 'silu') {
    throw new KvlensError(`hidden_act ${JSON.stringify(json.hidden_act)} is not supported (supported: silu)`, file);
  }
  const eos = idList(json.eos_token_id);
  const numLayers = requireInt(json, 'num_hidden_layers', file);
  const layerWindows = parseLayerWindows(json, architecture, numLayers, file);
  return checkConfigValues({
    architecture,
    hfArchitecture,
    hiddenSize,
    intermediateSize: requireInt(json, 'intermediate_size', file),
    numLayers,
    numHeads,
    numKvHeads,
    headDim,
    vocabSize: requireInt(json, 'vocab_size', file),
    rmsNormEps: optionalNumber(json, 'rms_norm_eps', 1e-6, file),
    ropeTheta: optionalNumber(json, 'rope_theta', optionalNumber(ropeParameters(json) ?? {}, 'rope_theta', 10000, file), file),
    // Gemma 3's rope_parameters hold one table per layer type (gemma3Rope below).
    ropeScaling: architecture === 'gemma3' ? null : parseRopeScaling(json, file),
    // transformers' Gemma2Config ties by default; the others untie by default.
    tieWordEmbeddings: Boolean(json.tie_word_embeddings ?? isGemma({ architecture })),
    // transformers' Mistral has no attention_bias option: its projections never carry biases.
    attentionBias: architecture === 'qwen2' ? true : architecture === 'mistral' ? false : Boolean(json.attention_bias),
    ...(architecture === 'qwen3' || architecture === 'gemma3' ? { qkNorm: true } : {}),
    ...(layerWindows ? { layerWindows } : {}),
    ...(isGemma({ architecture }) ? gemmaScaling(json, architecture, file) : {}),
    ...(architecture === 'gemma3' ? gemma3Rope(json, file) : {}),
    maxPositionEmbeddings: optionalNumber(json, 'max_position_embeddings', 4096, file),
    bosTokenId: typeof json.bos_token_id === 'number' ? json.bos_token_id : null,
    eosTokenIds: eos,
    torchDtype: typeof json.torch_dtype === 'string' ? json.torch_dtype : typeof json.dtype === 'string' ? json.dtype : null,
  }, file, HF_CONFIG_KEYS);
}

export function readConfig(modelDir: string): ModelConfig {
  const file = join(modelDir, 'config.json');
  if (!existsSync(file)) throw new KvlensError('missing config.json (a Hugging Face model folder needs config.json, model.safetensors and tokenizer.json)', file);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    throw new KvlensError(`not valid JSON (${(error as Error).message})`, file);
  }
  return parseConfig(raw, file);
}

/**
 * Refuses a context longer than the model's `max_position_embeddings` unless `allow`: positions past it
 * were never trained (or need rope scaling the config does not declare), so results there mislead.
 */
export function checkContextLength(config: ModelConfig, tokens: number, what: string, allow = false): void {
  if (allow || tokens <= config.maxPositionEmbeddings) return;
  throw new KvlensError(
    `${tokens} tokens exceed the model's max_position_embeddings (${config.maxPositionEmbeddings}): it was not trained on positions that far. ` +
      'Use shorter prompts or lengths, or pass --allow-long-context to run anyway',
    what,
  );
}

/** Which layers see the whole context and which a sliding window, e.g. "full: layer 0; sliding window 12: layers 1, 2". */
export function describeAttentionLayout(config: ModelConfig): string {
  // Recurrent models come through attentionFreeConfig (no heads): their state is described by model/recurrent.
  if (config.numHeads === 0) return 'no KV cache (a fixed-size recurrent state)';
  const windows = config.layerWindows ?? [];
  if (!windows.some((w) => w !== null)) return 'full attention in every layer';
  if (windows.every((w) => w === windows[0])) return `sliding window of ${windows[0]} tokens in every layer`;
  const groups = new Map<string, number[]>();
  windows.forEach((w, l) => {
    const label = w === null ? 'full' : `sliding window ${w}`;
    groups.set(label, [...(groups.get(label) ?? []), l]);
  });
  return [...groups].map(([label, layers]) => `${label}: layer${layers.length > 1 ? 's' : ''} ${layers.join(', ')}`).join('; ');
}

/** Bytes of K and V for one token across all layers at `bytesPerElement` (2 for the default fp16 cache). */
export function kvBytesPerToken(config: ModelConfig, bytesPerElement = 4): number {
  return 2 * config.numLayers * config.numKvHeads * config.headDim * bytesPerElement;
}

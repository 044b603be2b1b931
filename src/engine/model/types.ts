import type { GgmlBlockDtype } from './ggmlQuants';
import type { ModelConfig } from './config';
import type { LayerKV } from '../kv/cache';
import type { KvDtype } from '../kv/kv-dtype';

/** F32/F16/BF16 from safetensors or GGUF; ggml block formats only from GGUF (dequantized at load). */
export type StorageDtype = 'F32' | 'F16' | 'BF16' | GgmlBlockDtype;

/** A weight tensor, upcast to fp32 once at load; `sourceDtype` is what the file held. */
export interface Tensor {
  shape: number[];
  data: Float32Array;
  sourceDtype: StorageDtype;
}

/** Weights under their Hugging Face names, e.g. `model.layers.0.self_attn.q_proj.weight`. */
export type WeightMap = Map<string, Tensor>;

/** What is known about a model without holding its weights. */
export interface ModelSummary {
  dir: string;
  config: ModelConfig;
  /** Parameter count and bytes as stored on disk (before upcast). */
  parameterCount: number;
  weightBytesOnDisk: number;
  /** The storage type of most parameters. */
  dtype: StorageDtype;
  /** Every storage type present, with its share of the parameters, largest first. */
  dtypeShares?: DtypeShare[];
}

/** A model with every weight upcast to fp32 (the reference forward's input). */
export interface LoadedModel extends ModelSummary {
  weights: WeightMap;
}

export interface DtypeShare {
  dtype: StorageDtype;
  /** Fraction of the parameters stored in this type. */
  share: number;
}

/** What score-based compression methods need from a forward pass, requested per call. */
export interface AttentionRequest {
  /** Return the attention probabilities of the last `window` queries of this call (clipped to the call's length). */
  window?: number;
  /**
   * Return, per key, the attention of the last c queries of this call summed over those queries, for each c listed
   * (clipped to the call's length): what a method that only adds up its observation window's rows needs, at
   * [numHeads, keys] per count instead of the [numHeads, c, keys] rows `window` returns.
   */
  windowSums?: number[];
  /** Return, per key, the attention summed over every query of this call. */
  keySums?: boolean;
  /** Return the rotated queries of this call's tokens (for query-guided retrieval such as InfLLM). */
  queries?: boolean;
  /**
   * With `queries`, a prefill keeps the rotated queries of only the last `queryRows` prompt tokens (all of them when
   * absent): a method that reads the recent queries alone need not hold [n, heads, headDim] for a long prompt.
   */
  queryRows?: number;
}

/** The distinct window-sum counts of a request, each clipped to the `queries` a call or prompt has. */
export function windowSumCounts(request: AttentionRequest | undefined, queries: number): number[] {
  return [...new Set((request?.windowSums ?? []).map((c) => Math.min(c, queries)))];
}

/**
 * Attention statistics of one layer for one forward call. Keys are indexed as the past slots in
 * slot order (0..P-1) followed by this call's new tokens (P..P+q-1).
 */
export interface LayerAttention {
  /** [numHeads, w, P + q] probabilities of the last w queries, or null if not requested. */
  window: Float32Array | null;
  windowQueries: number;
  /**
   * Per requested count c (clipped to the call's length), [numHeads, P + q]: the probabilities of the last c queries
   * summed over them. Absent or null if not requested.
   */
  windowSums?: Map<number, Float32Array> | null;
  /** [numHeads, P + q] attention summed over this call's queries, or null if not requested. */
  keySums: Float32Array | null;
  /** [q, numHeads, headDim] rotated queries, or null if not requested. */
  queries: Float32Array | null;
}

export interface ForwardInput {
  /** New token ids, length q. */
  tokens: ArrayLike<number>;
  /** Absolute (original) RoPE positions of the new tokens, length q. Evicting past tokens never renumbers them. */
  positions: ArrayLike<number>;
  /** The cache each layer attends to besides the new tokens; not modified by the forward pass. */
  past: LayerKV[];
  /** Logits for every new token (parity checks) or only the last one (generation). Default: last. */
  logits?: 'all' | 'last';
  attention?: AttentionRequest;
}

export interface ForwardOutput {
  /** [rows, vocab] with rows = q ('all') or 1 ('last'). */
  logits: Float32Array;
  /** Per layer, the rotated keys of the new tokens: [q, numKvHeads, headDim] (token-major, like LayerKV). */
  newKeys: Float32Array[];
  /** Per layer, the values of the new tokens: [q, numKvHeads, headDim]. */
  newValues: Float32Array[];
  /** Per layer, present only when requested. */
  attention: LayerAttention[] | null;
}

/** One forward pass of a decoder; implemented by the ONNX runtime path and the plain-TypeScript reference. */
export interface DecoderForward {
  readonly config: ModelConfig;
  /** What prefill stores the cache in, and what this forward reads without converting (absent: fp32). */
  readonly kvDtype?: KvDtype;
  forward(input: ForwardInput): Promise<ForwardOutput>;
  dispose?(): Promise<void> | void;
}

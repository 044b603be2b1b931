// What one method file declares: its metadata for `kvlens methods`, its parameters, and the stage it contributes.
// Stages compose: prompt compression, then a token selection, then a quantized store for what was kept.
import type { ModelConfig } from '../model/config';
import type { AttentionRequest, LayerAttention } from '../model/types';
import type { DenseLayerCache } from './cache';
import type { CompressInput, Family, MethodCache, Phase, PromptCompressionContext } from './method';
import type { RowQuantizer } from './quant/row-codec';
import type { QuantScheme } from './quant/scheme';

export interface Paper {
  authors: string;
  year: number;
  title: string;
  arxiv: string;
}

export interface ParamSpec {
  name: string;
  /** null: unset unless given (e.g. `budget`, which replaces `ratio` when present). */
  default: number | null;
  min: number;
  max: number;
  minExclusive?: boolean;
  maxExclusive?: boolean;
  integer: boolean;
  /** When present, the only values allowed. */
  choices?: number[];
  /** When present, the value is written as one of these names (e.g. `k=q8_0`) and held as its index. */
  names?: readonly string[];
  /** Always written in the canonical spec, even at its default (the size or bit width a reader needs to see). */
  canonical?: boolean;
  description: string;
}

/** Resolved parameter values: defaults filled in, null for unset optional ones. */
export type Params = Readonly<Record<string, number | null>>;

/** How many tokens a selection keeps, so the engine can check it afterwards. */
export interface SizePromise {
  totalTokens: number;
  tokensPerHead: number | null;
  tokensPerLayer: number[] | null;
  /** Extra tokens per head the cache may hold during decode beyond its initial size, for caches that breathe (InfLLM). */
  decodeSlack?: number;
}

/** Per layer, per KV head, the prefill slots to keep. */
export type Selection = number[][][];

/** Keeps a selection's size while decoding (StreamingLLM, H2O, TOVA). One instance per layer. */
export interface LayerDecodeEviction {
  /**
   * Called after the step's token was appended at the last slot. `attention` indexes the slots the forward saw
   * followed by the new token, which is exactly the cache's slots now. Returns the slot to evict per head, or null.
   */
  afterStep(cache: DenseLayerCache, attention: LayerAttention | null): number[] | null;
}

export interface TokenSelector {
  needs(promptLength: number): AttentionRequest;
  size(promptLength: number, config: ModelConfig): SizePromise;
  select(input: CompressInput): Selection;
  /** Present when eviction continues during decode. */
  decode?: {
    needs: AttentionRequest | undefined;
    /** `kept[head]` are the selected prefill slots in ascending order, as the cache holds them after retaining. */
    start(layer: number, kept: number[][], input: CompressInput): LayerDecodeEviction;
  };
}

/** Methods that manage their own cache layout rather than a selection (InfLLM's block memory). */
export interface CustomCacheStage {
  needs(promptLength: number): AttentionRequest;
  decodeNeeds: AttentionRequest | undefined;
  size(promptLength: number, config: ModelConfig): SizePromise;
  compress(input: CompressInput): MethodCache;
}

export type Stage =
  | { kind: 'baseline' }
  | { kind: 'selector'; selector: TokenSelector }
  | { kind: 'custom'; custom: CustomCacheStage }
  | { kind: 'quantizer'; scheme: QuantScheme }
  /** A quantizer that stores each token's head rows in a server's own row format (llama.cpp's blocks, vLLM's fp8). */
  | { kind: 'row-quantizer'; quantizer: RowQuantizer }
  | {
      kind: 'prompt';
      compressPrompt(tokens: number[], context: PromptCompressionContext): Promise<number[]>;
    };

export interface MethodDefinition {
  name: string;
  family: Family;
  phases: Phase[];
  /** One line: what the method keeps or how it quantizes. */
  summary: string;
  params: ParamSpec[];
  paper: Paper | null;
  /** Quantizers that store every token on its own (no groups across tokens, no residual), so tokens can be evicted while decoding. */
  tokenwise?: boolean;
  /** Methods that keep their own cache layout (InfLLM's block memory) and so cannot hand their tokens to a quantizer. */
  ownLayout?: boolean;
  build(params: Params): Stage;
}

/** The `ratio`/`budget` pair shared by token-dropping methods (kvpress convention: ratio = fraction removed). */
export const SIZE_PARAMS: ParamSpec[] = [
  {
    name: 'ratio',
    default: 0.5,
    min: 0,
    max: 1,
    minExclusive: true,
    maxExclusive: true,
    integer: false,
    canonical: true,
    description: 'fraction of the prompt cache removed (ignored when budget is given)',
  },
  {
    name: 'budget',
    default: null,
    min: 1,
    max: 1_000_000,
    integer: true,
    description: 'absolute tokens kept per KV head (replaces ratio)',
  },
];

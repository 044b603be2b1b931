// The contract between the bench runner and every KV compression method.
// A method is built from a spec string; it says what attention statistics it needs, compresses a prefilled cache and keeps its promise while decoding.
//
// Runner loop, per prompt:
//   tokens = method.compressPrompt ? await method.compressPrompt(tokens, ctx) : tokens   (prompt compression only)
//   prefill once with mergeNeeds(...methods.map((m) => m.needs(tokens.length)))
//   cache = method.compress({ layers, stats, config })        // never modifies `layers`: reuse them for the next method
//   verifyCompression(method, cache, layers, config)           // throws KvlensError when the promise is not met
//   each step: out = forward({ tokens: [t], positions: [pos], past: cache.views(), attention: method.decodeNeeds })
//              cache.append(l, out.newKeys[l], out.newValues[l], [pos]) for every layer; cache.afterStep?.(out.attention, pos)
//   verifyDecode(method, cache, promptLength, steps, config)
import type { ModelConfig } from '../model/config';
import type { AttentionRequest, LayerAttention } from '../model/types';
import type { DenseLayerCache, LayerKV } from './cache';

export type Family = 'baseline' | 'quantization' | 'token-dropping' | 'prompt-compression';
export type Phase = 'before-prefill' | 'after-prefill' | 'decode';

export interface CompressInput {
  /** The prefill cache, one per layer. Methods never modify these: the runner may reuse them for the next method. */
  layers: DenseLayerCache[];
  /** Per layer, the prefill attention statistics (the union of every selected method's `needs`), or null if none were collected. */
  stats: LayerAttention[] | null;
  config: ModelConfig;
  /** Indices of the prompt tokens that begin a source line, ascending, when the runner knows them (ChunkKV's line-aligned chunks). */
  lineStarts?: readonly number[];
}

/** Bytes of a compressed cache by kind, summed over layers and computed from the byteLength of the arrays that hold them. */
export interface CacheBytes {
  /** Bit-packed quantized codes. */
  packed: number;
  /** Quantization scales. */
  scales: number;
  /** Quantization zero-points. */
  zeroPoints: number;
  /** Keys and values kept in fp32 (the whole cache for unquantized methods; KIVI's recent residual). */
  fullPrecision: number;
  /** Original positions of the tokens held, plus per-head validity masks. */
  positions: number;
  /** Offloaded token blocks that attention does not read every step (InfLLM's block memory). */
  blockStore: number;
  /** Block representatives used to pick which offloaded blocks to read (InfLLM). */
  blockIndex: number;
  /** Everything the cache holds. */
  held: number;
  /** What attention reads each decode step (held minus the offloaded blocks not selected). */
  active: number;
}

export const ZERO_BYTES: CacheBytes = {
  packed: 0,
  scales: 0,
  zeroPoints: 0,
  fullPrecision: 0,
  positions: 0,
  blockStore: 0,
  blockIndex: 0,
  held: 0,
  active: 0,
};

export function addBytes(a: CacheBytes, b: CacheBytes): CacheBytes {
  const sum = { ...ZERO_BYTES };
  for (const key of Object.keys(sum) as (keyof CacheBytes)[]) sum[key] = a[key] + b[key];
  return sum;
}

/**
 * A compressed cache during decode. Each step the runner passes `views()` to the forward pass, appends the new
 * keys/values of every layer, then calls `afterStep` with the step's attention statistics (requested with the
 * method's `decodeNeeds`), whose key indices are the slots of the views passed followed by the new token.
 */
export interface MethodCache {
  views(): LayerKV[];
  append(layer: number, keys: Float32Array, values: Float32Array, positions: ArrayLike<number>): void;
  afterStep?(attention: LayerAttention[] | null, position: number): void;
  /** [layer][kvHead] tokens attention sees (InfLLM: sinks + local window + selected blocks). */
  tokensPerHead(): number[][];
  bytes(): CacheBytes;
  /** Bits per quantized element of the packed codes, or null for unquantized caches. */
  readonly bits: number | null;
  /** Quantized elements the packed codes stand for (keys and values, all layers and heads). */
  quantizedElements(): number;
}

/** What a method promises about the cache it produces from a prompt of `promptLength` tokens. */
export interface CompressionPromise {
  /** Tokens summed over layers and KV heads right after compression. */
  totalTokens: number;
  /** Tokens every KV head of every layer holds, when the method keeps the same number everywhere. */
  tokensPerHead: number | null;
  /** Per layer, tokens summed over its KV heads, when the method fixes them. */
  tokensPerLayer: number[] | null;
  /** Declared bits per quantized element, or null for unquantized methods. */
  bits: number | null;
  /**
   * 'grows': each decode step adds one token per head; 'fixed': decode keeps the size constant; 'bounded': the size stays
   * between the initial one and `decodeSlack` more (InfLLM's local window fills up a block before offloading it).
   */
  decode: 'fixed' | 'grows' | 'bounded';
  decodeSlack: number;
  /** False only for `full`, which says so instead of claiming compression. */
  compresses: boolean;
  /** The cache must be smaller than a full cache of the prefilled prompt (false for `full` and prompt-only compression). */
  cacheShrinks: boolean;
}

export interface PromptCompressionContext {
  /** −log p of each token under the model (the first token gets whatever the runner assigns, typically 0). */
  selfInformation(tokens: number[]): Promise<Float32Array>;
  /** Tokens at the end (the question or query line) that must be kept. */
  protectedSuffix: number;
  /** Indices of the tokens that begin a source line, ascending (LLMLingua's coarse units); absent: tokens are the units. */
  lineStarts?: readonly number[];
  /** A fresh scorer over a growing compressed prefix (LLMLingua's iterative compression); absent: unconditional scores. */
  conditionalScorer?(): ConditionalScorer;
}

/** Scores tokens given a prefix that grows as compression decides what to keep. */
export interface ConditionalScorer {
  /** −log p of each of `tokens` given the committed tokens and the tokens before it in `tokens`; commits nothing. */
  score(tokens: number[]): Promise<Float32Array>;
  /** Appends `tokens` to the prefix later scores are conditioned on. */
  commit(tokens: number[]): Promise<void>;
}

export interface KvMethod {
  /** Canonical spec, e.g. `snapkv:ratio=0.5+kivi:bits=4`. */
  readonly spec: string;
  /** Families of the stages, joined with '+'. */
  readonly family: string;
  /** Attention statistics to collect while prefilling a prompt of this many tokens. */
  needs(promptLength: number): AttentionRequest;
  /** Attention statistics every decode forward must return, or undefined if none. */
  readonly decodeNeeds: AttentionRequest | undefined;
  /** Present for prompt-compression methods: returns the shortened prompt to prefill instead. */
  compressPrompt?(tokens: number[], context: PromptCompressionContext): Promise<number[]>;
  compress(input: CompressInput): MethodCache;
  promise(promptLength: number, config: ModelConfig): CompressionPromise;
}

/** Merges attention requests (the runner collects the union for all methods of a run). */
export function mergeNeeds(...requests: (AttentionRequest | undefined)[]): AttentionRequest {
  const merged: AttentionRequest = {};
  let everyQuery = false;
  for (const request of requests) {
    if (!request) continue;
    if (request.window) merged.window = Math.max(merged.window ?? 0, request.window);
    if (request.windowSums?.length) merged.windowSums = [...new Set([...(merged.windowSums ?? []), ...request.windowSums])].sort((a, b) => a - b);
    if (request.keySums) merged.keySums = true;
    if (request.queries) {
      merged.queries = true;
      // One request for every prompt query outweighs any number of requests for the recent ones.
      if (request.queryRows === undefined) everyQuery = true;
      else merged.queryRows = Math.max(merged.queryRows ?? 0, request.queryRows);
    }
  }
  if (everyQuery) delete merged.queryRows;
  return merged;
}

// Builds the decoder as an ONNX graph from a config and the checkpoint's stored tensors, at load time.
//
// Graph inputs (batch is always 1):
//   inputs_embeds float [1, q, hidden]    embedding rows of the new tokens (looked up outside the graph
//                                         from the stored table, see embedding.ts)
//   position_ids  int64 [1, q]            their original RoPE positions
//   logits_rows   int64 [r]               which new tokens get logits (all rows, or just the last)
//   causal_bias   float [q, q]            0 where new token i may see new token j (j <= i), -1e30 elsewhere
//   stats_rows    int64 [1]               attention rows to return per layer (the last w queries; 0 = none)
//   sum_rows      int64 [S]               counts c_s <= min(q, sum_span): the last c_s queries' rows summed, per count
//   sum_span      int64 [1]               the largest of them (0 when S = 0)
//   past_key_i    float [1, P_i, kvH, D]  layer i's cache, token-major, keys already rotated (float16
//   past_value_i  float [1, P_i, kvH, D]  with pastDtype 'float16': a 16-bit cache is read as stored)
//   past_bias_i   float [1, P_i, kvH]     0 for a valid (slot, head), -1e30 for an empty one (token-major
//                                         like the cache and its validity mask)
//   past_positions_i float [1, P_i, kvH]  only for a sliding-window layer (config.layerWindows): each slot's
//                                         original position, so keys W or more positions behind a query are masked
// With quantizedPast, a quantized store is read as held: layer i's first Q_i slots come as packed codes, dequantized
// in the graph one layer at a time, and past_key_i/past_value_i hold the remaining slots (the dense residual); P_i
// (past_bias_i's length) counts both. Every call feeds them; a dense cache feeds Q_i = 0 (empty tensors).
//   codes_from_table  bool [1]    table codecs (fp8): each byte's levels are looked up in code_table
//   codes_per_byte    int64 [1]   otherwise codes are their own levels (int8's offset is in its zero-points): 1, 2 or 4
//   code_table        float [256, k]  the levels packed in each byte value, lowest bits first
//   keys_per_channel  bool [1]    keys grouped along tokens (KIVI) rather than per token
//   past_codes_{key,value}_i   uint8 [kvH, bytes]   every head's codes back to back
//   past_shape_{key,value}_i   int64 [4]            [kvH, A, B, C], A·B·C = Q_i·D per head (see kv/cache.ts PackedKvCodes)
//   past_scales_{key,value}_i  float [kvH, A', B', C']  group scales, broadcast against the codes (1 on grouped axes)
//   past_zeros_{key,value}_i   float [kvH, A', B', C']  decoded element = code · scale + zero
// Graph outputs:
//   logits        float [r, vocab]
//   new_key_i     float [1, q, kvH, D]    rotated keys of the new tokens
//   new_value_i   float [1, q, kvH, D]
//   window_i      float [1, kvH, G, w, P_i + q]  probabilities of the last w = stats_rows queries
//   window_sums_i float [1, kvH, G, S, P_i + q]  probabilities of the last c_s queries summed over them
//   key_sums_i    float [1, kvH, G, P_i + q]     probabilities summed over all q queries
//   queries_i     float [1, q, kvH, G, D]        rotated queries
// Query head h = kvHead * G + g, so [kvH, G] flattens to the head order transformers uses.
//
// One session serves generation and the statistics score-based methods need, so the weights are loaded
// once, never twice. Key sums and queries are small next to the attention that makes them and always come
// out; a call fetches only what it asked for.
//
// Attention never concatenates the past cache with the new keys on decode (that would copy the whole
// cache every step): past and new scores are computed separately, joined (small: G x (P+1)), soft-maxed,
// split again. An If node picks the attention form by the number of new tokens: several (prefill)
// transpose the past into heads-major layout once; one (decode) reads the token-major past in place.
// A sliding-window layer adds a bias of its own, made in the graph from the positions: a past slot or new token
// at position k is masked for a query at position p once p - k >= W (transformers' sliding-window mask).
// RMSNorm is onnxruntime's fused SimplifiedLayerNormalization (CPU, CUDA and WebGPU kernels; plainOps spells
// it out); everything else is plain opset-17 ops (RoPE, SwiGLU, Gemma 2's GeGLU and soft-caps spelled out; its
// (1 + weight) norms are initializers of their own), and the graph is checked
// against reference.ts. Linear layers are Gemm on fp32 weights, or com.microsoft MatMulNBits
// on block-quantized ones (see nbits.ts): a GGUF file's quantized blocks stay quantized.

import { isGemma, type ModelConfig } from '../config';
import type { Tensor, WeightMap } from '../types';
import { effectiveNormWeight, resolveWeights, ropeInverseFrequencies, usesSlidingRope } from '../reference';
import { columnCount, readAllFloat32, readFloat32, requireInfo, rowCount, weightMapSource, type WeightSource } from '../weightSource';
import {
  graphProto,
  modelProto,
  nodeProto,
  tensorProto as tensorProtoInline,
  valueInfo,
  OnnxDataType,
  type AttributeValue,
  type MessageWriter,
  type OnnxDataTypeCode,
} from './protobuf';
import { InlineSink, type InitializerSink } from './initializers';
import { dequantizeNBits, nbitsBytes, nbitsLayout, toNBits, type NBitsScheme } from './nbits';

/** How float-stored (F32/F16/BF16) matrices sit in the graph; ggml block tensors always keep their blocks. */
export type WeightQuantization = 'fp32' | NBitsScheme;

export interface GraphOptions {
  quantization: WeightQuantization;
  /** Block size of int4 weights (power of two >= 16). */
  int4BlockSize?: number;
  /**
   * MatMulNBits accuracy_level: 4 (default) quantizes activations to int8 for speed (as llama.cpp's CPU
   * dot products do); 0 keeps fp32 activations so block weights can be checked against the reference.
   */
  int4AccuracyLevel?: 0 | 4;
  /** Element type of the past_key/past_value inputs (default float; float16 for fp16 caches). */
  pastDtype?: 'float' | 'float16';
  /** Add the packed-code inputs through which a quantized store's slots are read and dequantized in the graph. */
  quantizedPast?: boolean;
  /** Spell RMSNorm out in plain opset ops instead of onnxruntime's fused SimplifiedLayerNormalization (for comparisons). */
  plainOps?: boolean;
  /** Route one-token calls through the copy-free decode attention (default true; false for comparisons). */
  decodeFastPath?: boolean;
  /** Where initializers go (default: inline in the ModelProto). */
  sink?: InitializerSink;
}

export interface BuiltGraph {
  /** The ModelProto. With external data it holds only the graph and small constants. */
  bytes: Uint8Array;
  inputNames: string[];
  outputNames: string[];
  /** Bytes of every weight initializer. */
  weightBytes: number;
}

/** Additive mask value for "may not attend": finite so softmax never sees (-inf) - (-inf). */
export const MASKED = -1e30;
const INT64_MAX = 9223372036854775807n;

const ints = (value: number[]): AttributeValue => ({ kind: 'ints', value });
const int = (value: number): AttributeValue => ({ kind: 'int', value });

function bytesOf(data: Float32Array | Uint8Array | BigInt64Array): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

const LINEAR_NAMES = ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj', 'mlp.gate_proj', 'mlp.up_proj', 'mlp.down_proj'];

/**
 * The weights a quantized graph effectively multiplies by: every Linear weight (and the lm_head, even
 * when tied) replaced by its MatMulNBits round trip. The embedding stays as stored: rows are looked up
 * outside the graph.
 */
export function nbitsRoundTripWeights(config: ModelConfig, weights: WeightMap | WeightSource, scheme: NBitsScheme, blockSize = 32): WeightMap {
  const source = isWeightMap(weights) ? weightMapSource(weights) : weights;
  const out = readAllFloat32(source);
  const roundTrip = (name: string): Tensor => {
    const info = requireInfo(source, name);
    return { shape: [...info.shape], data: dequantizeNBits(toNBits(source, name, scheme, blockSize)), sourceDtype: info.dtype };
  };
  for (let l = 0; l < config.numLayers; l++) for (const n of LINEAR_NAMES) out.set(`model.layers.${l}.${n}.weight`, roundTrip(`model.layers.${l}.${n}.weight`));
  out.set('lm_head.weight', roundTrip(source.info('lm_head.weight') ? 'lm_head.weight' : 'model.embed_tokens.weight'));
  return out;
}

/** The int4 round trip (kept under its old name for the parity tests). */
export function int4RoundTripWeights(config: ModelConfig, weights: WeightMap, blockSize = 32): WeightMap {
  return nbitsRoundTripWeights(config, weights, 'int4', blockSize);
}

function isWeightMap(weights: WeightMap | WeightSource): weights is WeightMap {
  return weights instanceof Map;
}

/** The lm_head tensor's name in a source: its own, or the embedding when tied. */
export function lmHeadName(source: WeightSource): string {
  return source.info('lm_head.weight') ? 'lm_head.weight' : 'model.embed_tokens.weight';
}

/**
 * Resident bytes per graph weight byte once onnxruntime has loaded the session: its kernels repack constant
 * matrices (Gemm's fp32 panels, MatMulNBits' blocks with their sums) and keep part of the original beside them.
 * Measured peaks on this project's benchmark models (Qwen2.5-0.5B shape: fp32, int8, Q8_0, Q4_0; Llama-3.1-8B
 * shape: Q4_0) come to about these multiples.
 */
export const RESIDENT_FACTOR = { fp32: 1.55, bits8: 1.4, bits4: 1.6 } as const;

/** Bytes the graph's weights take for these options, from tensor shapes and dtypes alone (`resident`: once loaded). */
export function graphWeightBytes(source: WeightSource, options: Pick<GraphOptions, 'quantization' | 'int4BlockSize'>, resident = false): number {
  const scheme = options.quantization === 'fp32' ? null : options.quantization;
  let total = 0;
  const matrix = (name: string): void => {
    const info = requireInfo(source, name);
    const layout = nbitsLayout(info.dtype, scheme, options.int4BlockSize ?? 32);
    const bytes = layout ? nbitsBytes(layout, rowCount(info), columnCount(info)) : rowCount(info) * columnCount(info) * 4;
    const factor = !resident ? 1 : !layout ? RESIDENT_FACTOR.fp32 : layout.bits === 8 ? RESIDENT_FACTOR.bits8 : RESIDENT_FACTOR.bits4;
    total += bytes * factor;
  };
  for (const name of source.names) {
    if (name === 'model.embed_tokens.weight') continue;
    const info = requireInfo(source, name);
    if (info.shape.length === 2) matrix(name);
    else total += info.shape[0] * 4;
  }
  if (lmHeadName(source) !== 'lm_head.weight') matrix('model.embed_tokens.weight');
  return Math.round(total);
}

class GraphBuilder {
  nodes: MessageWriter[] = [];
  /** Small constants (shapes, axes, scalars): always inline. */
  readonly constants: MessageWriter[] = [];
  readonly inputs: MessageWriter[] = [];
  readonly outputs: MessageWriter[] = [];
  readonly inputNames: string[] = [];
  readonly outputNames: string[] = [];
  private counter = 0;
  usesMicrosoftDomain = false;

  constructor(readonly sink: InitializerSink) {}

  /** A subgraph (If branch) made of the nodes `build` adds; it reads outer values by name. */
  subgraph(name: string, build: () => string[], types: OnnxDataTypeCode[] = []): MessageWriter {
    const outer = this.nodes;
    this.nodes = [];
    // The branch's own node outputs are its outputs (no Identity: that would copy a score-sized tensor).
    const outputs = build().map((result, i) => valueInfo(result, types[i] ?? OnnxDataType.FLOAT));
    const graph = graphProto({ name, nodes: this.nodes, initializers: [], inputs: [], outputs });
    this.nodes = outer;
    return graph;
  }

  fresh(hint: string): string {
    return `${hint}__${this.counter++}`;
  }

  /** Adds a node and returns its (first) output name. */
  op(opType: string, inputs: string[], attributes: Record<string, AttributeValue> = {}, output?: string, domain = ''): string {
    const out = output ?? this.fresh(opType.toLowerCase());
    this.nodes.push(nodeProto(opType, inputs, [out], `${opType}_${this.counter++}`, attributes, domain));
    if (domain === 'com.microsoft') this.usesMicrosoftDomain = true;
    return out;
  }

  /** An If node; each branch returns its outputs (of `types`); returns the If's output names. */
  ifElse(condition: string, hint: string, thenBranch: () => string[], elseBranch: () => string[], types: OnnxDataTypeCode[] = []): string[] {
    const thenGraph = this.subgraph(`${hint}_then`, thenBranch, types);
    const elseGraph = this.subgraph(`${hint}_else`, elseBranch, types);
    const results = Array.from({ length: Math.max(types.length, 1) }, () => this.fresh(hint));
    this.nodes.push(
      nodeProto('If', [condition], results, this.fresh('If'), {
        then_branch: { kind: 'graph', value: thenGraph },
        else_branch: { kind: 'graph', value: elseGraph },
      }),
    );
    return results;
  }

  constant(name: string, type: OnnxDataTypeCode, dims: number[], data: Float32Array | Uint8Array | BigInt64Array): string {
    this.constants.push(tensorProtoInline(name, type, dims, bytesOf(data)));
    return name;
  }

  /** A weight initializer; `produce` runs only if the sink does not already hold it. */
  weight(name: string, type: OnnxDataTypeCode, dims: number[], produce: () => Float32Array | Uint8Array): string {
    this.sink.add(name, type, dims, produce);
    return name;
  }

  int64s(values: (number | bigint)[], hint = 'const'): string {
    return this.constant(this.fresh(hint), OnnxDataType.INT64, [values.length], BigInt64Array.from(values, (v) => BigInt(v)));
  }

  scalar(value: number, hint = 'scalar'): string {
    return this.constant(this.fresh(hint), OnnxDataType.FLOAT, [], Float32Array.of(value));
  }

  input(name: string, type: OnnxDataTypeCode, shape: (number | string)[]): string {
    this.inputs.push(valueInfo(name, type, shape));
    this.inputNames.push(name);
    return name;
  }

  /** A graph output; no shape for outputs whose rank depends on the inputs (the gated statistics). */
  output(name: string, type: OnnxDataTypeCode, shape?: (number | string)[]): void {
    this.outputs.push(valueInfo(name, type, shape));
    this.outputNames.push(name);
  }
}

export function buildDecoderGraph(config: ModelConfig, weights: WeightMap | WeightSource, options: GraphOptions): BuiltGraph {
  const source = isWeightMap(weights) ? weightMapSource(weights) : weights;
  if (isWeightMap(weights)) resolveWeights(config, weights); // names and shapes, checked up front
  const { hiddenSize: hidden, numHeads: H, numKvHeads: KVH, headDim: D, vocabSize } = config;
  const G = H / KVH;
  const half = D / 2;
  const blockSize = options.int4BlockSize ?? 32;
  const scheme = options.quantization === 'fp32' ? null : options.quantization;
  const g = new GraphBuilder(options.sink ?? new InlineSink());

  // ---- shared constants ----
  const zero = g.int64s([0], 'zero');
  const int64Max = g.int64s([INT64_MAX], 'int64_max');
  const eps = g.scalar(config.rmsNormEps, 'rms_eps');
  const queryScale = g.scalar(config.attentionScale ?? 1 / Math.sqrt(D), 'query_scale');
  const gemma = isGemma(config);
  const toTokensByHidden = g.int64s([-1, hidden], 'shape_tokens_hidden');
  const toQueryHeads = g.int64s([1, -1, KVH, G, D], 'shape_query_heads');
  const toKvHeads = g.int64s([1, -1, KVH, D], 'shape_kv_heads');
  const toTokensByHeads = g.int64s([-1, H * D], 'shape_tokens_heads');
  const ropeSplit = g.int64s([half, half], 'rope_split');
  const shapeQueryColumns = g.int64s([1, D, KVH, G], 'shape_query_columns');
  const shapeBlockQuery = g.int64s([KVH * D, H], 'shape_block_query');
  const kvGroupDims = g.int64s([KVH, G], 'kv_group_dims');
  const shapeHeadPairs = g.int64s([KVH, G, KVH, D], 'shape_head_pairs');
  const shapeOneQueryContext = g.int64s([1, KVH, G, 1, D], 'shape_one_query_context');
  // [kvH, 1, kvH, 1] identity: keeps the (kv head, kv head) diagonal blocks of a block-diagonal product.
  const eye = new Float32Array(KVH * KVH);
  for (let k = 0; k < KVH; k++) eye[k * KVH + k] = 1;
  const kvEye = g.constant('kv_eye', OnnxDataType.FLOAT, [KVH, 1, KVH, 1], eye);
  const kvZeros = g.constant('kv_zeros', OnnxDataType.FLOAT, [1, KVH, 1, 1, 1], new Float32Array(KVH));
  const maskedValue = g.scalar(MASKED, 'masked');

  /** A stored vector (norm weight, bias) as an fp32 initializer. */
  const vector = (name: string): string => g.weight(name, OnnxDataType.FLOAT, [...requireInfo(source, name).shape], () => readFloat32(source, name));

  /** x [rows, in] -> [rows, out] with the stored HF Linear weight `name` [out, in] (+ bias). */
  const linear = (x: string, name: string, biasName: string | null): string => {
    const info = requireInfo(source, name);
    const [n, k] = info.shape;
    const layout = nbitsLayout(info.dtype, scheme, blockSize);
    if (!layout) {
      const inputs = [x, g.weight(name, OnnxDataType.FLOAT, [n, k], () => readFloat32(source, name))];
      if (biasName) inputs.push(vector(biasName));
      return g.op('Gemm', inputs, { transB: int(1) });
    }
    // Converted once, lazily: the sink asks for each part only when it does not hold it already.
    let converted: ReturnType<typeof toNBits> | null = null;
    const matrix = (): ReturnType<typeof toNBits> => (converted ??= toNBits(source, name, scheme ?? 'int8', blockSize));
    const blocks = Math.ceil(k / layout.blockSize);
    const inputs = [
      x,
      g.weight(`${name}.q${layout.bits}`, OnnxDataType.UINT8, [n, blocks, (layout.blockSize * layout.bits) / 8], () => matrix().packed),
      g.weight(`${name}.scales`, OnnxDataType.FLOAT, [n * blocks], () => matrix().scales),
    ];
    if (layout.floatZeros) inputs.push(g.weight(`${name}.zeros`, OnnxDataType.FLOAT, [n * blocks], () => matrix().zeroPoints!));
    if (biasName) {
      if (!layout.floatZeros) inputs.push('');
      inputs.push('', vector(biasName));
    }
    const attributes = { K: int(k), N: int(n), bits: int(layout.bits), block_size: int(layout.blockSize), accuracy_level: int(options.int4AccuracyLevel ?? 4) };
    converted = null;
    return g.op('MatMulNBits', inputs, attributes, undefined, 'com.microsoft');
  };

  /** A norm's weight as it multiplies: stored, or Gemma's (1 + weight) as an initializer of its own. */
  const normWeight = (name: string): string =>
    gemma ? g.weight(`${name}.plus_one`, OnnxDataType.FLOAT, [...requireInfo(source, name).shape], () => effectiveNormWeight(config, readFloat32(source, name))) : vector(name);

  /** x / sqrt(mean(x^2) + eps) * weight over the last axis: one fused kernel instead of six small ops per call. */
  const rmsNorm = (x: string, weightName: string): string => {
    if (options.plainOps) {
      const meanSquare = g.op('ReduceMean', [g.op('Mul', [x, x])], { axes: ints([-1]), keepdims: int(1) });
      const inverseRms = g.op('Reciprocal', [g.op('Sqrt', [g.op('Add', [meanSquare, eps])])]);
      return g.op('Mul', [g.op('Mul', [x, inverseRms]), normWeight(weightName)]);
    }
    return g.op('SimplifiedLayerNormalization', [x, normWeight(weightName)], { axis: int(-1), epsilon: { kind: 'float', value: config.rmsNormEps } });
  };

  /** Gemma 2's soft-capping, cap · tanh(x / cap); x itself when the model has no cap. */
  const softCap = (x: string, cap: number | undefined): string => (cap === undefined ? x : g.op('Mul', [g.op('Tanh', [g.op('Div', [x, g.scalar(cap, 'cap')])]), g.scalar(cap, 'cap')]));
  const capScores = (scores: string): string => softCap(scores, config.attentionLogitCap);

  /** Rotate-half RoPE on the last axis of x; cos/sin broadcast against x's leading axes. */
  const rope = (x: string, cos: string, sin: string): string => {
    const x1 = g.fresh('rope_x1');
    const x2 = g.fresh('rope_x2');
    g.nodes.push(nodeProto('Split', [x, ropeSplit], [x1, x2], g.fresh('Split'), { axis: int(-1) }));
    const first = g.op('Sub', [g.op('Mul', [x1, cos]), g.op('Mul', [x2, sin])]);
    const second = g.op('Add', [g.op('Mul', [x2, cos]), g.op('Mul', [x1, sin])]);
    return g.op('Concat', [first, second], { axis: int(-1) });
  };

  /** transformers' gelu_pytorch_tanh: 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))). */
  const geluTanh = (x: string): string => {
    const cubic = g.op('Mul', [g.op('Mul', [g.op('Mul', [x, x]), x]), g.scalar(0.044715, 'gelu_cubic')]);
    const inner = g.op('Mul', [g.op('Add', [x, cubic]), g.scalar(Math.sqrt(2 / Math.PI), 'gelu_scale')]);
    return g.op('Mul', [g.op('Mul', [x, g.scalar(0.5, 'half')]), g.op('Add', [g.op('Tanh', [inner]), g.scalar(1, 'one')])]);
  };

  /** A past input in the cache's element type, as fp32 for the attention below. */
  const pastInput = (name: string, shape: (number | string)[]): string => {
    if (options.pastDtype !== 'float16') return g.input(name, OnnxDataType.FLOAT, shape);
    return g.op('Cast', [g.input(name, OnnxDataType.FLOAT16, shape)], { to: int(OnnxDataType.FLOAT) });
  };

  // ---- inputs ----
  const inputsEmbeds = g.input('inputs_embeds', OnnxDataType.FLOAT, [1, 'q', hidden]);
  const positionIds = g.input('position_ids', OnnxDataType.INT64, [1, 'q']);
  const logitsRows = g.input('logits_rows', OnnxDataType.INT64, ['r']);
  const causalBias = g.input('causal_bias', OnnxDataType.FLOAT, ['q', 'q']);
  const statsRows = g.input('stats_rows', OnnxDataType.INT64, [1]);
  const sumRows = g.input('sum_rows', OnnxDataType.INT64, ['S']);
  const sumSpan = g.input('sum_span', OnnxDataType.INT64, [1]);
  const codesFromTable = options.quantizedPast ? g.input('codes_from_table', OnnxDataType.BOOL, [1]) : '';
  const codesPerByte = options.quantizedPast ? g.input('codes_per_byte', OnnxDataType.INT64, [1]) : '';
  const codeTable = options.quantizedPast ? g.input('code_table', OnnxDataType.FLOAT, [256, 'k']) : '';
  const keysPerChannel = options.quantizedPast ? g.input('keys_per_channel', OnnxDataType.BOOL, [1]) : '';
  const toHeadsTokensDims = g.int64s([KVH, -1, D], 'shape_heads_tokens_dims');

  interface PackedInputs {
    codes: string;
    shape: string;
    scales: string;
    zeros: string;
  }
  const packedInputs = (name: string): PackedInputs => ({
    codes: g.input(`past_codes_${name}`, OnnxDataType.UINT8, [KVH, `codes_${name}`]),
    shape: g.input(`past_shape_${name}`, OnnxDataType.INT64, [4]),
    scales: g.input(`past_scales_${name}`, OnnxDataType.FLOAT, [KVH, `sa_${name}`, `sb_${name}`, `sc_${name}`]),
    zeros: g.input(`past_zeros_${name}`, OnnxDataType.FLOAT, [KVH, `sa_${name}`, `sb_${name}`, `sc_${name}`]),
  });

  /**
   * The codes' levels as fp32 planes: plane i holds channels i, i + k, i + 2k, ... of every row ([kvH, A, B, C / k]),
   * k = the codes per byte. Narrow codes are split with float arithmetic (floor of the byte over a power of two)
   * rather than per-element bit shifts; the byte's own order (lowest bits = first channel) makes each split a plane.
   */
  type CodeMode = 'table' | 1 | 2 | 4;
  interface Planes {
    tensors: string[];
    k: number;
  }
  const planesOf = (packed: PackedInputs, mode: CodeMode): Planes => {
    if (mode === 'table') {
      const looked = g.op('Gather', [codeTable, g.op('Cast', [packed.codes], { to: int(OnnxDataType.INT32) })], { axis: int(0) }); // [kvH, bytes, codes per byte]
      return { tensors: [g.op('Reshape', [looked, packed.shape])], k: 1 };
    }
    if (mode === 1) return { tensors: [g.op('Cast', [g.op('Reshape', [packed.codes, packed.shape])], { to: int(OnnxDataType.FLOAT) })], k: 1 };
    const k = mode;
    const bits = 8 / k;
    const planeShape = g.op('Div', [packed.shape, g.int64s([1, 1, 1, k])]);
    let rest = g.op('Cast', [packed.codes], { to: int(OnnxDataType.FLOAT) }); // [kvH, bytes]
    const tensors: string[] = new Array(k);
    for (let i = k - 1; i >= 1; i--) {
      const high = g.op('Floor', [g.op('Mul', [rest, g.scalar(2 ** (-bits * i))])]);
      rest = g.op('Sub', [rest, g.op('Mul', [high, g.scalar(2 ** (bits * i))])]);
      tensors[i] = g.op('Reshape', [high, planeShape]);
    }
    tensors[0] = g.op('Reshape', [rest, planeShape]);
    return { tensors, k };
  };
  /** Every k-th entry from i along `axis`: a plane's share of a per-channel tensor (small: queries, masks, scales). */
  const channelsOf = (x: string, axis: number, i: number, k: number): string =>
    k === 1 ? x : g.op('Slice', [x, g.int64s([i]), g.int64s([INT64_MAX]), g.int64s([axis]), g.int64s([k])]);
  const rowsOf = (plane: string, k: number): string => (k === 1 ? g.op('Reshape', [plane, toHeadsTokensDims]) : g.op('Reshape', [plane, g.int64s([KVH, -1, D / k])])); // [kvH, Q, D/k]
  /** Planes put back in channel order and scaled: [kvH, Q, D] (only for several new tokens over a quantized past). */
  const dequantize = (packed: PackedInputs, planes: Planes): string => {
    const levels = planes.k === 1 ? planes.tensors[0] : g.op('Reshape', [g.op('Concat', planes.tensors.map((t) => g.op('Unsqueeze', [t, g.int64s([-1])])), { axis: int(-1) }), packed.shape]);
    return g.op('Reshape', [g.op('Add', [g.op('Mul', [levels, packed.scales]), packed.zeros]), toHeadsTokensDims]);
  };
  /**
   * `use` applied to the packed slots' planes, inside Ifs over the code formats: what leaves the branches is `use`'s
   * result (scores or context, small), never a slot-sized tensor, which is freed as soon as its branch ends.
   */
  const readPacked = (packed: PackedInputs, hint: string, use: (planes: Planes) => string): string => {
    const byWidth = (): string[] => [
      g.ifElse(g.op('Equal', [codesPerByte, g.int64s([1])]), `${hint}_bytes`, () => [use(planesOf(packed, 1))], () => [
        g.ifElse(g.op('Equal', [codesPerByte, g.int64s([2])]), `${hint}_nibbles`, () => [use(planesOf(packed, 2))], () => [use(planesOf(packed, 4))])[0],
      ])[0],
    ];
    return g.ifElse(codesFromTable, hint, () => [use(planesOf(packed, 'table'))], byWidth)[0];
  };

  const channelIds = g.int64s(Array.from({ length: D }, (_, c) => c), 'channel_ids');
  const scalarZero = g.constant(g.fresh('scalar_zero'), OnnxDataType.INT64, [], BigInt64Array.of(0n));
  const scalarOne = g.constant(g.fresh('scalar_one'), OnnxDataType.INT64, [], BigInt64Array.of(1n));
  /** [groups, D]: 1 where channel c is in group g, for per-token groups of `shape` [kvH, Q, groups, width]. */
  const groupMaskT = (shape: string): string => {
    const width = g.op('Slice', [shape, g.int64s([3]), g.int64s([4])]);
    const groups = g.op('Squeeze', [g.op('Slice', [shape, g.int64s([2]), g.int64s([3])]), zero]);
    const groupIds = g.op('Unsqueeze', [g.op('Range', [scalarZero, groups, scalarOne]), g.int64s([1])]); // [groups, 1]
    return g.op('Cast', [g.op('Equal', [g.op('Div', [channelIds, width]), groupIds])], { to: int(OnnxDataType.FLOAT) });
  };

  /**
   * Scores of the queries [kvH, D, G] against packed keys, [kvH, G, Q], with the group scales and zero-points applied to
   * the small products instead of to every element: per-token groups sum per-group partial products (each query column
   * masked to one group's channels) times the token's scales, plus zero-points times the queries' group sums; KIVI's
   * per-channel groups scale the query by each chunk's channel scales, plus the chunk's zero-points times the query.
   * Each plane multiplies its own channels of the query. Broadcast matmuls, no reshapes to computed shapes: Q may be 0.
   */
  const packedKeyScores = (packed: PackedInputs, planes: Planes, queryColumns: string): string => {
    const { tensors, k } = planes;
    const sum = (terms: string[]): string => terms.reduce((a, b) => g.op('Add', [a, b]));
    const perChannel = (): string[] => {
      // Channel scales on the levels (one multiply), then one [Q, D/k] x [D/k, G] product per head and plane: a matmul
      // batched over chunks would run thousands of tiny products.
      const raw = sum(
        tensors.map((plane, i) => g.op('MatMul', [rowsOf(g.op('Mul', [plane, channelsOf(packed.scales, 3, i, k)]), k), channelsOf(queryColumns, 1, i, k)])),
      ); // [kvH, Q, G]
      const byChunk = g.op('Concat', [g.int64s([KVH]), g.op('Slice', [packed.shape, g.int64s([1]), g.int64s([3])]), g.int64s([G])], { axis: int(0) }); // [kvH, chunks, n, G]
      const bias = g.op('MatMul', [packed.zeros, g.op('Unsqueeze', [queryColumns, g.int64s([1])])]); // [kvH, chunks, 1, G]
      return [g.op('Reshape', [g.op('Add', [g.op('Reshape', [raw, byChunk]), bias]), g.int64s([KVH, -1, G])])]; // [kvH, Q, G]
    };
    const perToken = (): string[] => {
      const maskT = groupMaskT(packed.shape); // [groups, D]
      const partial = sum(
        tensors.map((plane, i) => {
          const maskedQuery = g.op('Mul', [g.op('Unsqueeze', [channelsOf(queryColumns, 1, i, k), g.int64s([1])]), g.op('Unsqueeze', [channelsOf(maskT, 1, i, k), g.int64s([2])])]); // [kvH, groups, D/k, G]
          return g.op('MatMul', [g.op('Unsqueeze', [rowsOf(plane, k), g.int64s([1])]), maskedQuery]); // [kvH, groups, Q, G]
        }),
      );
      const scalesByGroup = g.op('Transpose', [packed.scales], { perm: ints([0, 2, 1, 3]) }); // [kvH, groups, Q, 1]
      const scaled = g.op('ReduceSum', [g.op('Mul', [partial, scalesByGroup]), g.int64s([1])], { keepdims: int(0) }); // [kvH, Q, G]
      const groupSums = g.op('MatMul', [maskT, queryColumns]); // [kvH, groups, G]
      const zeros = g.op('Squeeze', [packed.zeros, g.int64s([3])]); // [kvH, Q, groups]
      return [g.op('Add', [scaled, g.op('MatMul', [zeros, groupSums])])];
    };
    const [scores] = g.ifElse(keysPerChannel, 'key_layout', perChannel, perToken);
    return g.op('Transpose', [scores], { perm: ints([0, 2, 1]) }); // [kvH, G, Q]
  };

  /**
   * Context of probabilities [kvH, G, Q] over packed per-token values, [kvH, G, D]: the probabilities are scaled per
   * group ([kvH, G, groups, Q], small) and multiplied by each plane once; each output channel keeps its own group's row.
   */
  const packedValueContext = (packed: PackedInputs, planes: Planes, probs: string): string => {
    const { tensors, k } = planes;
    const maskT = groupMaskT(packed.shape); // [groups, D]
    const scalesT = g.op('Transpose', [g.op('Squeeze', [packed.scales, g.int64s([3])])], { perm: ints([0, 2, 1]) }); // [kvH, groups, Q]
    const scaledProbs = g.op('Mul', [g.op('Unsqueeze', [probs, g.int64s([2])]), g.op('Unsqueeze', [scalesT, g.int64s([1])])]); // [kvH, G, groups, Q]
    const perPlane = tensors.map((plane, i) => {
      const perGroup = g.op('MatMul', [scaledProbs, g.op('Unsqueeze', [rowsOf(plane, k), g.int64s([1])])]); // [kvH, G, groups, D/k]
      return g.op('ReduceSum', [g.op('Mul', [perGroup, channelsOf(maskT, 1, i, k)]), g.int64s([2])], { keepdims: int(0) }); // [kvH, G, D/k]
    });
    const scaled = k === 1 ? perPlane[0] : g.op('Reshape', [g.op('Concat', perPlane.map((t) => g.op('Unsqueeze', [t, g.int64s([3])])), { axis: int(3) }), g.int64s([KVH, G, D])]); // [kvH, G, D]
    const zeros = g.op('Squeeze', [packed.zeros, g.int64s([3])]); // [kvH, Q, groups]
    return g.op('Add', [scaled, g.op('MatMul', [g.op('MatMul', [probs, zeros]), maskT])]);
  };

  // RoPE angles in fp32 exactly as transformers: float(position) * inv_freq. One table for every layer, or Gemma 3's
  // two (local layers with their own base, global ones scaled), each made once.
  interface RopeTables {
    cosKv: string; // [1, q, 1, D/2]
    sinKv: string;
    cosQuery: string; // [1, q, 1, 1, D/2]
    sinQuery: string;
  }
  const ropeTablesByKind = new Map<string, RopeTables>();
  const ropeTablesFor = (layer: number): RopeTables => {
    const kind = usesSlidingRope(config, layer) ? 'local' : 'global';
    let tables = ropeTablesByKind.get(kind);
    if (!tables) {
      const invFreq = g.constant(`rope_inv_freq_${kind}`, OnnxDataType.FLOAT, [half], ropeInverseFrequencies(config, layer));
      const angles = g.op('Mul', [g.op('Unsqueeze', [g.op('Cast', [positionIds], { to: int(OnnxDataType.FLOAT) }), g.int64s([2])]), invFreq]);
      const cos = g.op('Cos', [angles]); // [1, q, D/2]
      const sin = g.op('Sin', [angles]);
      tables = {
        cosKv: g.op('Unsqueeze', [cos, g.int64s([2])]),
        sinKv: g.op('Unsqueeze', [sin, g.int64s([2])]),
        cosQuery: g.op('Unsqueeze', [cos, g.int64s([2, 3])]),
        sinQuery: g.op('Unsqueeze', [sin, g.int64s([2, 3])]),
      };
      ropeTablesByKind.set(kind, tables);
    }
    return tables;
  };

  const queryCount = g.op('Shape', [positionIds], { start: int(1), end: int(2) }); // [1] = q
  const singleQuery = g.op('Equal', [queryCount, g.int64s([1])]);
  // First of the last `stats_rows` query rows, clamped at 0 (a negative Slice start would count from the end).
  const windowStart = g.op('Max', [g.op('Sub', [queryCount, statsRows]), zero]);
  const sumStart = g.op('Max', [g.op('Sub', [queryCount, sumSpan]), zero]);
  // Row m - c of the reverse cumulative sum over the last m rows plus a zero row is the sum of the last c rows.
  const sumPick = g.op('Sub', [g.op('Sub', [queryCount, sumStart]), sumRows]); // [S]
  const padOneRowAtEnd = g.int64s([0, 0, 0, 0, 0, 0, 0, 0, 1, 0]);
  // Gemma scales the embedding rows by sqrt(hidden) (rounded to fp32, as its embed_scale); the tied lm_head stays unscaled.
  const embedded = g.op('Reshape', [inputsEmbeds, toTokensByHidden]); // [q, hidden]
  let hiddenState = gemma ? g.op('Mul', [embedded, g.scalar(Math.fround(Math.sqrt(hidden)), 'embedding_scale')]) : embedded;

  // Sliding windows: each query's position against each key's, masked (MASKED) where the key is W or more behind.
  const queryPositions = g.op('Reshape', [g.op('Cast', [positionIds], { to: int(OnnxDataType.FLOAT) }), g.int64s([-1, 1, 1])]); // [q, 1, 1]
  const outOfWindowBias = (age: string, window: number): string =>
    g.op('Mul', [g.op('Cast', [g.op('GreaterOrEqual', [age, g.scalar(window, 'window')])], { to: int(OnnxDataType.FLOAT) }), maskedValue]);
  /** The causal bias among the new tokens with the window applied, [q, q] (one per window size). */
  const windowedCausal = new Map<number, string>();
  const causalBiasFor = (window: number): string => {
    let bias = windowedCausal.get(window);
    if (!bias) {
      const ages = g.op('Sub', [g.op('Squeeze', [queryPositions, g.int64s([2])]), g.op('Reshape', [queryPositions, g.int64s([1, -1])])]); // [q, q]
      bias = g.op('Add', [causalBias, outOfWindowBias(ages, window)]);
      windowedCausal.set(window, bias);
    }
    return bias;
  };

  for (let l = 0; l < config.numLayers; l++) {
    const p = `model.layers.${l}.`;
    const bias = (kind: string): string | null => (source.info(`${p}self_attn.${kind}_proj.bias`) ? `${p}self_attn.${kind}_proj.bias` : null);
    const pastKey = pastInput(`past_key_${l}`, [1, `past_${l}`, KVH, D]);
    const pastValue = pastInput(`past_value_${l}`, [1, `past_${l}`, KVH, D]);
    const slots = options.quantizedPast ? `slots_${l}` : `past_${l}`;
    const validBias = g.input(`past_bias_${l}`, OnnxDataType.FLOAT, [1, slots, KVH]);
    const slidingWindow = config.layerWindows?.[l] ?? null;
    // [r, P, kvH] with r = 1 for full attention, r = q (one row per query) for a sliding-window layer.
    const pastBias =
      slidingWindow === null
        ? validBias
        : g.op('Add', [validBias, outOfWindowBias(g.op('Sub', [queryPositions, g.input(`past_positions_${l}`, OnnxDataType.FLOAT, [1, slots, KVH])]), slidingWindow)]);
    const layerCausalBias = slidingWindow === null ? causalBias : causalBiasFor(slidingWindow); // [q, q]
    // The quantized slots [0, Q) come first, then the dense ones (past_key_i: the residual) [Q, P).
    const packedKey = options.quantizedPast ? packedInputs(`key_${l}`) : null;
    const packedValue = options.quantizedPast ? packedInputs(`value_${l}`) : null;

    // ---- attention: norm -> q/k/v -> rope -> attend -> o_proj ----
    const x = rmsNorm(hiddenState, `${p}input_layernorm.weight`); // [q, hidden]
    const queryFlat = linear(x, `${p}self_attn.q_proj.weight`, bias('q')); // [q, H*D]
    const keyFlat = linear(x, `${p}self_attn.k_proj.weight`, bias('k')); // [q, kvH*D]
    const valueFlat = linear(x, `${p}self_attn.v_proj.weight`, bias('v'));

    // Qwen3 normalises each head over D before RoPE.
    const headNorm = (heads: string, kind: 'q' | 'k'): string => (config.qkNorm ? rmsNorm(heads, `${p}self_attn.${kind}_norm.weight`) : heads);
    const { cosKv, sinKv, cosQuery, sinQuery } = ropeTablesFor(l);
    const queries = rope(headNorm(g.op('Reshape', [queryFlat, toQueryHeads]), 'q'), cosQuery, sinQuery); // [1, q, kvH, G, D]
    const newKey = g.op('Identity', [rope(headNorm(g.op('Reshape', [keyFlat, toKvHeads]), 'k'), cosKv, sinKv)], {}, `new_key_${l}`);
    const newValue = g.op('Reshape', [valueFlat, toKvHeads], {}, `new_value_${l}`);
    g.output(newKey, OnnxDataType.FLOAT, [1, 'q', KVH, D]);
    g.output(newValue, OnnxDataType.FLOAT, [1, 'q', KVH, D]);

    const axis3 = g.int64s([3]);
    // Heads-major views for batched matmuls: [1, kvH, G, q, D] queries against [1, kvH, 1, D, keys].
    const queryHeads = g.op('Mul', [g.op('Transpose', [queries], { perm: ints([0, 2, 3, 1, 4]) }), queryScale]);
    const newKeyT = g.op('Transpose', [g.op('Unsqueeze', [newKey, axis3])], { perm: ints([0, 2, 3, 4, 1]) }); // [1, kvH, 1, D, q]
    const newValueH = g.op('Transpose', [g.op('Unsqueeze', [newValue, axis3])], { perm: ints([0, 2, 3, 1, 4]) }); // [1, kvH, 1, q, D]
    const denseLength = g.op('Shape', [pastKey], { start: int(1), end: int(2) });
    const axis4 = g.int64s([4]);

    // Many queries (prefill): join past and new keys/values once per call (a copy of the cache, small
    // next to the q x (P+q) scores), so the scores are made, soft-maxed and used without being split.
    const attendMany = (): string[] => {
      const keyParts = [g.op('Transpose', [g.op('Unsqueeze', [pastKey, axis3])], { perm: ints([0, 2, 3, 4, 1]) }), newKeyT];
      const valueParts = [g.op('Transpose', [g.op('Unsqueeze', [pastValue, axis3])], { perm: ints([0, 2, 3, 1, 4]) }), newValueH];
      if (packedKey && packedValue) {
        // Rare (several tokens at once over a quantized store): the dequantized slots join the concatenation.
        const axes02 = g.int64s([0, 2]);
        keyParts.unshift(readPacked(packedKey, `prefix_keys_${l}`, (planes) => g.op('Transpose', [g.op('Unsqueeze', [dequantize(packedKey, planes), axes02])], { perm: ints([0, 1, 2, 4, 3]) }))); // [1, kvH, 1, D, Q]
        valueParts.unshift(readPacked(packedValue, `prefix_values_${l}`, (planes) => g.op('Unsqueeze', [dequantize(packedValue, planes), axes02]))); // [1, kvH, 1, Q, D]
      }
      const keysT = g.op('Concat', keyParts, { axis: int(4) }); // [1, kvH, 1, D, P+q]
      const valuesH = g.op('Concat', valueParts, { axis: int(3) }); // [1, kvH, 1, P+q, D]
      // Bias over every key: the past part per (kv head, slot), the new part causal per (query, key).
      const pastBiasRow = g.op('Unsqueeze', [g.op('Transpose', [pastBias], { perm: ints([2, 0, 1]) }), g.int64s([0, 2])]); // [1, kvH, 1, r, P]
      const pastBiasRows = g.op('Add', [pastBiasRow, g.op('Slice', [causalBias, zero, g.int64s([1]), g.int64s([1])])]); // + [q, 1] zeros -> [1, kvH, 1, q, P]
      const causalRows = g.op('Add', [layerCausalBias, kvZeros]); // [1, kvH, 1, q, q]
      const biasAll = g.op('Concat', [pastBiasRows, causalRows], { axis: int(4) }); // [1, kvH, 1, q, P+q]
      const probs = g.op('Softmax', [g.op('Add', [capScores(g.op('MatMul', [queryHeads, keysT])), biasAll])], { axis: int(-1) }); // [1, kvH, G, q, P+q]
      return [probs, g.op('MatMul', [probs, valuesH])]; // context [1, kvH, G, q, D]
    };

    // One query (decode): read the token-major past in place as [P, kvH*D] instead of transposing the whole
    // cache every step. Against a block-diagonal query matrix one matmul gives every head's scores (the
    // off-diagonal blocks are zeros: kvH times the multiply-adds of a per-head product, but decode is bound
    // by reading the cache, which now happens once and without a copy).
    const attendOne = (packed: boolean): string[] => {
      const queryColumns = g.op('Reshape', [g.op('Transpose', [queryHeads], { perm: ints([0, 4, 1, 2, 3]) }), shapeQueryColumns]); // [1, D, kvH, G]
      const blockQuery = g.op('Reshape', [g.op('Mul', [queryColumns, kvEye]), shapeBlockQuery]); // [kvH*D, H]
      const denseScores = g.op('MatMul', [g.op('Flatten', [pastKey], { axis: int(2) }), blockQuery]); // [R, H]
      const denseScoresByHead = g.op('Reshape', [denseScores, g.op('Concat', [denseLength, kvGroupDims], { axis: int(0) })]); // [R, kvH, G]
      let pastScoresRaw = g.op('Transpose', [denseScoresByHead], { perm: ints([1, 2, 0]) }); // [kvH, G, R]
      let prefixLength: string | null = null;
      let pastLength = denseLength;
      if (packed && packedKey) {
        // Heads-major quantized slots: one batched [Q, D] x [D, G] product per kv head.
        const queryByHead = g.op('Transpose', [g.op('Reshape', [queryHeads, g.int64s([KVH, G, D])])], { perm: ints([0, 2, 1]) }); // [kvH, D, G]
        const prefixScores = readPacked(packedKey, `prefix_scores_${l}`, (planes) => packedKeyScores(packedKey, planes, queryByHead)); // [kvH, G, Q]
        // Values are grouped per token ([kvH, Q, groups, width]): their shape says how many slots are packed.
        prefixLength = g.op('Slice', [(packedValue as PackedInputs).shape, g.int64s([1]), g.int64s([2])]);
        pastLength = g.op('Add', [prefixLength, denseLength]);
        pastScoresRaw = g.op('Concat', [prefixScores, pastScoresRaw], { axis: int(2) }); // [kvH, G, P]
      }
      // The bias is added in [kvH, G, P] layout, where it broadcasts along G onto contiguous rows of P (r = q = 1).
      const biasByHead = g.op('Transpose', [pastBias], { perm: ints([2, 0, 1]) }); // [kvH, 1, P]
      const pastScoresMasked = g.op('Add', [capScores(pastScoresRaw), biasByHead]); // [kvH, G, P]
      const pastScores5 = g.op('Unsqueeze', [pastScoresMasked, g.int64s([0, 3])]); // [1, kvH, G, 1, P]
      const newScores = g.op('Add', [capScores(g.op('MatMul', [queryHeads, newKeyT])), causalBias]); // [1, kvH, G, 1, 1]
      const probs = g.op('Softmax', [g.op('Concat', [pastScores5, newScores], { axis: int(4) })], { axis: int(-1) }); // [1, kvH, G, 1, P+1]
      const denseProbs = g.op('Flatten', [g.op('Slice', [probs, prefixLength ?? zero, pastLength, axis4])], { axis: int(4) }); // [H, R]
      const newProbs = g.op('Slice', [probs, pastLength, int64Max, axis4]); // [1, kvH, G, 1, 1]
      const allPairs = g.op('Reshape', [g.op('MatMul', [denseProbs, g.op('Flatten', [pastValue], { axis: int(2) })]), shapeHeadPairs]); // [kvH, G, kvH, D]
      let pastContext = g.op('ReduceSum', [g.op('Mul', [allPairs, kvEye]), g.int64s([2])], { keepdims: int(0) }); // [kvH, G, D]
      if (packed && prefixLength && packedValue) {
        const prefixProbs = g.op('Squeeze', [g.op('Slice', [probs, zero, prefixLength, axis4]), g.int64s([0, 3])]); // [kvH, G, Q]
        pastContext = g.op('Add', [pastContext, readPacked(packedValue, `prefix_context_${l}`, (planes) => packedValueContext(packedValue, planes, prefixProbs))]); // [kvH, G, D]
      }
      const context = g.op('Add', [g.op('Reshape', [pastContext, shapeOneQueryContext]), g.op('MatMul', [newProbs, newValueH])]); // [1, kvH, G, 1, D]
      return [probs, context];
    };

    // The statistics are taken where the probabilities are made, so the [kvH, G, q, P+q] probabilities never leave
    // the branch that computed them: an If output (or a value a later If reads) of that size stays allocated until
    // the whole call ends, one per layer, which at a 4k prefill is gigabytes.
    const withStatistics = (attend: () => string[], oneQuery: boolean) => (): string[] => {
      const [probs, context] = attend();
      const window = g.op('Slice', [probs, windowStart, int64Max, axis3]); // [1, kvH, G, w, P+q]
      const recent = g.op('Pad', [g.op('Slice', [probs, sumStart, int64Max, axis3]), padOneRowAtEnd]); // [1, kvH, G, m+1, P+q]
      const suffixSums = g.op('CumSum', [recent, axis3], { reverse: int(1) });
      const windowSums = g.op('Gather', [suffixSums, sumPick], { axis: int(3) }); // [1, kvH, G, S, P+q]
      // One query's sums over queries are its probabilities: a view, not a reduction.
      const keySums = oneQuery ? g.op('Squeeze', [probs, axis3]) : g.op('ReduceSum', [probs, axis3], { keepdims: int(0) }); // [1, kvH, G, P+q]
      return [context, window, keySums, windowSums];
    };
    const float4 = [OnnxDataType.FLOAT, OnnxDataType.FLOAT, OnnxDataType.FLOAT, OnnxDataType.FLOAT];
    // A dense cache feeds no packed slots: it skips the packed branches (and their If nodes) altogether.
    const decodeOne = (): string[] => {
      if (!packedValue) return withStatistics(() => attendOne(false), true)();
      const hasPacked = g.op('Greater', [g.op('Slice', [packedValue.shape, g.int64s([1]), g.int64s([2])]), zero]);
      return g.ifElse(hasPacked, `packed_${l}`, withStatistics(() => attendOne(true), true), withStatistics(() => attendOne(false), true), float4);
    };
    const [context, window, keySums, windowSums] =
      options.decodeFastPath === false
        ? withStatistics(attendMany, false)()
        : g.ifElse(singleQuery, `attend_${l}`, decodeOne, withStatistics(attendMany, false), float4);
    const contextTokens = g.op('Reshape', [g.op('Transpose', [context], { perm: ints([0, 3, 1, 2, 4]) }), toTokensByHeads]); // [q, H*D]
    const attended = linear(contextTokens, `${p}self_attn.o_proj.weight`, source.info(`${p}self_attn.o_proj.bias`) ? `${p}self_attn.o_proj.bias` : null); // [q, hidden]
    // Gemma 2 normalises the attention output before the residual (its post_attention_layernorm).
    hiddenState = g.op('Add', [hiddenState, gemma ? rmsNorm(attended, `${p}post_attention_layernorm.weight`) : attended]);

    // ---- attention statistics: the window rows asked for (none unless stats_rows > 0), key sums and queries ----
    g.op('Identity', [window], {}, `window_${l}`); // [1, kvH, G, w, P+q]
    g.op('Identity', [keySums], {}, `key_sums_${l}`); // [1, kvH, G, P+q]
    g.op('Identity', [windowSums], {}, `window_sums_${l}`); // [1, kvH, G, S, P+q]
    g.op('Identity', [queries], {}, `queries_${l}`); // [1, q, kvH, G, D]

    // ---- feed-forward: norm -> SwiGLU (Gemma 2: GeGLU) -> down (Gemma 2: -> norm) ----
    const y = rmsNorm(hiddenState, gemma ? `${p}pre_feedforward_layernorm.weight` : `${p}post_attention_layernorm.weight`);
    const gate = linear(y, `${p}mlp.gate_proj.weight`, null); // [q, ffn]
    const up = linear(y, `${p}mlp.up_proj.weight`, null);
    const activated = g.op('Mul', [gemma ? geluTanh(gate) : g.op('Mul', [gate, g.op('Sigmoid', [gate])]), up]);
    const down = linear(activated, `${p}mlp.down_proj.weight`, null); // [q, hidden]
    hiddenState = g.op('Add', [hiddenState, gemma ? rmsNorm(down, `${p}post_feedforward_layernorm.weight`) : down]);
  }

  const selected = g.op('Gather', [hiddenState, logitsRows], { axis: int(0) }); // [r, hidden]
  const normed = rmsNorm(selected, 'model.norm.weight');
  g.op('Identity', [softCap(linear(normed, lmHeadName(source), null), config.finalLogitCap)], {}, 'logits');
  g.output('logits', OnnxDataType.FLOAT, ['r', vocabSize]);
  for (let l = 0; l < config.numLayers; l++) {
    g.output(`window_${l}`, OnnxDataType.FLOAT, [1, KVH, G, 'w', `keys_${l}`]);
    g.output(`key_sums_${l}`, OnnxDataType.FLOAT);
    g.output(`window_sums_${l}`, OnnxDataType.FLOAT);
    g.output(`queries_${l}`, OnnxDataType.FLOAT);
  }

  const opsets = [{ domain: '', version: 17 }];
  if (g.usesMicrosoftDomain) opsets.push({ domain: 'com.microsoft', version: 1 });
  const bytes = modelProto(
    { name: 'kvlens_decoder', nodes: g.nodes, initializers: [...g.constants, ...g.sink.tensors], inputs: g.inputs, outputs: g.outputs },
    opsets,
  );
  return { bytes, inputNames: g.inputNames, outputNames: g.outputNames, weightBytes: g.sink.byteLength };
}

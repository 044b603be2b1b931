// Builds the decoder as an ONNX graph from a config and a WeightMap, at load time, in memory.
//
// Graph inputs (batch is always 1):
//   input_ids     int64 [1, q]            new tokens
//   position_ids  int64 [1, q]            their original RoPE positions
//   logits_rows   int64 [r]               which new tokens get logits (all rows, or just the last)
//   causal_bias   float [q, q]            0 where new token i may see new token j (j <= i), -1e30 elsewhere
//   past_key_i    float [1, P_i, kvH, D]  layer i's cache, token-major, keys already rotated
//   past_value_i  float [1, P_i, kvH, D]
//   past_bias_i   float [1, P_i, kvH]     0 for a valid (slot, head), -1e30 for an empty one (token-major
//                                         like the cache and its validity mask)
// Graph outputs:
//   logits        float [r, vocab]
//   new_key_i     float [1, q, kvH, D]    rotated keys of the new tokens
//   new_value_i   float [1, q, kvH, D]
//   and, in the statistics variant only, per layer:
//   window_i      float [1, kvH, G, w', P_i + q]  probabilities of the last w' = min(w, q) queries
//   key_sums_i    float [1, kvH, G, P_i + q]      probabilities summed over all q queries
//   queries_i     float [1, q, kvH, G, D]         rotated queries
// Query head h = kvHead * G + g, so [kvH, G] flattens to the head order transformers uses.
//
// Attention never concatenates the past cache with the new keys (that would copy the whole cache every
// step): past and new scores are computed separately, joined (small: G*q x (P+q)), soft-maxed, split again.
// An If node picks the attention form by the number of new tokens: several (prefill) transpose the past
// into heads-major layout once; one (decode) reads the token-major past in place (see attendOne).
// Everything else is plain opset-17 ops (RMSNorm, RoPE and SwiGLU spelled out), so this graph is checked
// op for op against reference.ts; int4 swaps Gemm for com.microsoft MatMulNBits and nothing else.

import type { ModelConfig } from '../config';
import type { WeightMap } from '../types';
import { resolveWeights, ropeInverseFrequencies, type ResolvedWeights } from '../reference';
import {
  graphProto,
  modelProto,
  nodeProto,
  tensorProto,
  valueInfo,
  OnnxDataType,
  type AttributeValue,
  type MessageWriter,
  type OnnxDataTypeCode,
} from './protobuf';
import type { Tensor } from '../types';

export type WeightQuantization = 'fp32' | 'int4';

export interface GraphOptions {
  quantization: WeightQuantization;
  /** Build the statistics variant with this attention window (>= 1), or omit for plain generation. */
  statsWindow?: number;
  /** Block size of int4 weights (power of two >= 16). */
  int4BlockSize?: number;
  /**
   * MatMulNBits accuracy_level: 4 (default) quantizes activations to int8 for speed; 0 keeps fp32
   * activations so the int4 graph can be checked against the reference on dequantized weights.
   */
  int4AccuracyLevel?: 0 | 4;
  /** Keep weights in a side file: 'auto' (default) does so only above EXTERNAL_DATA_THRESHOLD. */
  externalData?: 'auto' | 'always' | 'never';
  /** Route one-token calls through the copy-free decode attention (default true; false for comparisons). */
  decodeFastPath?: boolean;
}

export interface BuiltGraph {
  /** The ModelProto. With external data it holds only the graph and small constants. */
  bytes: Uint8Array;
  inputNames: string[];
  outputNames: string[];
  /** Large initializers kept out of the ModelProto, to be written in order to `file` next to the model. */
  externalData: { file: string; chunks: Uint8Array[]; byteLength: number } | null;
}

/**
 * Protobuf messages are capped at 2 GiB, and onnxruntime parses a model held in memory as one message:
 * above this many weight bytes the weights go to a side file (ONNX external data) instead.
 */
export const EXTERNAL_DATA_THRESHOLD = 1.5 * 1024 ** 3;
export const EXTERNAL_DATA_FILE = 'weights.bin';
/** Side-file offsets are page aligned so onnxruntime can memory-map the weights instead of copying them. */
const EXTERNAL_ALIGNMENT = 4096;

/** Additive mask value for "may not attend": finite so softmax never sees (-inf) - (-inf). */
export const MASKED = -1e30;
const INT64_MAX = 9223372036854775807n;

const ints = (value: number[]): AttributeValue => ({ kind: 'ints', value });
const int = (value: number): AttributeValue => ({ kind: 'int', value });

function bytesOf(data: Float32Array | Uint8Array | BigInt64Array): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** Packs a [N, K] fp32 matrix into MatMulNBits' 4-bit blocks (symmetric, implicit zero point 8, Q4_0-style scale). */
export function quantizeInt4(weight: Float32Array, n: number, k: number, blockSize: number): { packed: Uint8Array; scales: Float32Array } {
  const blocks = Math.ceil(k / blockSize);
  const blob = blockSize / 2;
  const packed = new Uint8Array(n * blocks * blob);
  const scales = new Float32Array(n * blocks);
  for (let row = 0; row < n; row++) {
    for (let b = 0; b < blocks; b++) {
      const start = row * k + b * blockSize;
      const end = Math.min(row * k + k, start + blockSize);
      // The largest-magnitude value (with its sign) lands exactly on level 0 = -8 steps, so all 16 levels
      // are used (llama.cpp's Q4_0 rule); the scale's sign follows it.
      let extreme = 0;
      for (let i = start; i < end; i++) if (Math.abs(weight[i]) > Math.abs(extreme)) extreme = weight[i];
      const scale = Math.fround(extreme / -8) || 1;
      scales[row * blocks + b] = scale;
      const out = (row * blocks + b) * blob;
      for (let i = 0; i < blockSize; i++) {
        const value = start + i < end ? weight[start + i] : 0;
        const level = Math.max(0, Math.min(15, Math.round(value / scale) + 8));
        packed[out + (i >> 1)] |= i & 1 ? level << 4 : level;
      }
    }
  }
  return { packed, scales };
}

/** The fp32 matrix an int4 block encoding stands for (what MatMulNBits multiplies by). */
/** The weights an int4 graph effectively multiplies by: every Linear weight replaced by its int4 round trip. */
export function int4RoundTripWeights(config: ModelConfig, weights: WeightMap, blockSize = 32): WeightMap {
  const resolved = resolveWeights(config, weights);
  const out: WeightMap = new Map(weights);
  const linearNames = (l: number): string[] =>
    ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj', 'mlp.gate_proj', 'mlp.up_proj', 'mlp.down_proj'].map(
      (n) => `model.layers.${l}.${n}.weight`,
    );
  const roundTrip = (tensor: Tensor): Tensor => {
    const [n, k] = tensor.shape;
    const { packed, scales } = quantizeInt4(tensor.data, n, k, blockSize);
    return { shape: tensor.shape, data: dequantizeInt4(packed, scales, n, k, blockSize), sourceDtype: tensor.sourceDtype };
  };
  for (let l = 0; l < config.numLayers; l++) for (const name of linearNames(l)) out.set(name, roundTrip(weights.get(name)!));
  // The lm_head is quantized even when tied, and so is the embedding table when whole blocks fit a row.
  out.set('lm_head.weight', roundTrip(resolved.lmHead));
  if (config.hiddenSize % blockSize === 0) out.set('model.embed_tokens.weight', roundTrip(resolved.embedding));
  return out;
}

export function dequantizeInt4(packed: Uint8Array, scales: Float32Array, n: number, k: number, blockSize: number): Float32Array {
  const blocks = Math.ceil(k / blockSize);
  const blob = blockSize / 2;
  const out = new Float32Array(n * k);
  for (let row = 0; row < n; row++) {
    for (let i = 0; i < k; i++) {
      const b = Math.floor(i / blockSize);
      const within = i % blockSize;
      const byte = packed[(row * blocks + b) * blob + (within >> 1)];
      const level = within & 1 ? byte >> 4 : byte & 15;
      out[row * k + i] = (level - 8) * scales[row * blocks + b];
    }
  }
  return out;
}

class GraphBuilder {
  nodes: MessageWriter[] = [];
  readonly initializers: MessageWriter[] = [];
  readonly inputs: MessageWriter[] = [];
  readonly outputs: MessageWriter[] = [];
  readonly inputNames: string[] = [];
  readonly outputNames: string[] = [];
  private counter = 0;
  usesMicrosoftDomain = false;

  /** A subgraph (If branch) made of the nodes `build` adds; it reads outer values by name. */
  subgraph(name: string, build: () => string[]): MessageWriter {
    const outer = this.nodes;
    this.nodes = [];
    // The branch's own node outputs are its outputs (no Identity: that would copy a score-sized tensor).
    const outputs = build().map((result) => valueInfo(result, OnnxDataType.FLOAT));
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

  private readonly pendingInitializers: { name: string; type: OnnxDataTypeCode; dims: number[]; bytes: Uint8Array }[] = [];

  initializer(name: string, type: OnnxDataTypeCode, dims: number[], data: Float32Array | Uint8Array | BigInt64Array): string {
    // Encoded at the end, once the total size says whether weights go to a side file.
    this.pendingInitializers.push({ name, type, dims, bytes: bytesOf(data) });
    return name;
  }

  /** Encodes every initializer, inline or (when `external`) large ones into a side file. */
  encodeInitializers(external: boolean): BuiltGraph['externalData'] {
    const chunks: Uint8Array[] = [];
    let offset = 0;
    for (const { name, type, dims, bytes } of this.pendingInitializers) {
      if (!external || bytes.length < 1024) {
        this.initializers.push(tensorProto(name, type, dims, bytes));
        continue;
      }
      const padding = (EXTERNAL_ALIGNMENT - (offset % EXTERNAL_ALIGNMENT)) % EXTERNAL_ALIGNMENT;
      if (padding) chunks.push(new Uint8Array(padding));
      offset += padding;
      chunks.push(bytes);
      this.initializers.push(tensorProto(name, type, dims, bytes, { file: EXTERNAL_DATA_FILE, offset, length: bytes.length }));
      offset += bytes.length;
    }
    return external ? { file: EXTERNAL_DATA_FILE, chunks, byteLength: offset } : null;
  }

  get initializerBytes(): number {
    return this.pendingInitializers.reduce((sum, i) => sum + i.bytes.length, 0);
  }

  int64s(values: (number | bigint)[], hint = 'const'): string {
    return this.initializer(this.fresh(hint), OnnxDataType.INT64, [values.length], BigInt64Array.from(values, (v) => BigInt(v)));
  }

  scalar(value: number, hint = 'scalar'): string {
    return this.initializer(this.fresh(hint), OnnxDataType.FLOAT, [], Float32Array.of(value));
  }

  input(name: string, type: OnnxDataTypeCode, shape: (number | string)[]): string {
    this.inputs.push(valueInfo(name, type, shape));
    this.inputNames.push(name);
    return name;
  }

  output(name: string, type: OnnxDataTypeCode, shape: (number | string)[]): void {
    this.outputs.push(valueInfo(name, type, shape));
    this.outputNames.push(name);
  }
}

export function buildDecoderGraph(config: ModelConfig, weights: WeightMap, options: GraphOptions): BuiltGraph {
  const resolved: ResolvedWeights = resolveWeights(config, weights);
  const { hiddenSize: hidden, numHeads: H, numKvHeads: KVH, headDim: D, vocabSize } = config;
  const G = H / KVH;
  const half = D / 2;
  const blockSize = options.int4BlockSize ?? 32;
  const g = new GraphBuilder();

  // ---- shared constants ----
  const axisLast = g.int64s([-1], 'axis_last');
  const zero = g.int64s([0], 'zero');
  const int64Max = g.int64s([INT64_MAX], 'int64_max');
  const eps = g.scalar(config.rmsNormEps, 'rms_eps');
  const queryScale = g.scalar(1 / Math.sqrt(D), 'query_scale');
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
  const kvEye = g.initializer('kv_eye', OnnxDataType.FLOAT, [KVH, 1, KVH, 1], eye);
  const kvZeros = g.initializer('kv_zeros', OnnxDataType.FLOAT, [1, KVH, 1, 1, 1], new Float32Array(KVH));
  const invFreq = g.initializer('rope_inv_freq', OnnxDataType.FLOAT, [half], ropeInverseFrequencies(config));

  const weightName = new Map<Tensor, string>();
  const weightInitializer = (name: string, tensor: Tensor): string => {
    const known = weightName.get(tensor);
    if (known) return known;
    g.initializer(name, OnnxDataType.FLOAT, tensor.shape, tensor.data);
    weightName.set(tensor, name);
    return name;
  };

  /** x [rows, in] -> [rows, out] with an HF Linear weight [out, in]. */
  const linear = (x: string, name: string, weight: Tensor, bias: Tensor | null): string => {
    const [n, k] = weight.shape;
    if (options.quantization === 'int4') {
      const { packed, scales } = quantizeInt4(weight.data, n, k, blockSize);
      const blocks = Math.ceil(k / blockSize);
      const inputs = [
        x,
        g.initializer(`${name}.q4`, OnnxDataType.UINT8, [n, blocks, blockSize / 2], packed),
        g.initializer(`${name}.scales`, OnnxDataType.FLOAT, [n * blocks], scales),
      ];
      if (bias) inputs.push('', '', weightInitializer(`${name}.bias`, bias));
      return g.op('MatMulNBits', inputs, { K: int(k), N: int(n), bits: int(4), block_size: int(blockSize), accuracy_level: int(options.int4AccuracyLevel ?? 4) }, undefined, 'com.microsoft');
    }
    const inputs = [x, weightInitializer(name, weight)];
    if (bias) inputs.push(weightInitializer(`${name}.bias`, bias));
    return g.op('Gemm', inputs, { transB: int(1) });
  };

  const rmsNorm = (x: string, weight: Tensor, name: string): string => {
    const meanSquare = g.op('ReduceMean', [g.op('Mul', [x, x])], { axes: ints([-1]), keepdims: int(1) });
    const inverseRms = g.op('Reciprocal', [g.op('Sqrt', [g.op('Add', [meanSquare, eps])])]);
    return g.op('Mul', [g.op('Mul', [x, inverseRms]), weightInitializer(name, weight)]);
  };

  /** Rotate-half RoPE on the last axis of x; cos/sin broadcast against x's leading axes. */
  const rope = (x: string, cos: string, sin: string): string => {
    const x1 = g.fresh('rope_x1');
    const x2 = g.fresh('rope_x2');
    g.nodes.push(nodeProto('Split', [x, ropeSplit], [x1, x2], g.fresh('Split'), { axis: int(-1) }));
    const first = g.op('Sub', [g.op('Mul', [x1, cos]), g.op('Mul', [x2, sin])]);
    const second = g.op('Add', [g.op('Mul', [x2, cos]), g.op('Mul', [x1, sin])]);
    return g.op('Concat', [first, second], { axis: int(-1) });
  };

  // ---- inputs ----
  const inputIds = g.input('input_ids', OnnxDataType.INT64, [1, 'q']);
  const positionIds = g.input('position_ids', OnnxDataType.INT64, [1, 'q']);
  const logitsRows = g.input('logits_rows', OnnxDataType.INT64, ['r']);
  const causalBias = g.input('causal_bias', OnnxDataType.FLOAT, ['q', 'q']);

  // RoPE angles in fp32 exactly as transformers: float(position) * inv_freq.
  const angles = g.op('Mul', [g.op('Unsqueeze', [g.op('Cast', [positionIds], { to: int(OnnxDataType.FLOAT) }), g.int64s([2])]), invFreq]);
  const cos = g.op('Cos', [angles]); // [1, q, D/2]
  const sin = g.op('Sin', [angles]);
  const cosKv = g.op('Unsqueeze', [cos, g.int64s([2])]); // [1, q, 1, D/2]
  const sinKv = g.op('Unsqueeze', [sin, g.int64s([2])]);
  const cosQuery = g.op('Unsqueeze', [cos, g.int64s([2, 3])]); // [1, q, 1, 1, D/2]
  const sinQuery = g.op('Unsqueeze', [sin, g.int64s([2, 3])]);

  const singleQuery = g.op('Equal', [g.op('Shape', [inputIds], { start: int(1), end: int(2) }), g.int64s([1])]);
  const tokenIds = g.op('Reshape', [inputIds, axisLast]);
  let hiddenState: string; // [q, hidden]
  if (options.quantization === 'int4' && hidden % blockSize === 0) {
    // The embedding table is the largest tensor of small models: keep it in 4 bits too, dequantizing
    // only the looked-up rows.
    const { packed, scales } = quantizeInt4(resolved.embedding.data, vocabSize, hidden, blockSize);
    const blocks = hidden / blockSize;
    const zeroPointBytes = Math.ceil(blocks / 2);
    const inputs = [
      g.initializer('model.embed_tokens.weight.gather_q4', OnnxDataType.UINT8, [vocabSize, hidden / 2], packed),
      tokenIds,
      g.initializer('model.embed_tokens.weight.gather_scales', OnnxDataType.FLOAT, [vocabSize, blocks], scales),
      // Explicit zero point 8 (two 4-bit values per byte), the one MatMulNBits implies.
      g.initializer('model.embed_tokens.weight.gather_zero_points', OnnxDataType.UINT8, [vocabSize, zeroPointBytes], new Uint8Array(vocabSize * zeroPointBytes).fill(0x88)),
    ];
    const attributes = { gather_axis: int(0), quantize_axis: int(1), block_size: int(blockSize), bits: int(4) };
    hiddenState = g.op('GatherBlockQuantized', inputs, attributes, undefined, 'com.microsoft');
  } else {
    hiddenState = g.op('Gather', [weightInitializer('model.embed_tokens.weight', resolved.embedding), tokenIds], { axis: int(0) });
  }

  const statsOutputs: { name: string; shape: (number | string)[] }[] = [];
  for (let l = 0; l < config.numLayers; l++) {
    const lw = resolved.layers[l];
    const p = `model.layers.${l}.`;
    const pastKey = g.input(`past_key_${l}`, OnnxDataType.FLOAT, [1, `past_${l}`, KVH, D]);
    const pastValue = g.input(`past_value_${l}`, OnnxDataType.FLOAT, [1, `past_${l}`, KVH, D]);
    const pastBias = g.input(`past_bias_${l}`, OnnxDataType.FLOAT, [1, `past_${l}`, KVH]);

    const x = rmsNorm(hiddenState, lw.inputNorm, `${p}input_layernorm.weight`);
    const queryFlat = linear(x, `${p}self_attn.q_proj.weight`, lw.q, lw.qBias);
    const keyFlat = linear(x, `${p}self_attn.k_proj.weight`, lw.k, lw.kBias);
    const valueFlat = linear(x, `${p}self_attn.v_proj.weight`, lw.v, lw.vBias);

    const queries = rope(g.op('Reshape', [queryFlat, toQueryHeads]), cosQuery, sinQuery); // [1, q, kvH, G, D]
    const newKey = g.op('Identity', [rope(g.op('Reshape', [keyFlat, toKvHeads]), cosKv, sinKv)], {}, `new_key_${l}`);
    const newValue = g.op('Reshape', [valueFlat, toKvHeads], {}, `new_value_${l}`);
    g.output(newKey, OnnxDataType.FLOAT, [1, 'q', KVH, D]);
    g.output(newValue, OnnxDataType.FLOAT, [1, 'q', KVH, D]);

    const axis3 = g.int64s([3]);
    // Heads-major views for batched matmuls: [1, kvH, G, q, D] queries against [1, kvH, 1, D, keys].
    const queryHeads = g.op('Mul', [g.op('Transpose', [queries], { perm: ints([0, 2, 3, 1, 4]) }), queryScale]);
    const newKeyT = g.op('Transpose', [g.op('Unsqueeze', [newKey, axis3])], { perm: ints([0, 2, 3, 4, 1]) }); // [1, kvH, 1, D, q]
    const newValueH = g.op('Transpose', [g.op('Unsqueeze', [newValue, axis3])], { perm: ints([0, 2, 3, 1, 4]) }); // [1, kvH, 1, q, D]
    const pastLength = g.op('Shape', [pastKey], { start: int(1), end: int(2) });
    const axis4 = g.int64s([4]);

    // Many queries (prefill): join past and new keys/values once per call (a copy of the cache, small
    // next to the q x (P+q) scores), so the scores are made, soft-maxed and used without being split.
    const attendMany = (): string[] => {
      const keysT = g.op('Concat', [g.op('Transpose', [g.op('Unsqueeze', [pastKey, axis3])], { perm: ints([0, 2, 3, 4, 1]) }), newKeyT], { axis: int(4) }); // [1, kvH, 1, D, P+q]
      const valuesH = g.op('Concat', [g.op('Transpose', [g.op('Unsqueeze', [pastValue, axis3])], { perm: ints([0, 2, 3, 1, 4]) }), newValueH], { axis: int(3) }); // [1, kvH, 1, P+q, D]
      // Bias over every key: the past part per (kv head, slot), the new part causal per (query, key).
      const pastBiasRow = g.op('Unsqueeze', [g.op('Transpose', [pastBias], { perm: ints([0, 2, 1]) }), g.int64s([2, 3])]); // [1, kvH, 1, 1, P]
      const pastBiasRows = g.op('Add', [pastBiasRow, g.op('Slice', [causalBias, zero, g.int64s([1]), g.int64s([1])])]); // + [q, 1] zeros -> [1, kvH, 1, q, P]
      const causalRows = g.op('Add', [causalBias, kvZeros]); // [1, kvH, 1, q, q]
      const bias = g.op('Concat', [pastBiasRows, causalRows], { axis: int(4) }); // [1, kvH, 1, q, P+q]
      const probs = g.op('Softmax', [g.op('Add', [g.op('MatMul', [queryHeads, keysT]), bias])], { axis: int(-1) }); // [1, kvH, G, q, P+q]
      return [probs, g.op('MatMul', [probs, valuesH])]; // context [1, kvH, G, q, D]
    };

    // One query (decode): read the token-major past in place as [P, kvH*D] instead of transposing the whole
    // cache every step. Against a block-diagonal query matrix one matmul gives every head's scores (the
    // off-diagonal blocks are zeros: kvH times the multiply-adds of a per-head product, but decode is bound
    // by reading the cache, which now happens once and without a copy).
    const attendOne = (): string[] => {
      const queryColumns = g.op('Reshape', [g.op('Transpose', [queryHeads], { perm: ints([0, 4, 1, 2, 3]) }), shapeQueryColumns]); // [1, D, kvH, G]
      const blockQuery = g.op('Reshape', [g.op('Mul', [queryColumns, kvEye]), shapeBlockQuery]); // [kvH*D, H]
      const pastScores = g.op('MatMul', [g.op('Flatten', [pastKey], { axis: int(2) }), blockQuery]); // [P, H]
      const pastScoresByHead = g.op('Reshape', [pastScores, g.op('Concat', [pastLength, kvGroupDims], { axis: int(0) })]); // [P, kvH, G]
      const biasByHead = g.op('Transpose', [pastBias], { perm: ints([1, 2, 0]) }); // [P, kvH, 1]: moves a unit axis only
      const pastScoresMasked = g.op('Transpose', [g.op('Add', [pastScoresByHead, biasByHead])], { perm: ints([1, 2, 0]) }); // [kvH, G, P]
      const pastScores5 = g.op('Unsqueeze', [pastScoresMasked, g.int64s([0, 3])]); // [1, kvH, G, 1, P]
      const newScores = g.op('Add', [g.op('MatMul', [queryHeads, newKeyT]), causalBias]); // [1, kvH, G, 1, 1]
      const probs = g.op('Softmax', [g.op('Concat', [pastScores5, newScores], { axis: int(4) })], { axis: int(-1) }); // [1, kvH, G, 1, P+1]
      const pastProbs = g.op('Flatten', [g.op('Slice', [probs, zero, pastLength, axis4])], { axis: int(4) }); // [H, P]
      const newProbs = g.op('Slice', [probs, pastLength, int64Max, axis4]); // [1, kvH, G, 1, 1]
      const allPairs = g.op('Reshape', [g.op('MatMul', [pastProbs, g.op('Flatten', [pastValue], { axis: int(2) })]), shapeHeadPairs]); // [kvH, G, kvH, D]
      const pastContext = g.op('ReduceSum', [g.op('Mul', [allPairs, kvEye]), g.int64s([2])], { keepdims: int(0) }); // [kvH, G, D]
      const context = g.op('Add', [g.op('Reshape', [pastContext, shapeOneQueryContext]), g.op('MatMul', [newProbs, newValueH])]); // [1, kvH, G, 1, D]
      return [probs, context];
    };

    let probs: string;
    let context: string;
    if (options.decodeFastPath === false) {
      [probs, context] = attendMany();
    } else {
      probs = g.fresh('probs');
      context = g.fresh('context');
      g.nodes.push(
        nodeProto('If', [singleQuery], [probs, context], g.fresh('If'), {
          then_branch: { kind: 'graph', value: g.subgraph(`attend_one_${l}`, attendOne) },
          else_branch: { kind: 'graph', value: g.subgraph(`attend_many_${l}`, attendMany) },
        }),
      );
    }
    const contextTokens = g.op('Reshape', [g.op('Transpose', [context], { perm: ints([0, 3, 1, 2, 4]) }), toTokensByHeads]); // [q, H*D]
    hiddenState = g.op('Add', [hiddenState, linear(contextTokens, `${p}self_attn.o_proj.weight`, lw.o, null)]);

    if (options.statsWindow !== undefined) {
      const w = options.statsWindow;
      g.op('Slice', [probs, g.int64s([-w]), int64Max, axis3], {}, `window_${l}`);
      g.op('ReduceSum', [probs, axis3], { keepdims: int(0) }, `key_sums_${l}`);
      g.op('Identity', [queries], {}, `queries_${l}`);
      statsOutputs.push(
        { name: `window_${l}`, shape: [1, KVH, G, 'w', `keys_${l}`] },
        { name: `key_sums_${l}`, shape: [1, KVH, G, `keys_${l}`] },
        { name: `queries_${l}`, shape: [1, 'q', KVH, G, D] },
      );
    }

    const y = rmsNorm(hiddenState, lw.postNorm, `${p}post_attention_layernorm.weight`);
    const gate = linear(y, `${p}mlp.gate_proj.weight`, lw.gate, null);
    const up = linear(y, `${p}mlp.up_proj.weight`, lw.up, null);
    const activated = g.op('Mul', [g.op('Mul', [gate, g.op('Sigmoid', [gate])]), up]);
    hiddenState = g.op('Add', [hiddenState, linear(activated, `${p}mlp.down_proj.weight`, lw.down, null)]);
  }

  const selected = g.op('Gather', [g.op('Reshape', [hiddenState, toTokensByHidden]), logitsRows], { axis: int(0) }); // [r, hidden]
  const normed = rmsNorm(selected, resolved.finalNorm, 'model.norm.weight');
  const lmHeadName = resolved.lmHead === resolved.embedding ? 'model.embed_tokens.weight' : 'lm_head.weight';
  g.op('Identity', [linear(normed, lmHeadName, resolved.lmHead, null)], {}, 'logits');
  g.output('logits', OnnxDataType.FLOAT, ['r', vocabSize]);
  for (const s of statsOutputs) g.output(s.name, OnnxDataType.FLOAT, s.shape);

  const opsets = [{ domain: '', version: 17 }];
  if (g.usesMicrosoftDomain) opsets.push({ domain: 'com.microsoft', version: 1 });
  const mode = options.externalData ?? 'auto';
  const externalData = g.encodeInitializers(mode === 'always' || (mode === 'auto' && g.initializerBytes > EXTERNAL_DATA_THRESHOLD));
  const bytes = modelProto(
    { name: 'kvlens_decoder', nodes: g.nodes, initializers: g.initializers, inputs: g.inputs, outputs: g.outputs },
    opsets,
  );
  return { bytes, inputNames: g.inputNames, outputNames: g.outputNames, externalData };
}

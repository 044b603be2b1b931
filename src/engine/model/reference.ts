// The oracle forward pass: plain loops, one token and one head at a time, written to be read top to bottom
// and checked by eye against transformers' modeling_llama / modeling_qwen2 / modeling_qwen3 / modeling_mistral. It is slow on purpose (no
// batching tricks); the ONNX path is tested against it, and it is tested against transformers' logits.
//
// Conventions (all as transformers):
//   RMSNorm(x) = weight * (x * rsqrt(mean(x^2) + eps))
//   RoPE "rotate half": out[i] = x[i]*cos - x[i+D/2]*sin, out[i+D/2] = x[i+D/2]*cos + x[i]*sin,
//     angle = position * invFreq[i] computed in fp32, invFreq[i] = 1 / theta^(2i/D) (fp32), optionally
//     rescaled by the Llama-3 rule.
//   Qwen3's q/k norm: each query and key head is RMSNorm-ed over its D values (own weights), before RoPE.
//   GQA: query head h reads kv head floor(h / (numHeads / numKvHeads)).
//   Sliding window W (Mistral, windowed Qwen layers): a query at position p sees keys at p - W + 1 .. p only.
//   MLP: down(silu(gate(x)) * up(x)).
//   Gemma 3 text: Gemma 2's layout with (1 + weight) q/k norms, no caps by default, RoPE base rope_local_base_freq
//     on sliding layers and rope_theta (inverse frequencies / linear factor) on full ones.
//   Gemma 2: RMSNorm scales by (1 + weight); embeddings times sqrt(hidden) (fp32); a norm after attention and
//     around the MLP (pre_/post_feedforward_layernorm); MLP down(gelu_tanh(gate(x)) * up(x)); q·k times
//     query_pre_attn_scalar^-0.5, then cap · tanh(s / cap) before the mask; final logits capped the same way.

import { isGemma, type ModelConfig } from './config';
import { windowSumCounts, type DecoderForward, type ForwardInput, type ForwardOutput, type LayerAttention, type WeightMap, type Tensor } from './types';
import type { LayerKV } from '../kv/cache';
import { KvlensError } from '../errors';
import type { KvDtype } from '../kv/kv-dtype';

const f32 = Math.fround;

/** True when `layer` uses Gemma 3's local RoPE table (a sliding-window layer of a model with slidingRopeTheta). */
export function usesSlidingRope(config: ModelConfig, layer: number): boolean {
  return config.slidingRopeTheta !== undefined && (config.layerWindows?.[layer] ?? null) !== null;
}

/**
 * Per-pair inverse frequencies [D/2] exactly as transformers computes them (fp32), Llama-3 scaling included; for
 * `layer` of a Gemma 3 model, the table that layer's type uses.
 */
export function ropeInverseFrequencies(config: ModelConfig, layer = -1): Float32Array {
  const half = config.headDim / 2;
  const invFreq = new Float32Array(half);
  const local = layer >= 0 && usesSlidingRope(config, layer);
  const theta = local ? (config.slidingRopeTheta as number) : config.ropeTheta;
  for (let i = 0; i < half; i++) {
    // torch: base ** (arange(0, dim, 2).float() / dim), then 1.0 / that, all in fp32.
    const exponent = f32(f32(2 * i) / config.headDim);
    invFreq[i] = f32(1 / f32(Math.pow(theta, exponent)));
  }
  if (local) return invFreq;
  if (config.ropeLinearFactor !== undefined) return invFreq.map((f) => f32(f / (config.ropeLinearFactor as number)));
  const scaling = config.ropeScaling;
  if (scaling === null) return invFreq;
  // Llama 3.x: long wavelengths are slowed down by `factor`, short ones kept, the band between interpolated.
  const lowFreqWavelen = scaling.originalMaxPositionEmbeddings / scaling.lowFreqFactor;
  const highFreqWavelen = scaling.originalMaxPositionEmbeddings / scaling.highFreqFactor;
  for (let i = 0; i < half; i++) {
    const freq = invFreq[i];
    const wavelen = f32((2 * Math.PI) / freq);
    let scaled = wavelen > lowFreqWavelen ? f32(freq / scaling.factor) : freq;
    const isMedium = !(wavelen < highFreqWavelen) && !(wavelen > lowFreqWavelen);
    if (isMedium) {
      const smooth = f32(
        (scaling.originalMaxPositionEmbeddings / wavelen - scaling.lowFreqFactor) / (scaling.highFreqFactor - scaling.lowFreqFactor),
      );
      scaled = f32(f32((1 - smooth) * f32(scaled / scaling.factor)) + f32(smooth * scaled));
    }
    invFreq[i] = scaled;
  }
  return invFreq;
}

/** cos/sin tables [q, D/2] for the given positions (angle rounded to fp32 like torch's fp32 product). */
export function ropeTables(invFreq: Float32Array, positions: ArrayLike<number>): { cos: Float32Array; sin: Float32Array } {
  const half = invFreq.length;
  const cos = new Float32Array(positions.length * half);
  const sin = new Float32Array(positions.length * half);
  for (let t = 0; t < positions.length; t++) {
    for (let i = 0; i < half; i++) {
      const angle = f32(f32(positions[t]) * invFreq[i]);
      cos[t * half + i] = Math.cos(angle);
      sin[t * half + i] = Math.sin(angle);
    }
  }
  return { cos, sin };
}

/** Rotates one head vector in place: x[offset .. offset+D). */
function applyRope(x: Float32Array, offset: number, headDim: number, cos: Float32Array, sin: Float32Array, tableOffset: number): void {
  const half = headDim / 2;
  for (let i = 0; i < half; i++) {
    const x1 = x[offset + i];
    const x2 = x[offset + half + i];
    const c = cos[tableOffset + i];
    const s = sin[tableOffset + i];
    x[offset + i] = x1 * c - x2 * s;
    x[offset + half + i] = x2 * c + x1 * s;
  }
}

/** RMSNorm of each D-wide head of x[offset ..] in place (Qwen3's q_norm / k_norm). */
function rmsNormHeads(x: Float32Array, offset: number, heads: number, headDim: number, weight: Float32Array, eps: number): void {
  for (let h = 0; h < heads; h++) {
    const start = offset + h * headDim;
    x.set(rmsNorm(x.subarray(start, start + headDim), weight, eps), start);
  }
}

function rmsNorm(x: Float32Array, weight: Float32Array, eps: number): Float32Array {
  let sumSquares = 0;
  for (let i = 0; i < x.length; i++) sumSquares += x[i] * x[i];
  const scale = f32(1 / Math.sqrt(f32(sumSquares / x.length) + eps));
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = weight[i] * f32(x[i] * scale);
  return out;
}

/** y[out] = W[out, in] · x[in] (+ bias[out]), accumulated in float64. */
function linear(x: Float32Array, weight: Tensor, bias: Tensor | null): Float32Array {
  const [outDim, inDim] = weight.shape;
  const w = weight.data;
  const y = new Float32Array(outDim);
  for (let o = 0; o < outDim; o++) {
    let acc = bias ? bias.data[o] : 0;
    const row = o * inDim;
    for (let i = 0; i < inDim; i++) acc += w[row + i] * x[i];
    y[o] = acc;
  }
  return y;
}

const silu = (v: number): number => v / (1 + Math.exp(-v));
/** transformers' gelu_pytorch_tanh. */
const geluTanh = (v: number): number => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v * v * v)));
const softCap = (v: number, cap: number | undefined): number => (cap === undefined ? v : cap * Math.tanh(v / cap));

/** Gemma's norm weights scale by (1 + weight), rounded to fp32 as transformers adds them. */
export function effectiveNormWeight(config: ModelConfig, weight: Float32Array): Float32Array {
  return isGemma(config) ? weight.map((w) => f32(1 + w)) : weight;
}

function requireWeight(weights: WeightMap, name: string, shape: number[]): Tensor {
  const tensor = weights.get(name);
  if (!tensor) throw new KvlensError(`missing weight ${name}`, 'weights');
  if (tensor.shape.length !== shape.length || tensor.shape.some((d, i) => d !== shape[i])) {
    throw new KvlensError(`weight ${name} has shape [${tensor.shape.join(', ')}], expected [${shape.join(', ')}]`, 'weights');
  }
  return tensor;
}

interface LayerWeights {
  inputNorm: Tensor;
  q: Tensor;
  k: Tensor;
  v: Tensor;
  qBias: Tensor | null;
  kBias: Tensor | null;
  vBias: Tensor | null;
  /** Qwen3's per-head norms on queries and keys, [headDim]. */
  qNorm: Tensor | null;
  kNorm: Tensor | null;
  o: Tensor;
  oBias: Tensor | null;
  postNorm: Tensor;
  /** Gemma 2's norms around the MLP (its post_attention_layernorm normalises the attention output instead). */
  preFfnNorm: Tensor | null;
  postFfnNorm: Tensor | null;
  gate: Tensor;
  up: Tensor;
  down: Tensor;
}

export interface ResolvedWeights {
  embedding: Tensor;
  layers: LayerWeights[];
  finalNorm: Tensor;
  /** [vocab, hidden]; the embedding itself when tied. */
  lmHead: Tensor;
}

/** Looks up every tensor the decoder needs under its Hugging Face name, checking shapes. */
export function resolveWeights(config: ModelConfig, weights: WeightMap): ResolvedWeights {
  const { hiddenSize: hidden, numHeads, numKvHeads, headDim, intermediateSize: ffn, vocabSize } = config;
  const layers: LayerWeights[] = [];
  for (let l = 0; l < config.numLayers; l++) {
    const p = `model.layers.${l}.`;
    const bias = (name: string, size: number): Tensor | null => (config.attentionBias ? requireWeight(weights, p + name, [size]) : null);
    layers.push({
      inputNorm: requireWeight(weights, `${p}input_layernorm.weight`, [hidden]),
      q: requireWeight(weights, `${p}self_attn.q_proj.weight`, [numHeads * headDim, hidden]),
      k: requireWeight(weights, `${p}self_attn.k_proj.weight`, [numKvHeads * headDim, hidden]),
      v: requireWeight(weights, `${p}self_attn.v_proj.weight`, [numKvHeads * headDim, hidden]),
      qBias: bias('self_attn.q_proj.bias', numHeads * headDim),
      kBias: bias('self_attn.k_proj.bias', numKvHeads * headDim),
      vBias: bias('self_attn.v_proj.bias', numKvHeads * headDim),
      qNorm: config.qkNorm ? requireWeight(weights, `${p}self_attn.q_norm.weight`, [headDim]) : null,
      kNorm: config.qkNorm ? requireWeight(weights, `${p}self_attn.k_norm.weight`, [headDim]) : null,
      o: requireWeight(weights, `${p}self_attn.o_proj.weight`, [hidden, numHeads * headDim]),
      // Only Llama's and Qwen3's attention_bias puts one here; the loader admits it for those alone.
      oBias: weights.has(`${p}self_attn.o_proj.bias`) ? requireWeight(weights, `${p}self_attn.o_proj.bias`, [hidden]) : null,
      postNorm: requireWeight(weights, `${p}post_attention_layernorm.weight`, [hidden]),
      preFfnNorm: isGemma(config) ? requireWeight(weights, `${p}pre_feedforward_layernorm.weight`, [hidden]) : null,
      postFfnNorm: isGemma(config) ? requireWeight(weights, `${p}post_feedforward_layernorm.weight`, [hidden]) : null,
      gate: requireWeight(weights, `${p}mlp.gate_proj.weight`, [ffn, hidden]),
      up: requireWeight(weights, `${p}mlp.up_proj.weight`, [ffn, hidden]),
      down: requireWeight(weights, `${p}mlp.down_proj.weight`, [hidden, ffn]),
    });
  }
  const embedding = requireWeight(weights, 'model.embed_tokens.weight', [vocabSize, hidden]);
  const lmHead =
    config.tieWordEmbeddings && !weights.has('lm_head.weight') ? embedding : requireWeight(weights, 'lm_head.weight', [vocabSize, hidden]);
  return { embedding, layers, finalNorm: requireWeight(weights, 'model.norm.weight', [hidden]), lmHead };
}

/** Checks a forward input against the model: lengths, token range, one cache per layer of the right shape. */
export function validateForwardInput(config: ModelConfig, input: ForwardInput): void {
  const q = input.tokens.length;
  if (q === 0) throw new KvlensError('forward needs at least one new token', 'forward input');
  if (input.positions.length !== q) {
    throw new KvlensError(`got ${q} tokens but ${input.positions.length} positions`, 'forward input');
  }
  for (let t = 0; t < q; t++) {
    const id = input.tokens[t];
    if (!Number.isInteger(id) || id < 0 || id >= config.vocabSize) {
      throw new KvlensError(`token id ${id} at index ${t} is outside the vocabulary (0..${config.vocabSize - 1})`, 'forward input');
    }
    if (!Number.isInteger(input.positions[t]) || input.positions[t] < 0) {
      throw new KvlensError(`position ${input.positions[t]} at index ${t} must be a non-negative integer`, 'forward input');
    }
  }
  if (input.past.length !== config.numLayers) {
    throw new KvlensError(`past cache has ${input.past.length} layers, the model has ${config.numLayers}`, 'forward input');
  }
  const row = config.numKvHeads * config.headDim;
  input.past.forEach((layer, l) => {
    if (layer.numKvHeads !== config.numKvHeads || layer.headDim !== config.headDim) {
      throw new KvlensError(
        `past layer ${l} is [*, ${layer.numKvHeads}, ${layer.headDim}], the model needs [*, ${config.numKvHeads}, ${config.headDim}]`,
        'forward input',
      );
    }
    if (layer.quantized) {
      // Checked as held: reading keys/values here would dequantize the whole store.
      const { tokens, bits, keys, values, residual } = layer.quantized;
      const codeBytes = (layer.numKvHeads * tokens * layer.headDim * bits) / 8;
      if (tokens + residual.length !== layer.length || keys.codeBytes !== codeBytes || values.codeBytes !== codeBytes) {
        throw new KvlensError(`past layer ${l}: its quantized slots (${tokens} + ${residual.length} dense) do not add up to its length ${layer.length}`, 'forward input');
      }
      return;
    }
    const keys = layer.stored?.keys ?? layer.keys;
    const values = layer.stored?.values ?? layer.values;
    if (keys.length < layer.length * row || values.length < layer.length * row) {
      throw new KvlensError(`past layer ${l} holds fewer keys/values than its length ${layer.length}`, 'forward input');
    }
    if (layer.valid && layer.valid.length < layer.length * config.numKvHeads) {
      throw new KvlensError(`past layer ${l} has a validity mask shorter than its length ${layer.length}`, 'forward input');
    }
  });
}

export function argmax(values: Float32Array, offset = 0, length = values.length - offset): number {
  let best = 0;
  for (let i = 1; i < length; i++) if (values[offset + i] > values[offset + best]) best = i;
  return best;
}

export class ReferenceForward implements DecoderForward {
  private readonly w: ResolvedWeights;
  /** Per layer (Gemma 3's local and global layers differ). */
  private readonly invFreq: Float32Array[];

  constructor(
    readonly config: ModelConfig,
    weights: WeightMap,
    /** The cache dtype prefill stores; this forward decodes 16-bit caches to fp32 when it reads them. */
    readonly kvDtype: KvDtype = 'fp32',
  ) {
    this.w = resolveWeights(config, weights);
    this.invFreq = Array.from({ length: config.numLayers }, (_, l) => ropeInverseFrequencies(config, l));
  }

  async forward(input: ForwardInput): Promise<ForwardOutput> {
    return this.forwardSync(input);
  }

  forwardSync(input: ForwardInput): ForwardOutput {
    validateForwardInput(this.config, input);
    const { hiddenSize: hidden, numHeads: H, numKvHeads: KVH, headDim: D, rmsNormEps: eps, vocabSize } = this.config;
    const q = input.tokens.length;
    const group = H / KVH;
    const scale = this.config.attentionScale ?? 1 / Math.sqrt(D);
    const gemma = isGemma(this.config);
    const norm = (x: Float32Array, weight: Tensor): Float32Array => rmsNorm(x, effectiveNormWeight(this.config, weight.data), eps);
    const embeddingScale = gemma ? f32(Math.sqrt(hidden)) : 1;
    const request = input.attention;
    const half = D / 2;

    // Residual stream, one [hidden] vector per new token.
    const residual: Float32Array[] = [];
    for (let t = 0; t < q; t++) {
      const id = input.tokens[t];
      const row = this.w.embedding.data.slice(id * hidden, (id + 1) * hidden);
      residual.push(embeddingScale === 1 ? row : row.map((v) => v * embeddingScale));
    }

    const newKeys: Float32Array[] = [];
    const newValues: Float32Array[] = [];
    const attention: LayerAttention[] | null = request ? [] : null;

    for (let l = 0; l < this.config.numLayers; l++) {
      const lw = this.w.layers[l];
      const past: LayerKV = input.past[l];
      const { cos, sin } = ropeTables(this.invFreq[l], input.positions);
      const P = past.length;
      const T = P + q; // keys visible to this call: past slots, then the new tokens
      const window = this.config.layerWindows?.[l] ?? null;
      // A key at position k is out of a windowed layer's reach from a query at position p once p - k >= W.
      const outOfWindow = (queryPosition: number, keyPosition: number): boolean => window !== null && queryPosition - keyPosition >= window;

      // q/k/v projections and RoPE for every new token.
      const queries = new Float32Array(q * H * D); // [q, H, D]
      const keys = new Float32Array(q * KVH * D); // [q, KVH, D]
      const values = new Float32Array(q * KVH * D); // [q, KVH, D]
      for (let t = 0; t < q; t++) {
        const x = norm(residual[t], lw.inputNorm);
        queries.set(linear(x, lw.q, lw.qBias), t * H * D);
        keys.set(linear(x, lw.k, lw.kBias), t * KVH * D);
        values.set(linear(x, lw.v, lw.vBias), t * KVH * D);
        if (lw.qNorm && lw.kNorm) {
          rmsNormHeads(queries, t * H * D, H, D, effectiveNormWeight(this.config, lw.qNorm.data), eps);
          rmsNormHeads(keys, t * KVH * D, KVH, D, effectiveNormWeight(this.config, lw.kNorm.data), eps);
        }
        for (let h = 0; h < H; h++) applyRope(queries, (t * H + h) * D, D, cos, sin, t * half);
        for (let h = 0; h < KVH; h++) applyRope(keys, (t * KVH + h) * D, D, cos, sin, t * half);
      }
      newKeys.push(keys);
      newValues.push(values);

      const statsRows = Math.min(request?.window ?? 0, q);
      const layerStats: LayerAttention | null = attention
        ? {
            window: statsRows > 0 ? new Float32Array(H * statsRows * T) : null,
            windowQueries: statsRows,
            keySums: request?.keySums ? new Float32Array(H * T) : null,
            queries: request?.queries ? queries.slice() : null,
          }
        : null;
      // Each requested count c, clipped to q: the last c queries' probabilities summed over them, [H, T].
      const sumCounts = windowSumCounts(request, q);
      if (layerStats && request?.windowSums) layerStats.windowSums = new Map(sumCounts.map((c) => [c, new Float32Array(H * T)]));

      // Attention: for each new token t and query head h, softmax over valid past slots and new tokens 0..t.
      const attended: Float32Array[] = [];
      const scores = new Float64Array(T);
      for (let t = 0; t < q; t++) {
        const out = new Float32Array(H * D); // [H, D]
        for (let h = 0; h < H; h++) {
          const kvh = Math.floor(h / group);
          const qOff = (t * H + h) * D;
          let max = -Infinity;
          for (let j = 0; j < T; j++) {
            scores[j] = -Infinity;
            let keyData: Float32Array;
            let kOff: number;
            if (j < P) {
              if (past.valid && !past.valid[j * KVH + kvh]) continue;
              if (outOfWindow(input.positions[t], past.positions[j * KVH + kvh])) continue;
              keyData = past.keys;
              kOff = (j * KVH + kvh) * D;
            } else {
              if (j - P > t) continue; // causal among the new tokens
              if (outOfWindow(input.positions[t], input.positions[j - P])) continue;
              keyData = keys;
              kOff = ((j - P) * KVH + kvh) * D;
            }
            let dot = 0;
            for (let d = 0; d < D; d++) dot += queries[qOff + d] * keyData[kOff + d];
            scores[j] = softCap(dot * scale, this.config.attentionLogitCap);
            if (scores[j] > max) max = scores[j];
          }
          let total = 0;
          for (let j = 0; j < T; j++) {
            scores[j] = scores[j] === -Infinity ? 0 : Math.exp(scores[j] - max);
            total += scores[j];
          }
          for (let j = 0; j < T; j++) scores[j] /= total;
          // weighted sum of values
          for (let j = 0; j < T; j++) {
            const p = scores[j];
            if (p === 0) continue;
            const valueData = j < P ? past.values : values;
            const vOff = j < P ? (j * KVH + kvh) * D : ((j - P) * KVH + kvh) * D;
            for (let d = 0; d < D; d++) out[h * D + d] += p * valueData[vOff + d];
          }
          if (layerStats?.keySums) for (let j = 0; j < T; j++) layerStats.keySums[h * T + j] += scores[j];
          if (layerStats?.windowSums) {
            for (const [c, sums] of layerStats.windowSums) {
              if (t >= q - c) for (let j = 0; j < T; j++) sums[h * T + j] += scores[j];
            }
          }
          const row = t - (q - statsRows);
          if (layerStats?.window && row >= 0) {
            for (let j = 0; j < T; j++) layerStats.window[(h * statsRows + row) * T + j] = scores[j];
          }
        }
        attended.push(out);
      }
      if (attention && layerStats) attention.push(layerStats);

      // Output projection, residual, then the gated MLP with its own residual (Gemma 2: each branch normed again).
      for (let t = 0; t < q; t++) {
        const projected = linear(attended[t], lw.o, lw.oBias);
        const o = gemma ? norm(projected, lw.postNorm) : projected;
        for (let i = 0; i < hidden; i++) residual[t][i] += o[i];
        const x = norm(residual[t], lw.preFfnNorm ?? lw.postNorm);
        const gate = linear(x, lw.gate, null);
        const up = linear(x, lw.up, null);
        const act = new Float32Array(gate.length);
        for (let i = 0; i < gate.length; i++) act[i] = (gemma ? geluTanh(gate[i]) : silu(gate[i])) * up[i];
        const down = linear(act, lw.down, null);
        const out = lw.postFfnNorm ? norm(down, lw.postFfnNorm) : down;
        for (let i = 0; i < hidden; i++) residual[t][i] += out[i];
      }
    }

    const rows = input.logits === 'all' ? Array.from({ length: q }, (_, t) => t) : [q - 1];
    const logits = new Float32Array(rows.length * vocabSize);
    rows.forEach((t, r) => {
      const x = norm(residual[t], this.w.finalNorm);
      const row = linear(x, this.w.lmHead, null);
      logits.set(this.config.finalLogitCap === undefined ? row : row.map((v) => softCap(v, this.config.finalLogitCap)), r * vocabSize);
    });
    return { logits, newKeys, newValues, attention };
  }
}

export function createReferenceForward(model: { config: ModelConfig; weights: WeightMap }, kvDtype: KvDtype = 'fp32'): ReferenceForward {
  return new ReferenceForward(model.config, model.weights, kvDtype);
}

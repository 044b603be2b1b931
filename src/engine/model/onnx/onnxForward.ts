// The production forward pass: the decoder graph built by graph.ts, run by onnxruntime-node.
// Execution providers are tried in order (CUDA, WebGPU, CPU); each failure is kept as a one-line reason.

import { availableParallelism, tmpdir } from 'node:os';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import * as ort from 'onnxruntime-node';
import type { ModelConfig } from '../config';
import { windowSumCounts, type DecoderForward, type ForwardInput, type ForwardOutput, type LayerAttention, type WeightMap } from '../types';
import { validateForwardInput } from '../reference';
import { weightMapSource, type WeightSource } from '../weightSource';
import { EmbeddingTable } from '../embedding';
import { buildDecoderGraph, graphWeightBytes, MASKED, type BuiltGraph, type GraphOptions, type WeightQuantization } from './graph';
import { ExternalFileSink, InlineSink, StaleCacheError, clearWeightCache, kvlensCacheDir } from './initializers';
import { KvlensError, describeError } from '../../errors';
import { DEFAULT_KV_DTYPE, allocateKv, encodeKv, type KvDtype } from '../../kv/kv-dtype';
import type { LayerKV, QuantizedPast } from '../../kv/cache';

export type ProviderChoice = 'auto' | 'cuda' | 'webgpu' | 'cpu';
export type ProviderName = 'cuda' | 'webgpu' | 'cpu';

export interface OnnxForwardOptions {
  provider?: ProviderChoice;
  /** How float-stored matrices sit in the graph (ggml blocks always keep their own format). */
  quantization?: WeightQuantization;
  /** See GraphOptions.int4AccuracyLevel. */
  int4AccuracyLevel?: 0 | 4;
  /** See GraphOptions.int4BlockSize (default 32). */
  int4BlockSize?: number;
  /**
   * Weights inline in the ModelProto ('never'), in an external-data file onnxruntime memory-maps
   * ('always'), or external above INLINE_WEIGHT_LIMIT ('auto', the default).
   */
  externalData?: 'auto' | 'always' | 'never';
  /**
   * Identity of the weights (files, sizes, modification times): with it, an external weights file is
   * kept in the cache folder under this key and the options, and reused by the next start.
   */
  cacheKey?: string;
  /** Intra-op threads (default: all cores). */
  threads?: number;
  /**
   * What the cache holds keys and values in (default fp16). fp16 caches are fed to the graph as stored;
   * bf16 ones are decoded to fp32 per call (onnxruntime's JavaScript API has no bfloat16 tensors).
   */
  kvDtype?: KvDtype;
  /**
   * Read quantized stores as held, dequantizing them in the graph one layer at a time (default true); false
   * dequantizes every layer in JS before each call (the comparison path).
   */
  quantizedPast?: boolean;
}

/**
 * Above this many weight bytes the graph's weights go to an external-data file: onnxruntime then maps
 * them instead of parsing a copy out of the ModelProto, so they are held once. (Protobuf also caps a
 * message at 2 GiB.)
 */
export const INLINE_WEIGHT_LIMIT = 64 * 1024 * 1024;

const FALLBACK_ORDER: ProviderName[] = ['cuda', 'webgpu', 'cpu'];

function providerChain(choice: ProviderChoice): ProviderName[] {
  if (choice === 'auto') return FALLBACK_ORDER;
  return FALLBACK_ORDER.slice(FALLBACK_ORDER.indexOf(choice));
}

/**
 * Why the CUDA provider cannot load, known without trying: onnxruntime-node ships CUDA as a separate
 * shared library next to its binding, installed only on request. Trying anyway makes onnxruntime print
 * a multi-line error to stderr, so an absent library is reported here instead. Null means "try it".
 */
function cudaUnavailableReason(): string | null {
  if (process.platform === 'darwin') return 'no CUDA on macOS';
  let bindingDir: string;
  try {
    bindingDir = join(dirname(require.resolve('onnxruntime-node/package.json')), 'bin', 'napi-v6', process.platform, process.arch);
  } catch {
    return null;
  }
  const library = process.platform === 'win32' ? 'onnxruntime_providers_cuda.dll' : 'libonnxruntime_providers_cuda.so';
  return existsSync(join(bindingDir, library)) ? null : `onnxruntime-node was installed without its CUDA provider (${library} not found)`;
}

function sessionOptions(provider: ProviderName, threads: number): ort.InferenceSession.SessionOptions {
  return {
    executionProviders: [provider],
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
    logSeverityLevel: 3,
    // KVLENS_ORT_PROFILE=<path prefix>: onnxruntime writes a per-node timing profile (JSON, chrome://tracing format).
    ...(process.env.KVLENS_ORT_PROFILE ? { enableProfiling: true, profileFilePrefix: process.env.KVLENS_ORT_PROFILE } : {}),
    // Spinning threads would burn the cores other work (and other processes) need between runs.
    extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } },
  };
}

/** A built graph and where its weights are: inline (`dir` null), or in `dir`'s external-data file. */
interface PreparedGraph {
  graph: BuiltGraph;
  dir: string | null;
  /** True when `dir` is a temporary folder to remove once a session holds the weights. */
  temporary: boolean;
  /** True when the weights file was already in the cache. */
  reused: boolean;
}

function weightCacheFolder(cacheKey: string, graphOptions: GraphOptions): string {
  const key = JSON.stringify({ cacheKey, quantization: graphOptions.quantization, block: graphOptions.int4BlockSize, layout: WEIGHT_FILE_LAYOUT });
  return join(kvlensCacheDir(), 'weights', createHash('sha256').update(key).digest('hex').slice(0, 32));
}

/** Bumped whenever the graph's weight initializers change name, order or encoding. */
const WEIGHT_FILE_LAYOUT = 1;

function prepareGraph(config: ModelConfig, source: WeightSource, graphOptions: GraphOptions, options: OnnxForwardOptions): PreparedGraph {
  const mode = options.externalData ?? 'auto';
  const external = mode === 'always' || (mode === 'auto' && graphWeightBytes(source, graphOptions) > INLINE_WEIGHT_LIMIT);
  if (!external) return { graph: buildDecoderGraph(config, source, { ...graphOptions, sink: new InlineSink() }), dir: null, temporary: false, reused: false };
  const cached = options.cacheKey ? weightCacheFolder(options.cacheKey, graphOptions) : null;
  const dir = cached ?? mkdtempSync(join(tmpdir(), 'kvlens-onnx-'));
  for (let attempt = 0; ; attempt++) {
    const sink = new ExternalFileSink(dir);
    try {
      const graph = buildDecoderGraph(config, source, { ...graphOptions, sink });
      sink.finish();
      return { graph, dir, temporary: !cached, reused: sink.reusing };
    } catch (error) {
      sink.abandon();
      if (error instanceof StaleCacheError && attempt === 0) {
        clearWeightCache(dir);
        continue;
      }
      throw error;
    }
  }
}

/**
 * Creates a session for a prepared graph. With external data the ModelProto is written beside the
 * weights file (onnxruntime resolves the data relative to it) under a name of this process's own, and
 * removed once the session holds the weights.
 */
async function createSession(prepared: PreparedGraph, options: ort.InferenceSession.SessionOptions): Promise<ort.InferenceSession> {
  if (!prepared.dir) return ort.InferenceSession.create(prepared.graph.bytes, options);
  const modelFile = join(prepared.dir, `model.${process.pid}.${Date.now()}.onnx`);
  try {
    writeFileSync(modelFile, prepared.graph.bytes);
    return await ort.InferenceSession.create(modelFile, options);
  } finally {
    rmSync(modelFile, { force: true });
  }
}

function releasePrepared(prepared: PreparedGraph): void {
  if (!prepared.dir || !prepared.temporary) return;
  try {
    rmSync(prepared.dir, { recursive: true, force: true });
  } catch {
    // A platform that keeps mapped files locked (Windows) leaves the folder to the OS temp cleanup.
  }
}

/** One readable line from an onnxruntime error: no source location, no failed-assertion text. */
function firstLine(error: unknown): string {
  let line = describeError(error).split('\n')[0];
  line = line.replace(/^\S+\.(?:cc|cpp|h):\d+\s+/, '');
  const assertion = line.indexOf(' was false. ');
  if (assertion >= 0) line = line.slice(assertion + ' was false. '.length);
  return line.slice(0, 300);
}

export class OnnxForward implements DecoderForward {
  private session: ort.InferenceSession | null = null;
  private readonly zeroBiases = new Map<number, Float32Array>();
  private readonly staging = new Map<string, { codes: Uint8Array; scales: Float32Array; zeros: Float32Array }>();

  private constructor(
    readonly config: ModelConfig,
    private readonly embedding: EmbeddingTable,
    private readonly graphOptions: GraphOptions,
    readonly kvDtype: KvDtype,
    readonly provider: ProviderName,
    readonly fallbackReasons: string[],
    /** Bytes of the graph's weight initializers, as onnxruntime was given them. */
    readonly graphWeightBytes: number,
    /** True when the weights file came from the cache (nothing was converted at this start). */
    readonly reusedWeightCache: boolean,
  ) {}

  get quantization(): WeightQuantization {
    return this.graphOptions.quantization;
  }

  /** Bytes of the embedding table held outside the graph (0 when its rows are read from the file). */
  get embeddingBytes(): number {
    return this.embedding.byteLength;
  }

  static async create(model: { config: ModelConfig; weights: WeightMap | WeightSource }, options: OnnxForwardOptions = {}): Promise<OnnxForward> {
    const quantization = options.quantization ?? 'fp32';
    const threads = options.threads ?? availableParallelism();
    const blockSize = options.int4BlockSize ?? 32;
    if (!Number.isInteger(blockSize) || blockSize < 16 || (blockSize & (blockSize - 1)) !== 0) {
      throw new KvlensError(`int4 block size must be a power of two >= 16, got ${blockSize}`, 'onnx options');
    }
    const kvDtype = options.kvDtype ?? DEFAULT_KV_DTYPE;
    const graphOptions: GraphOptions = {
      quantization,
      int4AccuracyLevel: options.int4AccuracyLevel,
      int4BlockSize: blockSize,
      pastDtype: kvDtype === 'fp16' ? 'float16' : 'float',
      quantizedPast: options.quantizedPast ?? true,
    };
    const source = model.weights instanceof Map ? weightMapSource(model.weights) : model.weights;
    // Tables in files are read row by row at lookup time rather than held.
    const embedding = new EmbeddingTable(source, { resident: model.weights instanceof Map });
    const prepared = prepareGraph(model.config, source, graphOptions, options);
    const reasons: string[] = [];
    try {
      for (const provider of providerChain(options.provider ?? 'auto')) {
        const knownFailure = provider === 'cuda' ? cudaUnavailableReason() : null;
        if (knownFailure) {
          reasons.push(`cuda: ${knownFailure}`);
          continue;
        }
        try {
          const session = await createSession(prepared, sessionOptions(provider, threads));
          const forward = new OnnxForward(model.config, embedding, graphOptions, kvDtype, provider, reasons, prepared.graph.weightBytes, prepared.reused);
          forward.session = session;
          return forward;
        } catch (error) {
          reasons.push(`${provider}: ${firstLine(error)}`);
        }
      }
    } finally {
      releasePrepared(prepared);
    }
    throw new KvlensError(`no execution provider could load the model (${reasons.join('; ')})`, 'onnxruntime');
  }

  /**
   * The packed-code feeds of one layer: its quantized slots, or none (Q = 0) for a dense cache. The codes are copied
   * into buffers this forward keeps between calls: allocating megabytes of fresh pages every step costs more than the
   * step's attention.
   */
  private packedFeeds(feeds: Record<string, ort.Tensor>, l: number, packed: QuantizedPast | null): void {
    const KVH = this.config.numKvHeads;
    for (const part of ['key', 'value'] as const) {
      const codes = packed ? (part === 'key' ? packed.keys : packed.values) : null;
      const shape = codes ? codes.shape : [KVH, 0, 1, 1];
      const paramShape = codes ? codes.paramShape : [KVH, 0, 1, 1];
      const codeBytes = codes?.codeBytes ?? 0;
      const params = codes?.paramCount ?? 0;
      const buffers = this.stagingFor(`${part}_${l}`, codeBytes, params);
      const [codeView, scaleView, zeroView] = [buffers.codes.subarray(0, codeBytes), buffers.scales.subarray(0, params), buffers.zeros.subarray(0, params)];
      codes?.write(codeView, scaleView, zeroView);
      feeds[`past_codes_${part}_${l}`] = new ort.Tensor('uint8', codeView, [KVH, codeBytes / KVH]);
      feeds[`past_shape_${part}_${l}`] = new ort.Tensor('int64', BigInt64Array.from(shape, (n) => BigInt(n)), [4]);
      feeds[`past_scales_${part}_${l}`] = new ort.Tensor('float32', scaleView, paramShape);
      feeds[`past_zeros_${part}_${l}`] = new ort.Tensor('float32', zeroView, paramShape);
    }
  }

  /** Reusable input buffers for one layer's packed keys or values, grown geometrically. */
  private stagingFor(key: string, codeBytes: number, params: number): { codes: Uint8Array; scales: Float32Array; zeros: Float32Array } {
    let buffers = this.staging.get(key);
    if (!buffers || buffers.codes.length < codeBytes || buffers.scales.length < params) {
      const grow = (have: number, need: number) => (have >= need ? have : Math.max(need, Math.ceil(have * 1.5)));
      buffers = {
        codes: new Uint8Array(grow(buffers?.codes.length ?? 0, codeBytes)),
        scales: new Float32Array(grow(buffers?.scales.length ?? 0, params)),
        zeros: new Float32Array(grow(buffers?.zeros.length ?? 0, params)),
      };
      this.staging.set(key, buffers);
    }
    return buffers;
  }

  private zeroBias(length: number): Float32Array {
    let bias = this.zeroBiases.get(length);
    if (!bias) {
      bias = new Float32Array(length);
      // Only keep small ones: decode asks for a new length every step.
      if (length <= 64) this.zeroBiases.set(length, bias);
    }
    return bias;
  }

  /** A past input as the graph takes it: an fp16 cache's patterns as they are; anything else converted. */
  private pastTensor(past: LayerKV, part: 'keys' | 'values', elements: number, dims: number[]): ort.Tensor {
    if (this.graphOptions.pastDtype !== 'float16') return new ort.Tensor('float32', past[part].subarray(0, elements), dims);
    if (past.stored?.dtype === 'fp16') return new ort.Tensor('float16', past.stored[part].subarray(0, elements), dims);
    // Caches that rebuild fp32 rows (quantized stores, bf16) are rounded to fp16 here, as a deployment reads them.
    const half = allocateKv('fp16', elements);
    encodeKv('fp16', past[part].subarray(0, elements), half, 0);
    return new ort.Tensor('float16', half, dims);
  }

  async forward(input: ForwardInput): Promise<ForwardOutput> {
    validateForwardInput(this.config, input);
    const { numKvHeads: KVH, headDim: D, numLayers, vocabSize, numHeads: H, hiddenSize } = this.config;
    const q = input.tokens.length;
    const request = input.attention;
    const session = this.session;
    if (!session) throw new KvlensError('the session was disposed', 'onnxruntime');
    const windowQueries = request?.window ? Math.min(request.window, q) : 0;
    const sumCounts = windowSumCounts(request, q);

    const rows = input.logits === 'all' ? Array.from({ length: q }, (_, t) => BigInt(t)) : [BigInt(q - 1)];
    const causal = new Float32Array(q * q);
    for (let i = 0; i < q; i++) for (let j = i + 1; j < q; j++) causal[i * q + j] = MASKED;
    const feeds: Record<string, ort.Tensor> = {
      inputs_embeds: new ort.Tensor('float32', this.embedding.lookup(input.tokens), [1, q, hiddenSize]),
      position_ids: new ort.Tensor('int64', BigInt64Array.from(Array.from(input.positions, (p) => BigInt(p))), [1, q]),
      logits_rows: new ort.Tensor('int64', BigInt64Array.from(rows), [rows.length]),
      causal_bias: new ort.Tensor('float32', causal, [q, q]),
      stats_rows: new ort.Tensor('int64', BigInt64Array.of(BigInt(windowQueries)), [1]),
      sum_rows: new ort.Tensor('int64', BigInt64Array.from(sumCounts, (c) => BigInt(c)), [sumCounts.length]),
      sum_span: new ort.Tensor('int64', BigInt64Array.of(BigInt(Math.max(0, ...sumCounts))), [1]),
    };
    const row = KVH * D;
    const readsPacked = this.graphOptions.quantizedPast === true;
    if (readsPacked) {
      // Every layer of a cache shares its codec: one table (or none) for the call.
      const first = input.past.find((past) => past.quantized)?.quantized;
      const table = first?.table ?? null;
      feeds.keys_per_channel = new ort.Tensor('bool', Uint8Array.of(first?.keysPerChannel ? 1 : 0), [1]);
      feeds.codes_from_table = new ort.Tensor('bool', Uint8Array.of(table ? 1 : 0), [1]);
      feeds.codes_per_byte = new ort.Tensor('int64', BigInt64Array.of(BigInt(first?.codesPerByte ?? 1)), [1]);
      feeds.code_table = new ort.Tensor('float32', table ?? new Float32Array(256), [256, table ? table.length / 256 : 1]);
    }
    for (let l = 0; l < numLayers; l++) {
      const past = input.past[l];
      const P = past.length;
      const packed = readsPacked ? (past.quantized ?? null) : null;
      if (readsPacked) this.packedFeeds(feeds, l, packed);
      const dense = packed ? packed.residual : past;
      let bias: Float32Array;
      if (past.valid) {
        // Same [P, kvH] layout as the validity mask.
        bias = new Float32Array(P * KVH);
        for (let i = 0; i < P * KVH; i++) if (!past.valid[i]) bias[i] = MASKED;
      } else {
        bias = this.zeroBias(KVH * P);
      }
      feeds[`past_key_${l}`] = this.pastTensor(dense, 'keys', dense.length * row, [1, dense.length, KVH, D]);
      feeds[`past_value_${l}`] = this.pastTensor(dense, 'values', dense.length * row, [1, dense.length, KVH, D]);
      feeds[`past_bias_${l}`] = new ort.Tensor('float32', bias, [1, P, KVH]);
      // A sliding-window layer masks by position in the graph: its slots' original positions, as floats.
      if (this.config.layerWindows?.[l] != null) feeds[`past_positions_${l}`] = new ort.Tensor('float32', Float32Array.from(past.positions.subarray(0, P * KVH)), [1, P, KVH]);
    }

    const fetches = ['logits'];
    for (let l = 0; l < numLayers; l++) fetches.push(`new_key_${l}`, `new_value_${l}`);
    if (request) {
      for (let l = 0; l < numLayers; l++) {
        if (request.window) fetches.push(`window_${l}`);
        if (request.keySums) fetches.push(`key_sums_${l}`);
        if (sumCounts.length) fetches.push(`window_sums_${l}`);
        if (request.queries) fetches.push(`queries_${l}`);
      }
    }
    const results = await session.run(feeds, fetches);
    const floats = (name: string): Float32Array => results[name].data as Float32Array;

    const logits = floats('logits');
    if (logits.length !== rows.length * vocabSize) {
      throw new KvlensError(`logits have ${logits.length} values, expected ${rows.length * vocabSize}`, 'onnxruntime');
    }
    const newKeys: Float32Array[] = [];
    const newValues: Float32Array[] = [];
    for (let l = 0; l < numLayers; l++) {
      newKeys.push(floats(`new_key_${l}`));
      newValues.push(floats(`new_value_${l}`));
    }
    let attention: LayerAttention[] | null = null;
    if (request) {
      attention = [];
      for (let l = 0; l < numLayers; l++) {
        const T = input.past[l].length + q;
        const windowProbs = request.window ? floats(`window_${l}`) : null;
        if (windowProbs && windowProbs.length !== H * windowQueries * T) {
          throw new KvlensError(`window_${l} has ${windowProbs.length} values, expected ${H * windowQueries * T}`, 'onnxruntime');
        }
        attention.push({
          window: windowProbs,
          windowSums: sumCounts.length ? this.splitWindowSums(floats(`window_sums_${l}`), sumCounts, H, T, l) : null,
          windowQueries,
          keySums: request.keySums ? floats(`key_sums_${l}`) : null,
          queries: request.queries ? floats(`queries_${l}`) : null,
        });
      }
    }
    return { logits, newKeys, newValues, attention };
  }

  /** [kvH, G, S, T] as one [H, T] array per count. */
  private splitWindowSums(data: Float32Array, counts: number[], H: number, T: number, layer: number): Map<number, Float32Array> {
    const S = counts.length;
    if (data.length !== H * S * T) throw new KvlensError(`window_sums_${layer} has ${data.length} values, expected ${H * S * T}`, 'onnxruntime');
    const out = new Map<number, Float32Array>();
    counts.forEach((c, s) => {
      const sums = new Float32Array(H * T);
      for (let h = 0; h < H; h++) sums.set(data.subarray((h * S + s) * T, (h * S + s + 1) * T), h * T);
      out.set(c, sums);
    });
    return out;
  }

  async dispose(): Promise<void> {
    const session = this.session;
    this.session = null;
    this.staging.clear();
    this.embedding.close();
    if (session) await session.release();
  }
}

export function createOnnxForward(model: { config: ModelConfig; weights: WeightMap | WeightSource }, options: OnnxForwardOptions = {}): Promise<OnnxForward> {
  return OnnxForward.create(model, options);
}

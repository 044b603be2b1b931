// The production forward pass: the decoder graph built by graph.ts, run by onnxruntime-node.
// Execution providers are tried in order (CUDA, WebGPU, CPU); each failure is kept as a one-line reason.

import { availableParallelism, tmpdir } from 'node:os';
import { existsSync, mkdtempSync, openSync, writeSync, closeSync, writeFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import * as ort from 'onnxruntime-node';
import type { ModelConfig } from '../config';
import type { DecoderForward, ForwardInput, ForwardOutput, LayerAttention, WeightMap } from '../types';
import { validateForwardInput } from '../reference';
import { buildDecoderGraph, MASKED, type BuiltGraph, type GraphOptions, type WeightQuantization } from './graph';
import { KvlensError, describeError } from '../../errors';

export type ProviderChoice = 'auto' | 'cuda' | 'webgpu' | 'cpu';
export type ProviderName = 'cuda' | 'webgpu' | 'cpu';

export interface OnnxForwardOptions {
  provider?: ProviderChoice;
  quantization?: WeightQuantization;
  /** See GraphOptions.int4AccuracyLevel. */
  int4AccuracyLevel?: 0 | 4;
  /** See GraphOptions.int4BlockSize (default 32). */
  int4BlockSize?: number;
  /** See GraphOptions.externalData. */
  externalData?: GraphOptions['externalData'];
  /** Intra-op threads (default: all cores). */
  threads?: number;
}

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
    // Spinning threads would burn the cores other work (and other processes) need between runs.
    extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } },
  };
}

/**
 * Creates a session for a built graph. Graphs with external data are written to a temporary folder
 * (model.onnx + the weights file) and loaded from there; the folder is removed once the session holds
 * the weights (on Linux/macOS a memory-mapped file stays readable after removal).
 */
async function createSession(graph: BuiltGraph, options: ort.InferenceSession.SessionOptions): Promise<ort.InferenceSession> {
  if (!graph.externalData) return ort.InferenceSession.create(graph.bytes, options);
  const dir = mkdtempSync(join(tmpdir(), 'kvlens-onnx-'));
  try {
    writeFileSync(join(dir, 'model.onnx'), graph.bytes);
    const fd = openSync(join(dir, graph.externalData.file), 'w');
    try {
      for (const chunk of graph.externalData.chunks) writeSync(fd, chunk);
    } finally {
      closeSync(fd);
    }
    return await ort.InferenceSession.create(join(dir, 'model.onnx'), options);
  } finally {
    try {
      rmSync(dir, { recursive: true, force: true });
    } catch {
      // A platform that keeps mapped files locked (Windows) leaves the folder to the OS temp cleanup.
    }
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

interface SessionVariant {
  session: ort.InferenceSession;
  statsWindow: number | null;
}

export class OnnxForward implements DecoderForward {
  private plain: SessionVariant | null = null;
  private stats: SessionVariant | null = null;
  private readonly zeroBiases = new Map<number, Float32Array>();
  private disposed = false;

  private constructor(
    readonly config: ModelConfig,
    private readonly weights: WeightMap,
    private readonly graphOptions: GraphOptions,
    readonly provider: ProviderName,
    readonly fallbackReasons: string[],
    private readonly threads: number,
  ) {}

  get quantization(): WeightQuantization {
    return this.graphOptions.quantization;
  }

  static async create(model: { config: ModelConfig; weights: WeightMap }, options: OnnxForwardOptions = {}): Promise<OnnxForward> {
    const quantization = options.quantization ?? 'fp32';
    const threads = options.threads ?? availableParallelism();
    const blockSize = options.int4BlockSize ?? 32;
    if (!Number.isInteger(blockSize) || blockSize < 16 || (blockSize & (blockSize - 1)) !== 0) {
      throw new KvlensError(`int4 block size must be a power of two >= 16, got ${blockSize}`, 'onnx options');
    }
    const graphOptions: GraphOptions = {
      quantization,
      int4AccuracyLevel: options.int4AccuracyLevel,
      int4BlockSize: blockSize,
      externalData: options.externalData,
    };
    const graph = buildDecoderGraph(model.config, model.weights, graphOptions);
    const reasons: string[] = [];
    for (const provider of providerChain(options.provider ?? 'auto')) {
      const knownFailure = provider === 'cuda' ? cudaUnavailableReason() : null;
      if (knownFailure) {
        reasons.push(`cuda: ${knownFailure}`);
        continue;
      }
      try {
        const session = await createSession(graph, sessionOptions(provider, threads));
        const forward = new OnnxForward(model.config, model.weights, graphOptions, provider, reasons, threads);
        forward.plain = { session, statsWindow: null };
        return forward;
      } catch (error) {
        reasons.push(`${provider}: ${firstLine(error)}`);
      }
    }
    throw new KvlensError(`no execution provider could load the model (${reasons.join('; ')})`, 'onnxruntime');
  }

  /**
   * The statistics variant is a second session, built the first time a call asks for attention statistics.
   * Its window is fixed at build time; a session with a wider window serves narrower requests (rows are
   * cut in forward), so it is rebuilt only when a call asks for more rows than it was built for.
   * onnxruntime gives it its own copy of the weights: using both variants costs twice the weight memory.
   */
  private async statsSession(window: number): Promise<SessionVariant> {
    if (this.stats && (this.stats.statsWindow ?? 0) >= window) return this.stats;
    if (this.stats) await this.stats.session.release();
    this.stats = null;
    const graph = buildDecoderGraph(this.config, this.weights, { ...this.graphOptions, statsWindow: window });
    const session = await createSession(graph, sessionOptions(this.provider, this.threads));
    this.stats = { session, statsWindow: window };
    return this.stats;
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

  async forward(input: ForwardInput): Promise<ForwardOutput> {
    validateForwardInput(this.config, input);
    const { numKvHeads: KVH, headDim: D, numLayers, vocabSize, numHeads: H } = this.config;
    const q = input.tokens.length;
    const request = input.attention;
    const wantsStats = Boolean(request && (request.window || request.keySums || request.queries));
    const window = Math.max(1, request?.window ?? 1);
    if (this.disposed) throw new KvlensError('the session was disposed', 'onnxruntime');
    const variant = wantsStats ? await this.statsSession(window) : this.plain;
    if (!variant) throw new KvlensError('the session was disposed', 'onnxruntime');

    const rows = input.logits === 'all' ? Array.from({ length: q }, (_, t) => BigInt(t)) : [BigInt(q - 1)];
    const causal = new Float32Array(q * q);
    for (let i = 0; i < q; i++) for (let j = i + 1; j < q; j++) causal[i * q + j] = MASKED;
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor('int64', BigInt64Array.from(Array.from(input.tokens, (t) => BigInt(t))), [1, q]),
      position_ids: new ort.Tensor('int64', BigInt64Array.from(Array.from(input.positions, (p) => BigInt(p))), [1, q]),
      logits_rows: new ort.Tensor('int64', BigInt64Array.from(rows), [rows.length]),
      causal_bias: new ort.Tensor('float32', causal, [q, q]),
    };
    const row = KVH * D;
    for (let l = 0; l < numLayers; l++) {
      const past = input.past[l];
      const P = past.length;
      let bias: Float32Array;
      if (past.valid) {
        // Same [P, kvH] layout as the validity mask.
        bias = new Float32Array(P * KVH);
        for (let i = 0; i < P * KVH; i++) if (!past.valid[i]) bias[i] = MASKED;
      } else {
        bias = this.zeroBias(KVH * P);
      }
      feeds[`past_key_${l}`] = new ort.Tensor('float32', past.keys.subarray(0, P * row), [1, P, KVH, D]);
      feeds[`past_value_${l}`] = new ort.Tensor('float32', past.values.subarray(0, P * row), [1, P, KVH, D]);
      feeds[`past_bias_${l}`] = new ort.Tensor('float32', bias, [1, P, KVH]);
    }

    const fetches = ['logits'];
    for (let l = 0; l < numLayers; l++) fetches.push(`new_key_${l}`, `new_value_${l}`);
    if (wantsStats) {
      for (let l = 0; l < numLayers; l++) {
        if (request?.window) fetches.push(`window_${l}`);
        if (request?.keySums) fetches.push(`key_sums_${l}`);
        if (request?.queries) fetches.push(`queries_${l}`);
      }
    }
    const results = await variant.session.run(feeds, fetches);
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
      const windowQueries = request.window ? Math.min(request.window, q) : 0;
      const builtRows = Math.min(variant.statsWindow ?? 0, q);
      for (let l = 0; l < numLayers; l++) {
        const T = input.past[l].length + q;
        let windowProbs = request.window ? floats(`window_${l}`) : null;
        if (windowProbs && windowProbs.length !== H * builtRows * T) {
          throw new KvlensError(`window_${l} has ${windowProbs.length} values, expected ${H * builtRows * T}`, 'onnxruntime');
        }
        if (windowProbs && builtRows > windowQueries) {
          // Keep the last `windowQueries` rows of each head.
          const cut = new Float32Array(H * windowQueries * T);
          for (let h = 0; h < H; h++) {
            const from = (h * builtRows + builtRows - windowQueries) * T;
            cut.set(windowProbs.subarray(from, from + windowQueries * T), h * windowQueries * T);
          }
          windowProbs = cut;
        }
        attention.push({
          window: windowProbs,
          windowQueries,
          keySums: request.keySums ? floats(`key_sums_${l}`) : null,
          queries: request.queries ? floats(`queries_${l}`) : null,
        });
      }
    }
    return { logits, newKeys, newValues, attention };
  }

  async dispose(): Promise<void> {
    this.disposed = true;
    const sessions = [this.plain, this.stats];
    this.plain = null;
    this.stats = null;
    for (const variant of sessions) if (variant) await variant.session.release();
  }
}

export function createOnnxForward(model: { config: ModelConfig; weights: WeightMap }, options: OnnxForwardOptions = {}): Promise<OnnxForward> {
  return OnnxForward.create(model, options);
}

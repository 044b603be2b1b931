// A loaded model ready to run: weights, tokenizer and a forward pass on the best execution provider.
import { createHash } from 'node:crypto';
import { createReadStream, readdirSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { loadModel, resolveModelDir, estimateModelMemory, checkFitsInMemory, inspectModel, isGgufPath, type MemoryEstimate } from './model/loader';
import { loadTokenizer, type ModelTokenizer } from './tokenizer/tokenizer';
import { createOnnxForward, type ProviderChoice } from './model/onnx/onnxForward';
import { createReferenceForward } from './model/reference';
import { describeWeightFormat, type WeightFormatPlan, type WeightsChoice } from './model/weightFormat';
import type { DecoderForward, ModelSummary } from './model/types';
import { DEFAULT_KV_DTYPE, kvElementBytes, type KvDtype } from './kv/kv-dtype';
import { openRecurrentSession } from './model/recurrent/session';
import { recurrentArchitectureOf } from './model/recurrent/load';
import type { RecurrentForward } from './model/recurrent/types';
import { withFiniteLogits, withFiniteRecurrentLogits } from './model/finiteLogits';

export type ForwardBackend = 'onnx' | 'reference';

export interface SessionOptions {
  provider?: ProviderChoice;
  /** 'reference' runs the plain-TypeScript oracle instead of onnxruntime (slow; for checks). */
  backend?: ForwardBackend;
  /** Longest context the session will be asked to hold, for the up-front memory check. */
  contextTokens?: number;
  /** How float-stored matrices are held (default auto; ggml blocks keep their own format). */
  weights?: WeightsChoice;
  /** Intra-op threads (default: all cores). */
  threads?: number;
  /** What full-precision caches hold keys and values in (default fp16, as deployments do). */
  kvDtype?: KvDtype;
}

export interface ModelSession {
  model: ModelSummary;
  tokenizer: ModelTokenizer;
  forward: DecoderForward;
  /**
   * Present for a model that carries a fixed-size state instead of a growing KV cache (Mamba, Mamba-2, RWKV,
   * RecurrentGemma):
   * generation and sweeps run on it, and `forward` then only runs whole sequences from scratch.
   */
  recurrent?: RecurrentForward;
  /** The execution provider that loaded ('cpu', 'cuda', 'webgpu' or 'reference'). */
  provider: string;
  /** One line per provider that was tried and failed before `provider` loaded. */
  fallbackReasons: string[];
  modelPath: string;
  /** How the weights are held, what that costs, and why it was chosen. */
  weightFormat: WeightFormatPlan;
  /** e.g. "int8 (auto)": the label outputs and results show. */
  weightFormatLabel: string;
  /** What full-precision caches hold keys and values in. */
  kvDtype: KvDtype;
  /** The up-front estimate the load was checked against (weights as held + the full cache at contextTokens). */
  memoryEstimate: MemoryEstimate;
  dispose(): Promise<void>;
}

/** File names, sizes and modification times: identifies a model's weights without hashing gigabytes. */
function weightFilesIdentity(modelPath: string): string {
  const files = statSync(modelPath).isDirectory()
    ? readdirSync(modelPath)
        .filter((name) => /\.(json|safetensors)$/.test(name))
        .sort()
        .map((name) => join(modelPath, name))
    : [modelPath];
  return JSON.stringify(files.map((file) => {
    const stats = statSync(file);
    return [file, stats.size, stats.mtimeMs];
  }));
}

/** Opens a model whose every forward pass refuses NaN or infinite logits, naming the model file (model/finiteLogits.ts). */
export async function openModel(spec: string, options: SessionOptions = {}): Promise<ModelSession> {
  const session = await openUncheckedModel(spec, options);
  return {
    ...session,
    forward: withFiniteLogits(session.forward, session.modelPath),
    ...(session.recurrent ? { recurrent: withFiniteRecurrentLogits(session.recurrent, session.modelPath) } : {}),
  };
}

async function openUncheckedModel(spec: string, options: SessionOptions): Promise<ModelSession> {
  const modelPath = resolveModelDir(spec);
  if (recurrentArchitectureOf(modelPath)) return openRecurrentSession(modelPath, options);
  // Headers first: a malformed file is named before anything else is estimated or read.
  const plan = inspectModel(modelPath);
  // Refuse a model that cannot fit before reading a byte of its weights.
  const kvDtype = options.kvDtype ?? DEFAULT_KV_DTYPE;
  const estimate = estimateModelMemory(modelPath, options.contextTokens ?? 4096, { weights: options.weights ?? 'auto', kvBytesPerElement: kvElementBytes(kvDtype) });
  checkFitsInMemory(estimate, modelPath);
  const weightFormat = estimate.weightFormat!;
  const tokenizer = loadTokenizer(isGgufPath(modelPath) ? join(modelPath, '..') : modelPath, { gguf: isGgufPath(modelPath) });
  if (options.backend === 'reference') {
    const model = loadModel(modelPath);
    const forward = createReferenceForward(model, kvDtype);
    const reference = { ...weightFormat, quantization: 'fp32' as const, reason: 'the reference forward upcasts every weight to fp32' };
    return { model, tokenizer, forward, provider: 'reference', fallbackReasons: [], modelPath, weightFormat: reference, weightFormatLabel: 'fp32 (reference)', kvDtype, memoryEstimate: estimate, dispose: async () => {} };
  }
  const weights = plan.storedWeights();
  let forward;
  try {
    forward = await createOnnxForward(
      { config: plan.config, weights },
      { provider: options.provider ?? 'auto', quantization: weightFormat.quantization, cacheKey: weightFilesIdentity(modelPath), threads: options.threads, kvDtype },
    );
  } finally {
    weights.close();
  }
  const model: ModelSummary = {
    dir: plan.dir,
    config: plan.config,
    parameterCount: plan.parameterCount,
    weightBytesOnDisk: plan.weightBytesOnDisk,
    dtype: plan.dtype,
    dtypeShares: plan.dtypeShares,
  };
  return {
    model,
    tokenizer,
    forward,
    provider: forward.provider,
    fallbackReasons: forward.fallbackReasons.slice(),
    modelPath,
    weightFormat,
    weightFormatLabel: describeWeightFormat(weightFormat),
    kvDtype,
    memoryEstimate: estimate,
    dispose: async () => {
      await forward.dispose?.();
    },
  };
}

/** sha256 over the model's files (name and bytes, in name order): any changed weight changes the hash. */
export async function modelContentHash(modelPath: string): Promise<string> {
  const hash = createHash('sha256');
  const files = statSync(modelPath).isDirectory()
    ? readdirSync(modelPath)
        .filter((name) => /\.(json|safetensors|gguf)$/.test(name))
        .sort()
        .map((name) => join(modelPath, name))
    : [modelPath];
  for (const file of files) {
    hash.update(basename(file));
    hash.update('\0');
    await new Promise<void>((resolveHash, reject) => {
      createReadStream(file)
        .on('data', (chunk) => hash.update(chunk))
        .on('end', () => resolveHash())
        .on('error', reject);
    });
  }
  return `sha256:${hash.digest('hex')}`;
}

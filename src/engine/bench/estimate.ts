// What a sweep will need before it starts: weights plus the KV cache at the longest context, per method,
// from config.json and the methods' own promises alone (no weight is read).
import { freemem, totalmem } from 'node:os';
import { inspectModel, resolveModelDir, estimateModelMemory } from '../model/loader';
import { describeWeightFormat, type WeightsChoice } from '../model/weightFormat';
import { DEFAULT_KV_DTYPE, kvElementBytes, type KvDtype } from '../kv/kv-dtype';
import { formatBytes } from '../format';
import { createMethod } from '../kv';
import { describeError } from '../errors';
import { recurrentArchitectureOf } from '../model/recurrent/load';
import { recurrentRunEstimate } from '../model/recurrent/estimate';

export interface MethodEstimate {
  method: string;
  /** KV bytes the method is expected to hold at the longest context, or null if the method cannot run there. */
  kvBytes: number | null;
  problem: string | null;
}

export interface RunEstimate {
  modelPath: string;
  contextTokens: number;
  /** Weights as the engine will hold them (see weightFormat.ts). */
  weightBytes: number;
  /** e.g. "int8 (auto)" or "native blocks". */
  weightFormat: string;
  kvDtype: KvDtype;
  /** The full-precision cache at the longest context: the most any method holds, and what `full` holds. */
  fullKvBytes: number;
  methods: MethodEstimate[];
  /** Peak need: weights + the full cache (every sample is prefilled with it before methods fork it) + the runtime and prefill scratch. */
  totalBytes: number;
  freeBytes: number;
  totalMemoryBytes: number;
  fits: boolean;
  summary: string;
}

/** The context a sweep must hold: its longest length plus room for the generated answer. */
export function sweepContextTokens(lengths: readonly number[]): number {
  return Math.max(...lengths) + 64;
}

export function estimateRun(model: string, lengths: number[], methods: string[], options: { weights?: WeightsChoice; kvDtype?: KvDtype } = {}): RunEstimate {
  const modelPath = resolveModelDir(model);
  const contextTokens = sweepContextTokens(lengths);
  const kvDtype = options.kvDtype ?? DEFAULT_KV_DTYPE;
  if (recurrentArchitectureOf(modelPath)) return recurrentRunEstimate(modelPath, contextTokens, methods, kvDtype);
  const plan = inspectModel(modelPath);
  const elementBits = 8 * kvElementBytes(kvDtype);
  const memory = estimateModelMemory(modelPath, contextTokens, { weights: options.weights ?? 'auto', kvBytesPerElement: kvElementBytes(kvDtype) });
  const tokensFull = contextTokens * plan.config.numLayers * plan.config.numKvHeads;
  const perMethod = methods.map((spec): MethodEstimate => {
    try {
      const method = createMethod(spec);
      const promise = method.promise(contextTokens, plan.config);
      // Quantized codes carry about one more bit per element in group scales and zero-points.
      const bits = promise.bits === null ? elementBits : promise.bits + 1;
      return { method: method.spec, kvBytes: Math.round((memory.kvBytes * promise.totalTokens * bits) / (tokensFull * elementBits)), problem: null };
    } catch (error) {
      return { method: spec, kvBytes: null, problem: describeError(error) };
    }
  });
  const weightFormat = memory.weightFormat ? describeWeightFormat(memory.weightFormat) : 'fp32';
  const freeBytes = freemem();
  const totalBytes = memory.weightBytes + memory.kvBytes + memory.runtimeBytes;
  const fits = totalBytes <= freeBytes;
  const summary =
    `about ${formatBytes(totalBytes)} (weights ${formatBytes(memory.weightBytes)} in ${weightFormat} + full ${kvDtype} KV cache ${formatBytes(memory.kvBytes)} at ${contextTokens} tokens + runtime ${formatBytes(memory.runtimeBytes)})` +
    ` of ${formatBytes(freeBytes)} free`;
  return {
    modelPath,
    contextTokens,
    weightBytes: memory.weightBytes,
    weightFormat,
    kvDtype,
    fullKvBytes: memory.kvBytes,
    methods: perMethod,
    totalBytes,
    freeBytes,
    totalMemoryBytes: totalmem(),
    fits,
    summary,
  };
}

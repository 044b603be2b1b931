// A sweep's memory estimate for a recurrent model, from config.json and the safetensors headers alone: the
// weights, and in place of a KV cache the state the model carries, the same at every length.
import { freemem, totalmem } from 'node:os';
import { createMethod } from '../../kv';
import { describeError } from '../../errors';
import { formatBytes } from '../../format';
import type { KvDtype } from '../../kv/kv-dtype';
import type { MethodEstimate, RunEstimate } from '../../bench/estimate';
import { planRecurrentModel } from './load';
import { noKvCache, recurrentMemoryEstimate } from './session';

export function recurrentRunEstimate(modelPath: string, contextTokens: number, methods: string[], kvDtype: KvDtype): RunEstimate {
  const plan = planRecurrentModel(modelPath);
  const memory = recurrentMemoryEstimate(plan, contextTokens);
  const perMethod = methods.map((spec): MethodEstimate => {
    try {
      const method = createMethod(spec);
      if (method.spec === 'full') return { method: method.spec, kvBytes: plan.stateBytes, problem: null };
      return { method: method.spec, kvBytes: null, problem: `${noKvCache(plan.config)}: only method full applies` };
    } catch (error) {
      return { method: spec, kvBytes: null, problem: describeError(error) };
    }
  });
  const freeBytes = freemem();
  return {
    modelPath,
    contextTokens,
    weightBytes: memory.weightBytes,
    weightFormat: 'fp32',
    kvDtype,
    fullKvBytes: plan.stateBytes,
    methods: perMethod,
    totalBytes: memory.totalBytes,
    freeBytes,
    totalMemoryBytes: totalmem(),
    fits: memory.totalBytes <= freeBytes,
    summary:
      `about ${formatBytes(memory.totalBytes)} (weights ${formatBytes(memory.weightBytes)} in fp32 + ${plan.config.hfArchitecture} state ${formatBytes(plan.stateBytes)} at any length ` +
      `+ runtime ${formatBytes(memory.runtimeBytes)}) of ${formatBytes(freeBytes)} free`,
  };
}

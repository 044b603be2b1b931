// A ModelSession over a recurrent model: the tokenizer, the typed-array forward pass, and what the rest of the
// engine reads from any session (a config, the weight format, the memory estimate), said truthfully for a
// model without a KV cache.
import { KvlensError } from '../../errors';
import { RUNTIME_BASE_BYTES, checkFitsInMemory, type MemoryEstimate } from '../loader';
import { CONFIG_LIMITS, type ModelConfig } from '../config';
import { loadTokenizer } from '../../tokenizer/tokenizer';
import type { WeightFormatPlan } from '../weightFormat';
import type { DecoderForward, ForwardInput, ForwardOutput, ModelSummary } from '../types';
import type { ModelSession, SessionOptions } from '../../session';
import { DEFAULT_KV_DTYPE } from '../../kv/kv-dtype';
import { planRecurrentModel, type RecurrentModelPlan } from './load';
import { PREFILL_CHUNK } from './generate';
import type { RecurrentConfig, RecurrentForward } from './types';

/**
 * The attention-model config the shared code reads (context checks, summaries), for a model with no attention:
 * no heads and so no KV bytes per token. A model whose config names no trained context has no position limit.
 */
export function attentionFreeConfig(config: RecurrentConfig): ModelConfig {
  return {
    architecture: config.architecture,
    hfArchitecture: config.hfArchitecture,
    hiddenSize: config.hiddenSize,
    intermediateSize: config.intermediateSize,
    numLayers: config.numLayers,
    numHeads: 0,
    numKvHeads: 0,
    headDim: 0,
    vocabSize: config.vocabSize,
    rmsNormEps: 0,
    ropeTheta: 0,
    ropeScaling: null,
    tieWordEmbeddings: config.tieWordEmbeddings,
    attentionBias: false,
    maxPositionEmbeddings: config.trainedContext ?? CONFIG_LIMITS.maxPositionEmbeddings,
    bosTokenId: config.bosTokenId,
    eosTokenIds: config.eosTokenIds,
    torchDtype: config.torchDtype,
  };
}

/** Why a KV-cache code path cannot run on `config`'s model, for every refusal to say the same thing. */
export function noKvCache(config: RecurrentConfig): string {
  if (config.architecture === 'recurrent_gemma') {
    return `${config.hfArchitecture} carries a fixed-size state (recurrent layers and a local-attention ring buffer), not a growing KV cache`;
  }
  return `${config.hfArchitecture} carries a fixed-size recurrent state, not a KV cache`;
}

/**
 * The DecoderForward face of a recurrent model, for callers that run a whole sequence from scratch (`kvlens
 * logits`): a call with an empty cache runs from the initial state; a call with a cache, or asking for
 * attention statistics, is refused naming the model type (generation and sweeps use the carried state instead).
 */
export class SequenceOnlyForward implements DecoderForward {
  readonly config: ModelConfig;

  constructor(
    private readonly recurrent: RecurrentForward,
    private readonly where: string,
  ) {
    this.config = attentionFreeConfig(recurrent.config);
  }

  async forward(input: ForwardInput): Promise<ForwardOutput> {
    const cached = input.past.reduce((sum, layer) => sum + layer.length, 0);
    if (cached > 0) throw new KvlensError(`${noKvCache(this.recurrent.config)}: a forward pass on a cache of ${cached} slots cannot run`, this.where);
    if (input.attention) throw new KvlensError(`${noKvCache(this.recurrent.config)}: it has no attention statistics to report`, this.where);
    const logits = this.recurrent.forward(input.tokens, this.recurrent.initialState(), input.logits ?? 'last');
    const empty = Array.from({ length: this.config.numLayers }, () => new Float32Array(0));
    return { logits, newKeys: empty, newValues: empty.slice(), attention: null };
  }
}

/**
 * Weights (fp32, as the typed-array forward holds them), the carried state where a transformer's KV cache would
 * be (the same at any context length), and the runtime plus prefill's chunk of activations.
 */
export function recurrentMemoryEstimate(plan: RecurrentModelPlan, contextTokens: number): MemoryEstimate {
  const { config } = plan;
  const parameters = plan.tensors.parameterCount;
  const weightBytes = parameters * Float32Array.BYTES_PER_ELEMENT;
  // Prefill runs in chunks, so its transient activations are bounded by a chunk: a few [chunk, 2 x width]
  // arrays per layer call, and logits for the last token only.
  const width = 2 * Math.max(config.intermediateSize, config.hiddenSize);
  const scratch = (8 * PREFILL_CHUNK * width + config.vocabSize) * Float32Array.BYTES_PER_ELEMENT;
  const runtimeBytes = RUNTIME_BASE_BYTES + scratch;
  return { parameters, weightBytes, kvBytes: plan.stateBytes, runtimeBytes, contextTokens, totalBytes: weightBytes + plan.stateBytes + runtimeBytes };
}

export async function openRecurrentSession(modelPath: string, options: SessionOptions = {}): Promise<ModelSession> {
  if (options.weights === 'int8' || options.weights === 'int4') {
    throw new KvlensError(`--weights ${options.weights} does not apply: the recurrent forward holds fp32 weights (use auto or fp32)`, modelPath);
  }
  if (options.provider === 'cuda' || options.provider === 'webgpu') {
    throw new KvlensError(`--provider ${options.provider} does not apply: the recurrent forward runs on the CPU (use auto or cpu)`, modelPath);
  }
  // Headers first, and the memory check before a byte of weights is read.
  const plan = planRecurrentModel(modelPath);
  const estimate = recurrentMemoryEstimate(plan, options.contextTokens ?? 4096);
  checkFitsInMemory(estimate, modelPath);
  // A missing or broken tokenizer.json is named before the weights are read.
  const tokenizer = loadTokenizer(modelPath);
  const loaded = plan.load();
  const { forward } = loaded;
  const config = forward.config;
  const weightBytes = estimate.weightBytes;
  const embeddingRows = config.vocabSize * config.hiddenSize * Float32Array.BYTES_PER_ELEMENT;
  const weightFormat: WeightFormatPlan = {
    requested: options.weights ?? 'auto',
    quantization: 'fp32',
    graphBytes: weightBytes,
    embeddingBytes: embeddingRows,
    weightBytes,
    reason: 'fp32: the recurrent forward (typed arrays) upcasts every weight',
    hasFloatMatrices: true,
  };
  const model: ModelSummary = {
    dir: modelPath,
    config: attentionFreeConfig(config),
    parameterCount: loaded.parameterCount,
    weightBytesOnDisk: loaded.weightBytesOnDisk,
    dtype: loaded.dtype,
    dtypeShares: loaded.dtypeShares,
  };
  return {
    model,
    tokenizer,
    forward: new SequenceOnlyForward(forward, modelPath),
    recurrent: forward,
    provider: 'cpu',
    fallbackReasons: [],
    modelPath,
    weightFormat,
    weightFormatLabel: weightFormat.requested === 'auto' ? 'fp32 (auto)' : 'fp32',
    kvDtype: options.kvDtype ?? DEFAULT_KV_DTYPE,
    memoryEstimate: estimate,
    dispose: async () => {},
  };
}

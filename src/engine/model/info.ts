// The facts `kvlens info` prints about a model.
import { describeAttentionLayout, kvBytesPerToken } from './config';
import { formatBytes } from '../format';
import type { DtypeShare, ModelSummary, StorageDtype } from './types';
import type { WeightFormatPlan } from './weightFormat';

export interface ModelInfo {
  dir: string;
  architecture: string;
  hfArchitecture: string;
  parameters: number;
  dtype: StorageDtype;
  /** Storage types and their share of the parameters, largest first (several in most GGUF files). */
  dtypeShares: DtypeShare[];
  weightBytesOnDisk: number;
  /** Weights as the engine holds them: the graph in its format (the embedding table is read from the file per lookup). */
  weightBytesInMemory: number;
  /** How the weights are held, e.g. "int8 (auto)", and why. */
  weightFormat: string;
  weightFormatReason: string;
  /** Full-precision K+V for 1000 tokens across all layers, in the engine's fp32 and in fp16. */
  kvBytesPer1kTokens: { fp32: number; fp16: number };
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  hiddenSize: number;
  intermediateSize: number;
  vocabSize: number;
  contextLength: number;
  tiedEmbeddings: boolean;
  attentionBias: boolean;
  /** Full or sliding-window attention per layer (describeAttentionLayout), plus Qwen3's q/k norm when present. */
  attentionLayout: string;
  ropeTheta: number;
  /** Human-readable rope scaling, or 'none'. */
  ropeScaling: string;
}

export function modelInfo(loaded: ModelSummary, weights?: WeightFormatPlan, weightsLabel?: string): ModelInfo {
  const c = loaded.config;
  const scaling = c.ropeScaling;
  return {
    dir: loaded.dir,
    architecture: c.architecture,
    hfArchitecture: c.hfArchitecture,
    parameters: loaded.parameterCount,
    dtype: loaded.dtype,
    dtypeShares: loaded.dtypeShares ?? [{ dtype: loaded.dtype, share: 1 }],
    weightBytesOnDisk: loaded.weightBytesOnDisk,
    weightBytesInMemory: weights ? weights.weightBytes : loaded.parameterCount * 4,
    weightFormat: weightsLabel ?? 'fp32',
    weightFormatReason: weights?.reason ?? 'every weight upcast to fp32',
    kvBytesPer1kTokens: { fp32: kvBytesPerToken(c, 4) * 1000, fp16: kvBytesPerToken(c, 2) * 1000 },
    layers: c.numLayers,
    heads: c.numHeads,
    kvHeads: c.numKvHeads,
    headDim: c.headDim,
    hiddenSize: c.hiddenSize,
    intermediateSize: c.intermediateSize,
    vocabSize: c.vocabSize,
    contextLength: c.maxPositionEmbeddings,
    tiedEmbeddings: c.tieWordEmbeddings,
    attentionBias: c.attentionBias,
    attentionLayout: `${describeAttentionLayout(c)}${c.qkNorm ? '; q/k RMSNorm per head' : ''}`,
    ropeTheta: c.ropeTheta,
    ropeScaling: scaling
      ? `${scaling.type} (factor ${scaling.factor}, low ${scaling.lowFreqFactor}, high ${scaling.highFreqFactor}, original context ${scaling.originalMaxPositionEmbeddings})`
      : 'none',
  };
}

/** Parameter share as a percentage; shares that round to 0 still show as present. */
function formatShare(share: number): string {
  const percent = share * 100;
  return percent >= 1 ? `${Math.round(percent)}%` : '<1%';
}

/** Aligned "label  value" lines for a terminal. */
export function formatModelInfo(info: ModelInfo): string {
  const rows: Array<[string, string]> = [
    ['model', info.dir],
    ['architecture', `${info.architecture} (${info.hfArchitecture})`],
    ['parameters', info.parameters.toLocaleString('en-US')],
    ['dtype on disk', info.dtypeShares.length > 1 ? info.dtypeShares.map((s) => `${s.dtype} ${formatShare(s.share)}`).join(', ') : info.dtype],
    ['weights on disk', formatBytes(info.weightBytesOnDisk)],
    ['weights in memory', `${formatBytes(info.weightBytesInMemory)} (${info.weightFormat}: ${info.weightFormatReason})`],
    ['KV cache per 1k tokens', `${formatBytes(info.kvBytesPer1kTokens.fp32)} fp32, ${formatBytes(info.kvBytesPer1kTokens.fp16)} fp16`],
    ['layers', String(info.layers)],
    ['attention heads', `${info.heads} (${info.kvHeads} KV heads, head dim ${info.headDim})`],
    ['hidden / MLP size', `${info.hiddenSize} / ${info.intermediateSize}`],
    ['vocabulary', info.vocabSize.toLocaleString('en-US')],
    ['context length', info.contextLength.toLocaleString('en-US')],
    ['tied embeddings', info.tiedEmbeddings ? 'yes' : 'no'],
    ['q/k/v biases', info.attentionBias ? 'yes' : 'no'],
    ['attention', info.attentionLayout],
    ['rope theta', String(info.ropeTheta)],
    ['rope scaling', info.ropeScaling],
  ];
  const width = Math.max(...rows.map(([label]) => label.length));
  return rows.map(([label, value]) => `${label.padEnd(width)}  ${value}`).join('\n');
}

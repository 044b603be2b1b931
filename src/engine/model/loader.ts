// Finds a model, validates every tensor against its config before reading data, and loads fp32 weights.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { freemem, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { KvlensError } from '../errors';
import { HF_CONFIG_KEYS, kvBytesPerToken, readConfig, type ModelConfig } from './config';
import { ggufConfig, ggufConfigKeys, ggufHfTensors, openGguf, readGgufTensors } from './gguf';
import { cachedSnapshotDir, hfCacheDir, isRepoId } from './download';
import { openSafetensorsCheckpoint, readCheckpointTensors } from './safetensors';
import type { DtypeShare, LoadedModel, StorageDtype, WeightMap } from './types';
import { describeWeightFormat, planWeightFormat, type WeightFormatPlan, type WeightsChoice } from './weightFormat';
import { GgufWeightSource, SafetensorsWeightSource, type WeightSource } from './weightSource';
import { defaultChunkSize } from './prefill';

/** Where `default` may live: beside the sources (src/engine/model) or beside the bundle (dist/). */
export function defaultModelCandidates(): string[] {
  return [
    resolve(__dirname, '..', '..', '..', 'models', 'default'),
    resolve(__dirname, '..', 'models', 'default'),
    resolve(__dirname, '..', '..', 'models', 'default'),
  ];
}

/** 'default' -> the bundled model folder; 'org/name' -> its cached Hugging Face snapshot; otherwise a model folder or a .gguf file. */
export function resolveModelDir(spec: string): string {
  if (spec === 'default') {
    const candidates = defaultModelCandidates();
    const found = candidates.find((dir) => existsSync(join(dir, 'config.json')));
    if (!found) throw new KvlensError(`the default model is not installed (looked in ${candidates.join(', ')})`, 'default');
    return found;
  }
  const path = resolve(spec);
  if (!existsSync(path) && isRepoId(spec)) {
    // "org/name" that is not a local path: the snapshot a previous `kvlens download` left in the Hugging Face cache.
    const snapshot = cachedSnapshotDir(spec);
    if (snapshot) return resolveModelDir(snapshot);
    throw new KvlensError(`not a local folder and not in the Hugging Face cache (${hfCacheDir()}): run \`kvlens download ${spec}\` first`, spec);
  }
  if (!existsSync(path)) throw new KvlensError('no such model folder or .gguf file', spec);
  const stats = statSync(path);
  if (stats.isDirectory()) {
    if (existsSync(join(path, 'config.json'))) return path;
    const gguf = singleGgufIn(path);
    if (gguf) return gguf;
    throw new KvlensError('not a model folder: missing config.json (a Hugging Face model folder needs config.json, model.safetensors and tokenizer.json)', path);
  }
  if (stats.isFile() && path.toLowerCase().endsWith('.gguf')) return path;
  throw new KvlensError('not a model folder or a .gguf file', path);
}

export function isGgufPath(path: string): boolean {
  return path.toLowerCase().endsWith('.gguf');
}

/** A folder without config.json that holds exactly one .gguf file stands for that file. */
function singleGgufIn(dir: string): string | null {
  const ggufs = readdirSync(dir).filter(isGgufPath).sort();
  if (ggufs.length > 1) {
    throw new KvlensError(`folder holds several .gguf files (${ggufs.join(', ')}) and no config.json: name the .gguf file to load`, dir);
  }
  return ggufs.length === 1 ? join(dir, ggufs[0]) : null;
}

/** The folder or .gguf file to read: a config-less folder with one .gguf resolves to that file. */
function weightSource(dirOrFile: string): string {
  const source = resolve(dirOrFile);
  if (isGgufPath(source) || !existsSync(source) || !statSync(source).isDirectory() || existsSync(join(source, 'config.json'))) return source;
  return singleGgufIn(source) ?? source;
}

export interface ExpectedTensor {
  shape: number[];
}

/** Every tensor the engine's forward pass reads for this config, with its HF shape. */
export function expectedTensors(config: ModelConfig): Map<string, ExpectedTensor> {
  const { hiddenSize: h, intermediateSize: inter, numHeads, numKvHeads, headDim, vocabSize } = config;
  const q = numHeads * headDim;
  const kv = numKvHeads * headDim;
  const expected = new Map<string, ExpectedTensor>();
  expected.set('model.embed_tokens.weight', { shape: [vocabSize, h] });
  for (let l = 0; l < config.numLayers; l++) {
    const p = `model.layers.${l}.`;
    expected.set(`${p}input_layernorm.weight`, { shape: [h] });
    expected.set(`${p}self_attn.q_proj.weight`, { shape: [q, h] });
    expected.set(`${p}self_attn.k_proj.weight`, { shape: [kv, h] });
    expected.set(`${p}self_attn.v_proj.weight`, { shape: [kv, h] });
    expected.set(`${p}self_attn.o_proj.weight`, { shape: [h, q] });
    if (config.attentionBias) {
      expected.set(`${p}self_attn.q_proj.bias`, { shape: [q] });
      expected.set(`${p}self_attn.k_proj.bias`, { shape: [kv] });
      expected.set(`${p}self_attn.v_proj.bias`, { shape: [kv] });
    }
    if (config.qkNorm) {
      expected.set(`${p}self_attn.q_norm.weight`, { shape: [headDim] });
      expected.set(`${p}self_attn.k_norm.weight`, { shape: [headDim] });
    }
    expected.set(`${p}post_attention_layernorm.weight`, { shape: [h] });
    if (config.architecture === 'gemma2' || config.architecture === 'gemma3') {
      expected.set(`${p}pre_feedforward_layernorm.weight`, { shape: [h] });
      expected.set(`${p}post_feedforward_layernorm.weight`, { shape: [h] });
    }
    expected.set(`${p}mlp.gate_proj.weight`, { shape: [inter, h] });
    expected.set(`${p}mlp.up_proj.weight`, { shape: [inter, h] });
    expected.set(`${p}mlp.down_proj.weight`, { shape: [h, inter] });
  }
  expected.set('model.norm.weight', { shape: [h] });
  if (!config.tieWordEmbeddings) expected.set('lm_head.weight', { shape: [vocabSize, h] });
  return expected;
}

/** Llama's and Qwen3's attention_bias also puts a bias on o_proj (Qwen2's q/k/v biases do not). */
function optionalTensors(config: ModelConfig): Map<string, ExpectedTensor> {
  const optional = new Map<string, ExpectedTensor>();
  if ((config.architecture === 'llama' || config.architecture === 'qwen3') && config.attentionBias) {
    for (let l = 0; l < config.numLayers; l++) optional.set(`model.layers.${l}.self_attn.o_proj.bias`, { shape: [config.hiddenSize] });
  }
  return optional;
}

// Buffers some exporters save that carry no learned weights.
const IGNORABLE = /(^|\.)rotary_emb\.inv_freq$/;

interface StoredTensor {
  shape: number[];
  dtype: StorageDtype;
  bytes: number;
  /** The file to blame in errors. */
  file: string;
}

/** A checkpoint whose config and tensor table are known but whose data is not yet read. */
export interface ModelPlan {
  /** The folder holding the model (for a .gguf file, the folder it is in). */
  dir: string;
  /** The folder or .gguf file the weights come from. */
  source: string;
  format: 'safetensors' | 'gguf';
  config: ModelConfig;
  /** Tensor names the engine will read, with their stored shapes. */
  tensorNames: string[];
  parameterCount: number;
  weightBytesOnDisk: number;
  /** The storage type of most parameters. */
  dtype: StorageDtype;
  /** Every storage type present, with its share of the parameters, largest first (GGUF files mix several). */
  dtypeShares: DtypeShare[];
  read(): WeightMap;
  /** The stored tensors, read on demand (close it when done). */
  storedWeights(): WeightSource & { close(): void };
}

function sameShape(a: number[], b: number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Where a config's layer count comes from, for the error when the weights hold fewer layers. */
interface LayerCountSource {
  file: string;
  key: string;
}

/**
 * Refuses a layer count the tensor table cannot hold before anything is sized by it (the expected-tensor
 * table has a dozen entries per layer).
 */
function checkLayerCount(config: ModelConfig, stored: Map<string, StoredTensor>, where: string, source: LayerCountSource): void {
  const layers = new Set<number>();
  for (const name of stored.keys()) {
    const match = /^model\.layers\.(\d+)\./.exec(name);
    if (match) layers.add(Number(match[1]));
  }
  if (config.numLayers <= layers.size) return;
  const held = layers.size === 0 ? 'no layer tensors' : `tensors of ${layers.size} layer${layers.size === 1 ? '' : 's'}`;
  throw new KvlensError(`"${source.key}" is ${config.numLayers} but the weights (${where}) hold ${held}`, source.file);
}

/** What a checked tensor table tells of a checkpoint, whatever its format. */
type CheckedTable = Pick<ModelPlan, 'config' | 'tensorNames' | 'parameterCount' | 'weightBytesOnDisk' | 'dtype' | 'dtypeShares'>;

function planFromTable(config: ModelConfig, stored: Map<string, StoredTensor>, where: string, layerSource: LayerCountSource): CheckedTable {
  checkLayerCount(config, stored, where, layerSource);
  // transformers ties lm_head to the embedding when asked to, and a checkpoint without lm_head can only mean a tie.
  const tied = config.tieWordEmbeddings || !stored.has('lm_head.weight');
  const effective: ModelConfig = { ...config, tieWordEmbeddings: tied };
  const expected = expectedTensors(effective);
  const optional = optionalTensors(effective);
  const names: string[] = [];
  for (const [name, want] of expected) {
    const have = stored.get(name);
    if (!have) throw new KvlensError(`missing tensor "${name}" (expected shape [${want.shape.join(', ')}] for this config)`, where);
    if (!sameShape(have.shape, want.shape)) {
      throw new KvlensError(`tensor "${name}" has shape [${have.shape.join(', ')}] but config.json implies [${want.shape.join(', ')}]`, have.file);
    }
    names.push(name);
  }
  for (const [name, have] of stored) {
    if (expected.has(name) || IGNORABLE.test(name) || (name === 'lm_head.weight' && tied)) continue;
    const want = optional.get(name);
    if (want) {
      if (!sameShape(have.shape, want.shape)) {
        throw new KvlensError(`tensor "${name}" has shape [${have.shape.join(', ')}] but config.json implies [${want.shape.join(', ')}]`, have.file);
      }
      names.push(name);
      continue;
    }
    // Silently dropping a learned weight (mlp biases, q/k norms, ...) would run a different model.
    throw new KvlensError(`unexpected tensor "${name}": the ${config.hfArchitecture} forward pass has no use for it (unsupported variant of the architecture)`, have.file);
  }
  let parameterCount = 0;
  let bytes = 0;
  const elementsByDtype = new Map<StorageDtype, number>();
  for (const name of names) {
    const have = stored.get(name)!;
    const count = have.shape.reduce((a, b) => a * b, 1);
    parameterCount += count;
    bytes += have.bytes;
    elementsByDtype.set(have.dtype, (elementsByDtype.get(have.dtype) ?? 0) + count);
  }
  const dtypeShares = [...elementsByDtype.entries()].sort((a, b) => b[1] - a[1]).map(([dtype, count]) => ({ dtype, share: count / parameterCount }));
  return { config: effective, tensorNames: names, parameterCount, weightBytesOnDisk: bytes, dtype: dtypeShares[0].dtype, dtypeShares };
}

/** Reads config and tensor tables (no weight data) and validates every tensor name and shape. */
export function inspectModel(dirOrFile: string): ModelPlan {
  const source = weightSource(dirOrFile);
  return isGgufPath(source) ? inspectGguf(source) : inspectSafetensors(source);
}

function inspectGguf(source: string): ModelPlan {
  const gguf = openGguf(source);
  const config = ggufConfig(gguf);
  const { tensors, unmapped } = ggufHfTensors(gguf);
  if (unmapped.length > 0) {
    throw new KvlensError(`unexpected tensors ${unmapped.slice(0, 5).map((n) => `"${n}"`).join(', ')}: not part of a ${config.hfArchitecture} the engine supports`, source);
  }
  const stored = new Map<string, StoredTensor>();
  for (const [name, t] of tensors) stored.set(name, { shape: t.shape, dtype: t.info.format.dtype, bytes: t.info.bytes, file: source });
  const table = planFromTable(config, stored, source, { file: source, key: ggufConfigKeys(config.architecture).numLayers });
  return {
    dir: dirname(source),
    source,
    format: 'gguf',
    ...table,
    read: () => readGgufTensors(gguf, table.config, table.tensorNames),
    storedWeights: () => new GgufWeightSource(gguf, table.config, table.tensorNames),
  };
}

function inspectSafetensors(source: string): ModelPlan {
  const config = readConfig(source);
  const checkpoint = openSafetensorsCheckpoint(source);
  const stored = new Map<string, StoredTensor>();
  for (const [name, header] of checkpoint.tensorFile) {
    const entry = header.tensors.get(name)!;
    stored.set(name, { shape: entry.shape, dtype: entry.dtype, bytes: entry.end - entry.begin, file: header.file });
  }
  const where = checkpoint.headers.length > 1 ? join(source, 'model.safetensors.index.json') : checkpoint.headers[0].file;
  const table = planFromTable(config, stored, where, { file: join(source, 'config.json'), key: HF_CONFIG_KEYS.numLayers });
  return {
    dir: source,
    source,
    format: 'safetensors',
    ...table,
    read: () => readCheckpointTensors(checkpoint, table.tensorNames),
    storedWeights: () => new SafetensorsWeightSource(checkpoint, table.tensorNames),
  };
}

/** Loads a model folder (safetensors) or .gguf file: validated config and fp32 weights in HF layout. */
export function loadModel(dirOrFile: string): LoadedModel {
  const plan = inspectModel(dirOrFile);
  const weights = plan.read();
  return {
    dir: plan.dir,
    config: plan.config,
    weights,
    parameterCount: plan.parameterCount,
    weightBytesOnDisk: plan.weightBytesOnDisk,
    dtype: plan.dtype,
    dtypeShares: plan.dtypeShares,
  };
}

/** Parameters implied by a config (what expectedTensors lists), without looking at any file. */
export function parameterCountFor(config: ModelConfig): number {
  let total = 0;
  for (const [, t] of expectedTensors(config)) total += t.shape.reduce((a, b) => a * b, 1);
  for (const [, t] of optionalTensors(config)) total += t.shape.reduce((a, b) => a * b, 1);
  return total;
}

export interface MemoryEstimate {
  parameters: number;
  /** Weights as the engine holds them (fp32 when estimated from a config alone), times `weightCopies`. */
  weightBytes: number;
  /** Full K and V for `contextTokens` tokens across all layers. */
  kvBytes: number;
  /** The process and runtime themselves, plus prefill's transient attention scores at `contextTokens`. */
  runtimeBytes: number;
  contextTokens: number;
  totalBytes: number;
  /** Size of the weight files (set when estimated from a model on disk). */
  filesBytes?: number;
  /** How the weights are held (set when estimated from a model on disk). */
  weightFormat?: WeightFormatPlan;
}

export interface MemoryEstimateOptions {
  /** 4 for the fp32 engine cache (default), 2 for fp16. */
  kvBytesPerElement?: number;
  /** How many fp32 copies of the weights live at once (config-only estimates). */
  weightCopies?: number;
  /** The weight format to estimate a model on disk for (default auto). */
  weights?: WeightsChoice;
  /** Free memory `auto` decides against (default: free now). */
  freeBytes?: number;
}

/** Node, onnxruntime and a tokenizer loaded, before any weight: measured at about 350 MiB on Linux x64. */
export const RUNTIME_BASE_BYTES = 350 * 1024 * 1024;

/**
 * The process itself plus prefill's transient attention scores: each chunk's [heads, chunk, n] fp32
 * probabilities exist about three times at once (scores, biased scores, softmax) at the longest context.
 */
export function runtimeBytesFor(config: ModelConfig, contextTokens: number): number {
  const n = Math.max(contextTokens, 1);
  const scores = config.numHeads * defaultChunkSize(config.numHeads, n) * n * Float32Array.BYTES_PER_ELEMENT;
  return RUNTIME_BASE_BYTES + 3 * scores;
}

export function estimateMemory(config: ModelConfig, contextTokens: number, options: MemoryEstimateOptions = {}): MemoryEstimate {
  const parameters = parameterCountFor(config);
  const weightBytes = parameters * Float32Array.BYTES_PER_ELEMENT * (options.weightCopies ?? 1);
  const kvBytes = kvBytesPerToken(config, options.kvBytesPerElement ?? 4) * contextTokens;
  const runtimeBytes = runtimeBytesFor(config, contextTokens);
  return { parameters, weightBytes, kvBytes, runtimeBytes, contextTokens, totalBytes: weightBytes + kvBytes + runtimeBytes };
}

/**
 * The estimate for a model on disk, from its headers alone (no weight is read): the weights in the
 * format they will be held in (see weightFormat.ts) plus the full KV cache.
 */
export function estimateModelMemory(dirOrFile: string, contextTokens: number, options: MemoryEstimateOptions = {}): MemoryEstimate {
  let plan: ModelPlan;
  try {
    plan = inspectModel(dirOrFile);
  } catch (error) {
    // Unreadable weight headers: the load will name the problem; the estimate still answers from the
    // config alone, assuming fp32 weights.
    if (!(error instanceof KvlensError)) throw error;
    return configOnlyEstimate(dirOrFile, contextTokens, options);
  }
  const base = estimateMemory(plan.config, contextTokens, options);
  const source = plan.storedWeights();
  try {
    const weightFormat = planWeightFormat(source, options.weights ?? 'auto', base.kvBytes, options.freeBytes);
    return {
      ...base,
      parameters: plan.parameterCount,
      weightBytes: weightFormat.weightBytes,
      totalBytes: weightFormat.weightBytes + base.kvBytes + base.runtimeBytes,
      filesBytes: filesBytesOf(plan),
      weightFormat,
    };
  } finally {
    source.close();
  }
}

function configOnlyEstimate(dirOrFile: string, contextTokens: number, options: MemoryEstimateOptions): MemoryEstimate {
  const source = weightSource(dirOrFile);
  if (isGgufPath(source)) return { ...estimateMemory(ggufConfig(openGguf(source)), contextTokens, options), filesBytes: statSync(source).size };
  const files = readdirSync(source).filter((name) => name.endsWith('.safetensors'));
  const filesBytes = files.reduce((sum, name) => sum + statSync(join(source, name)).size, 0);
  return { ...estimateMemory(readConfig(source), contextTokens, options), filesBytes };
}

function filesBytesOf(plan: ModelPlan): number {
  if (plan.format === 'gguf') return statSync(plan.source).size;
  return readdirSync(plan.source)
    .filter((name) => name.endsWith('.safetensors'))
    .reduce((sum, name) => sum + statSync(join(plan.source, name)).size, 0);
}

export function formatGiB(bytes: number): string {
  return `${(bytes / 1024 ** 3).toFixed(2)} GiB`;
}

export interface MemoryAvailability {
  freeBytes: number;
  totalBytes: number;
}

/** Refuses up front when the estimate exceeds the memory free now. */
export function checkFitsInMemory(estimate: MemoryEstimate, what: string, available: MemoryAvailability = { freeBytes: freemem(), totalBytes: totalmem() }): void {
  if (estimate.totalBytes <= available.freeBytes) return;
  throw new KvlensError(
    `needs about ${formatGiB(estimate.totalBytes)} (weights ${formatGiB(estimate.weightBytes)} in ${estimate.weightFormat ? describeWeightFormat(estimate.weightFormat) : 'fp32'} + KV cache ${formatGiB(estimate.kvBytes)} for ` +
      `${estimate.contextTokens} tokens + runtime and prefill scratch ${formatGiB(estimate.runtimeBytes)}) but only ${formatGiB(available.freeBytes)} of ${formatGiB(available.totalBytes)} is free: ` +
      `use a shorter context, a smaller model${estimate.weightFormat?.hasFloatMatrices && estimate.weightFormat.quantization !== 'int4' ? ' or --weights int4' : ''}`,
    what,
  );
}

// Which model folders are recurrent, and loading one: the dispatch point the session calls before the
// attention-model loader (which refuses these architectures).
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { KvlensError } from '../../errors';
import type { DtypeShare, StorageDtype } from '../types';
import { planRecurrentTensors, readConfigJson, readRecurrentTensors, type Json, type RecurrentCheckpoint, type RecurrentTensorPlan } from './checkpoint';
import { mambaCheckpoint } from './mamba';
import { mamba2Checkpoint } from './mamba2';
import { rwkvCheckpoint } from './rwkv';
import { recurrentGemmaCheckpoint } from './recurrentGemma';
import type { RecurrentConfig, RecurrentForward } from './types';

const ARCHITECTURES = {
  MambaForCausalLM: mambaCheckpoint,
  Mamba2ForCausalLM: mamba2Checkpoint,
  RwkvForCausalLM: rwkvCheckpoint,
  RecurrentGemmaForCausalLM: recurrentGemmaCheckpoint,
} satisfies Record<string, (dir: string, json: Json, file: string) => RecurrentCheckpoint>;

export type RecurrentArchitecture = keyof typeof ARCHITECTURES;

export const RECURRENT_ARCHITECTURES = Object.keys(ARCHITECTURES) as RecurrentArchitecture[];

const MODEL_TYPES: Record<string, RecurrentArchitecture> = {
  mamba: 'MambaForCausalLM',
  mamba2: 'Mamba2ForCausalLM',
  rwkv: 'RwkvForCausalLM',
  recurrent_gemma: 'RecurrentGemmaForCausalLM',
};

/** The recurrent architecture a model folder's config.json declares, or null (a .gguf file, an attention model). */
export function recurrentArchitectureOf(path: string): RecurrentArchitecture | null {
  if (!existsSync(path) || !statSync(path).isDirectory() || !existsSync(join(path, 'config.json'))) return null;
  let json;
  try {
    json = readConfigJson(path).json;
  } catch {
    // The attention loader names the problem with the file.
    return null;
  }
  const architectures = Array.isArray(json.architectures) ? json.architectures : [];
  const named = architectures.find((a): a is string => typeof a === 'string');
  if (named !== undefined) return named in ARCHITECTURES ? (named as RecurrentArchitecture) : null;
  return typeof json.model_type === 'string' ? (MODEL_TYPES[json.model_type] ?? null) : null;
}

/** A recurrent checkpoint whose config and tensor table are checked but whose weights are not yet read. */
export interface RecurrentModelPlan {
  dir: string;
  config: RecurrentConfig;
  /** Bytes the model carries between tokens (the same at any context length). */
  stateBytes: number;
  tensors: RecurrentTensorPlan;
  load(): LoadedRecurrentModel;
}

export interface LoadedRecurrentModel {
  dir: string;
  forward: RecurrentForward;
  parameterCount: number;
  weightBytesOnDisk: number;
  dtype: StorageDtype;
  dtypeShares: DtypeShare[];
}

/** Reads config.json and the safetensors headers (no weight data) and checks every tensor name and shape. */
export function planRecurrentModel(dir: string): RecurrentModelPlan {
  const architecture = recurrentArchitectureOf(dir);
  const { json, file } = readConfigJson(dir);
  if (!architecture) throw new KvlensError(`not a recurrent model (supported: ${RECURRENT_ARCHITECTURES.join(', ')})`, file);
  const checkpoint = ARCHITECTURES[architecture](dir, json, file);
  const tensors = planRecurrentTensors(dir, checkpoint);
  return {
    dir,
    config: checkpoint.config,
    stateBytes: checkpoint.initialState().bytes(),
    tensors,
    load: () => ({
      dir,
      forward: checkpoint.create(readRecurrentTensors(dir, tensors)),
      parameterCount: tensors.parameterCount,
      weightBytesOnDisk: tensors.bytesOnDisk,
      dtype: tensors.dtype,
      dtypeShares: tensors.dtypeShares,
    }),
  };
}

export function loadRecurrentModel(dir: string): LoadedRecurrentModel {
  return planRecurrentModel(dir).load();
}

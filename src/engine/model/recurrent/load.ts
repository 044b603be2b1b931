// Which model folders are recurrent, and loading one: the dispatch point the session calls before the
// attention-model loader (which refuses these architectures).
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { KvlensError } from '../../errors';
import type { DtypeShare, StorageDtype } from '../types';
import { readConfigJson } from './checkpoint';
import { loadMamba } from './mamba';
import { loadMamba2 } from './mamba2';
import { loadRwkv } from './rwkv';
import { loadRecurrentGemma } from './recurrentGemma';
import type { RecurrentForward } from './types';

export const RECURRENT_ARCHITECTURES = ['MambaForCausalLM', 'Mamba2ForCausalLM', 'RwkvForCausalLM', 'RecurrentGemmaForCausalLM'] as const;

const MODEL_TYPES: Record<string, (typeof RECURRENT_ARCHITECTURES)[number]> = {
  mamba: 'MambaForCausalLM',
  mamba2: 'Mamba2ForCausalLM',
  rwkv: 'RwkvForCausalLM',
  recurrent_gemma: 'RecurrentGemmaForCausalLM',
};

/** The recurrent architecture a model folder's config.json declares, or null (a .gguf file, an attention model). */
export function recurrentArchitectureOf(path: string): (typeof RECURRENT_ARCHITECTURES)[number] | null {
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
  if (named !== undefined) return (RECURRENT_ARCHITECTURES as readonly string[]).includes(named) ? (named as (typeof RECURRENT_ARCHITECTURES)[number]) : null;
  return typeof json.model_type === 'string' ? (MODEL_TYPES[json.model_type] ?? null) : null;
}

export interface LoadedRecurrentModel {
  dir: string;
  forward: RecurrentForward;
  parameterCount: number;
  weightBytesOnDisk: number;
  dtype: StorageDtype;
  dtypeShares: DtypeShare[];
}

export function loadRecurrentModel(dir: string): LoadedRecurrentModel {
  const architecture = recurrentArchitectureOf(dir);
  const { json, file } = readConfigJson(dir);
  let loaded;
  if (architecture === 'MambaForCausalLM') loaded = loadMamba(dir, json, file);
  else if (architecture === 'Mamba2ForCausalLM') loaded = loadMamba2(dir, json, file);
  else if (architecture === 'RwkvForCausalLM') loaded = loadRwkv(dir, json, file);
  else if (architecture === 'RecurrentGemmaForCausalLM') loaded = loadRecurrentGemma(dir, json, file);
  else throw new KvlensError(`not a recurrent model (supported: ${RECURRENT_ARCHITECTURES.join(', ')})`, file);
  const { tensors } = loaded;
  return { dir, forward: loaded.forward, parameterCount: tensors.parameterCount, weightBytesOnDisk: tensors.bytesOnDisk, dtype: tensors.dtype, dtypeShares: tensors.dtypeShares };
}

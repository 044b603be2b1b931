// Reads a recurrent model's Hugging Face folder: config.json values with named errors, and the safetensors
// tensors its forward pass needs, each checked by name and shape before any data is read.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { KvlensError } from '../../errors';
import { openSafetensorsCheckpoint, readCheckpointTensors } from '../safetensors';
import type { RecurrentConfig, RecurrentForward, RecurrentState } from './types';
import type { DtypeShare, StorageDtype } from '../types';

export type Json = Record<string, unknown>;

/** Upper bounds well above released recurrent models, so a hostile config sizes nothing huge. */
const LIMITS = { layers: 1024, width: 1 << 17, vocab: 1 << 22 } as const;

export function readConfigJson(dir: string): { json: Json; file: string } {
  const file = join(dir, 'config.json');
  if (!existsSync(file)) throw new KvlensError('missing config.json (a Hugging Face model folder needs config.json, model.safetensors and tokenizer.json)', file);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    throw new KvlensError(`not valid JSON (${(error as Error).message})`, file);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new KvlensError('config.json must hold a JSON object', file);
  return { json: raw as Json, file };
}

/** A positive integer at `key` (or `fallback` when absent), at most `limit`. */
export function configInt(json: Json, key: string, file: string, limit: keyof typeof LIMITS, fallback?: number): number {
  const value = json[key] ?? fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) throw new KvlensError(`"${key}" must be a positive integer, found ${JSON.stringify(json[key])}`, file);
  if (value > LIMITS[limit]) throw new KvlensError(`"${key}" is ${value}, more than any supported model has (at most ${LIMITS[limit]})`, file);
  return value;
}

export function configPositive(json: Json, key: string, file: string, fallback: number): number {
  const value = json[key] ?? fallback;
  if (typeof value !== 'number' || !(value > 0) || !Number.isFinite(value)) throw new KvlensError(`"${key}" must be a positive number, found ${JSON.stringify(json[key])}`, file);
  return value;
}

export function configIds(value: unknown): number[] {
  if (typeof value === 'number') return [value];
  if (Array.isArray(value)) return value.filter((v): v is number => typeof v === 'number');
  return [];
}

export function configDtype(json: Json): string | null {
  return typeof json.torch_dtype === 'string' ? json.torch_dtype : typeof json.dtype === 'string' ? json.dtype : null;
}

/** A recurrent architecture's view of a checkpoint folder: its config, the tensors it reads, how to run it. */
export interface RecurrentCheckpoint {
  config: RecurrentConfig;
  /** Tensor name -> shape the forward pass reads, and tensors it reads when present (a tied lm_head). */
  expected: Map<string, number[]>;
  optional: Map<string, number[]>;
  initialState(): RecurrentState;
  create(tensors: Map<string, Float32Array>): RecurrentForward;
}

export interface RecurrentTensorPlan {
  /** Tensors to read, every one checked by name and shape. */
  names: string[];
  parameterCount: number;
  bytesOnDisk: number;
  dtype: StorageDtype;
  dtypeShares: DtypeShare[];
}

/**
 * Checks the checkpoint's tensor table against `expected` (name -> shape) plus whichever `optional` ones the file
 * holds, from the headers alone: a missing or misshapen tensor, or one the forward pass has no use for, is
 * refused naming the file.
 */
export function planRecurrentTensors(dir: string, { config, expected, optional }: RecurrentCheckpoint): RecurrentTensorPlan {
  const checkpoint = openSafetensorsCheckpoint(dir);
  const where = checkpoint.headers.length > 1 ? join(dir, 'model.safetensors.index.json') : checkpoint.headers[0].file;
  const names: string[] = [];
  const elements = new Map<StorageDtype, number>();
  let parameterCount = 0;
  let bytesOnDisk = 0;
  const check = (name: string, want: number[]) => {
    const header = checkpoint.tensorFile.get(name)!;
    const entry = header.tensors.get(name)!;
    const have = entry.shape;
    if (have.length !== want.length || have.some((d, i) => d !== want[i])) {
      throw new KvlensError(`tensor "${name}" has shape [${have.join(', ')}] but config.json implies [${want.join(', ')}]`, header.file);
    }
    const count = have.reduce((a, b) => a * b, 1);
    names.push(name);
    parameterCount += count;
    bytesOnDisk += entry.end - entry.begin;
    elements.set(entry.dtype, (elements.get(entry.dtype) ?? 0) + count);
  };
  for (const [name, want] of expected) {
    if (!checkpoint.tensorFile.has(name)) throw new KvlensError(`missing tensor "${name}" (expected shape [${want.join(', ')}] for this config)`, where);
    check(name, want);
  }
  for (const [name, header] of checkpoint.tensorFile) {
    if (expected.has(name)) continue;
    const want = optional.get(name);
    if (!want) throw new KvlensError(`unexpected tensor "${name}": the ${config.hfArchitecture} forward pass has no use for it (unsupported variant of the architecture)`, header.file);
    check(name, want);
  }
  const dtypeShares = [...elements.entries()].sort((a, b) => b[1] - a[1]).map(([dtype, count]) => ({ dtype, share: count / parameterCount }));
  return { names, parameterCount, bytesOnDisk, dtype: dtypeShares[0].dtype, dtypeShares };
}

/** Reads the planned tensors whole (3-d gate blocks included), each upcast to fp32 once. */
export function readRecurrentTensors(dir: string, plan: RecurrentTensorPlan): Map<string, Float32Array> {
  const tensors = new Map<string, Float32Array>();
  for (const [name, { data }] of readCheckpointTensors(openSafetensorsCheckpoint(dir), plan.names)) tensors.set(name, data);
  return tensors;
}

export function tensor(tensors: Map<string, Float32Array>, name: string): Float32Array {
  const data = tensors.get(name);
  if (!data) throw new Error(`tensor "${name}" was not read`);
  return data;
}

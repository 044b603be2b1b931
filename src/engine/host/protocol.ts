// The message table between the extension (or any client) and the engine child process.
// One interface, identical in-process (the CLI calls the Engine directly) and across the process boundary.

import { WEIGHT_CHOICES, type WeightsChoice } from '../model/weightFormat';
import { KV_DTYPES, type KvDtype } from '../kv/kv-dtype';
import type { SweepSpec } from '../bench/results';

export interface BenchRequest extends SweepSpec {
  workspace: string;
  model: string;
  provider: ExecutionProviderChoice;
  outFile: string | null;
  maxNewTokens?: number;
  /** How float-stored weight matrices are held (default auto). */
  weights?: WeightsChoice;
  /** What full-precision caches hold keys and values in (default fp16). */
  kvDtype?: KvDtype;
  /** Run lengths beyond the model's max_position_embeddings (refused otherwise). */
  allowLongContext?: boolean;
  shard?: { index: number; count: number } | null;
  /** Restrict the scan to these workspace-relative files (Profile Current File / Selection). */
  files?: string[];
  /** LongBench / RULER / needle JSONL files whose samples are run beside (or, with no tasks, instead of) the workspace's. */
  imports?: string[];
  /** Rows read at most from each imported file. */
  importLimit?: number;
  /** Build samples only around these 0-based line ranges of `files[0]` (Profile Selection). */
  selection?: { file: string; startLine: number; endLine: number } | null;
}

export type ExecutionProviderChoice = 'auto' | 'cuda' | 'webgpu' | 'cpu';

export interface ProgressEvent {
  done: number;
  total: number;
  /** Human-readable step, e.g. "needle 2k d=0.5 · snapkv:ratio=0.5". */
  message: string;
  etaSeconds: number | null;
}

export type ClientMessage =
  | { type: 'bench'; id: number; request: BenchRequest }
  | { type: 'info'; id: number; model: string; provider: ExecutionProviderChoice; weights?: WeightsChoice }
  | { type: 'methods'; id: number }
  | { type: 'estimate'; id: number; model: string; lengths: number[]; methods: string[]; weights?: WeightsChoice; kvDtype?: KvDtype }
  | { type: 'cancel'; id: number };

export type EngineMessage =
  | { type: 'ready'; pid: number }
  | { type: 'progress'; id: number; progress: ProgressEvent }
  | { type: 'log'; id: number; line: string }
  | { type: 'result'; id: number; result: unknown }
  | { type: 'error'; id: number; message: string };

type Check = (value: unknown) => boolean;
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isInt: Check = (v) => typeof v === 'number' && Number.isInteger(v);
const isString: Check = (v) => typeof v === 'string';
const isStringArray: Check = (v) => Array.isArray(v) && v.every(isString);
const isNumberArray: Check = (v) => Array.isArray(v) && v.every((x) => typeof x === 'number' && Number.isFinite(x));
const isProvider: Check = (v) => v === 'auto' || v === 'cuda' || v === 'webgpu' || v === 'cpu';

function hasFields(value: Record<string, unknown>, fields: Record<string, Check>): boolean {
  return Object.entries(fields).every(([key, check]) => check(value[key]));
}

function isBenchRequest(value: unknown): value is BenchRequest {
  return (
    isObject(value) &&
    hasFields(value, {
      workspace: isString,
      model: isString,
      methods: isStringArray,
      tasks: isStringArray,
      lengths: isNumberArray,
      depths: isNumberArray,
      samples: isInt,
      seed: isInt,
      provider: isProvider,
      outFile: (v) => v === null || isString(v),
    }) &&
    (value.files === undefined || isStringArray(value.files)) &&
    (value.weights === undefined || (WEIGHT_CHOICES as readonly unknown[]).includes(value.weights)) &&
    (value.kvDtype === undefined || (KV_DTYPES as readonly unknown[]).includes(value.kvDtype)) &&
    (value.imports === undefined || isStringArray(value.imports))
  );
}

/** Runtime check of a message arriving from a client; anything else is dropped by the receiver. */
export function parseClientMessage(value: unknown): ClientMessage | null {
  if (!isObject(value) || !isInt(value.id)) return null;
  switch (value.type) {
    case 'bench':
      return isBenchRequest(value.request) ? (value as ClientMessage) : null;
    case 'info':
      return isString(value.model) && isProvider(value.provider) && (value.weights === undefined || (WEIGHT_CHOICES as readonly unknown[]).includes(value.weights))
        ? (value as ClientMessage)
        : null;
    case 'estimate':
      return isString(value.model) &&
        isNumberArray(value.lengths) &&
        (value.lengths as number[]).length > 0 &&
        isStringArray(value.methods) &&
        (value.weights === undefined || (WEIGHT_CHOICES as readonly unknown[]).includes(value.weights)) &&
        (value.kvDtype === undefined || (KV_DTYPES as readonly unknown[]).includes(value.kvDtype))
        ? (value as ClientMessage)
        : null;
    case 'methods':
    case 'cancel':
      return value as ClientMessage;
    default:
      return null;
  }
}

/** Runtime check of a message arriving from the engine process. */
export function parseEngineMessage(value: unknown): EngineMessage | null {
  if (!isObject(value)) return null;
  switch (value.type) {
    case 'ready':
      return isInt(value.pid) ? (value as EngineMessage) : null;
    case 'progress': {
      const p = value.progress;
      return isInt(value.id) && isObject(p) && isInt(p.done) && isInt(p.total) && isString(p.message) ? (value as EngineMessage) : null;
    }
    case 'log':
      return isInt(value.id) && isString(value.line) ? (value as EngineMessage) : null;
    case 'result':
      return isInt(value.id) && 'result' in value ? (value as EngineMessage) : null;
    case 'error':
      return isInt(value.id) && isString(value.message) ? (value as EngineMessage) : null;
    default:
      return null;
  }
}

// The message table between the extension (or any client) and the engine child process (engineProcess.ts).
// ENGINE_CALLS pairs every request with the answer it gets; both sides are typed by it, and the runtime checks
// of requests (in the engine) and of answers (in the client) are the table's own entries.

import { WEIGHT_CHOICES, type WeightsChoice } from '../model/weightFormat';
import { KV_DTYPES, type KvDtype } from '../kv/kv-dtype';
import type { ModelInfo } from '../model/info';
import type { StorageDtype } from '../model/types';
import type { Family, MethodInfo, Phase } from '../kv';
import type { RunEstimate } from '../bench/estimate';
import { RESULTS_STATUSES, type ResultsStatus, type SweepSpec } from '../bench/results';
import { EXECUTION_PROVIDERS, RUN_LIMITS, TASK_IDS, type ExecutionProviderChoice } from '../bench/runSettings';
import {
  aBoolean,
  aNonEmptyString,
  aNumber,
  aString,
  anInteger,
  arrayOf,
  check,
  isRecord,
  nullable,
  objectOf,
  oneOf,
  optional,
  refine,
  type Check,
  type Problem,
} from './checks';

export type { ExecutionProviderChoice };

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
  /** The RULER task of imported RULER rows whose path (`<task>/validation.jsonl`) does not name one. */
  rulerTask?: string;
  /** Build samples only around these 0-based line ranges of `files[0]` (Profile Selection). */
  selection?: { file: string; startLine: number; endLine: number } | null;
}

/** What the engine answers to `bench`: the results themselves are in `outFile`. */
export interface BenchAnswer {
  status: ResultsStatus;
  outFile: string | null;
  /** Rows the results file holds. */
  rows: number;
}

/** What the engine answers to `info`: the model as `kvlens info` describes it, and where it runs. */
export interface EngineModelInfo extends ModelInfo {
  executionProvider: string;
  /** One line per provider tried before the one that loaded. */
  providerFallbacks: string[];
}

/** Every request a client can make, what it carries besides `type` and `id`, and what the engine answers. */
export interface EngineCalls {
  bench: { request: { request: BenchRequest }; answer: BenchAnswer };
  info: { request: { model: string; provider: ExecutionProviderChoice; weights?: WeightsChoice }; answer: EngineModelInfo };
  methods: { request: Record<never, never>; answer: MethodInfo[] };
  estimate: {
    request: { model: string; lengths: number[]; methods: string[]; weights?: WeightsChoice; kvDtype?: KvDtype };
    answer: RunEstimate;
  };
}

export type CallType = keyof EngineCalls;
export type CallRequest<K extends CallType> = EngineCalls[K]['request'];
export type CallAnswer<K extends CallType> = EngineCalls[K]['answer'];
export type RequestMessage<K extends CallType = CallType> = { [T in K]: { type: T; id: number } & CallRequest<T> }[K];

export interface ProgressEvent {
  done: number;
  total: number;
  /** Human-readable step, e.g. "needle 2k d=0.5 · snapkv:ratio=0.5". */
  message: string;
  etaSeconds: number | null;
}

export type ClientMessage = RequestMessage | { type: 'cancel'; id: number };

export type EngineMessage =
  | { type: 'ready'; pid: number }
  | { type: 'progress'; id: number; progress: ProgressEvent }
  | { type: 'log'; id: number; line: string }
  /** `result` is the call's answer (`CallAnswer` of the request with this id), checked by the client. */
  | { type: 'result'; id: number; result: unknown }
  | { type: 'error'; id: number; message: string };

// ---- the runtime side of the table ----

const FAMILIES: readonly Family[] = ['baseline', 'quantization', 'token-dropping', 'prompt-compression'];
const PHASES: readonly Phase[] = ['before-prefill', 'after-prefill', 'decode'];
const aWeightsChoice = oneOf<WeightsChoice>(WEIGHT_CHOICES);
const aKvDtype = oneOf<KvDtype>(KV_DTYPES);
const aProvider = oneOf<ExecutionProviderChoice>(EXECUTION_PROVIDERS);
const aCount = anInteger(0);
const aByteCount: Check<number> = check((v, p) => aNumber(v, p) ?? ((v as number) < 0 ? `${p} must not be negative, found ${v}` : null));
const aDepth: Check<number> = check((v, p) => aNumber(v, p) ?? ((v as number) < 0 || (v as number) > 1 ? `${p} must be within [0, 1], found ${v}` : null));

const isBenchRequestShape = objectOf<BenchRequest>({
  workspace: aNonEmptyString,
  model: aNonEmptyString,
  methods: arrayOf(aNonEmptyString, 'must name at least one method'),
  tasks: arrayOf(check<string>(oneOf(TASK_IDS))),
  lengths: arrayOf(anInteger(RUN_LIMITS.minLength), 'must list at least one length'),
  depths: arrayOf(aDepth),
  samples: anInteger(1, RUN_LIMITS.maxSamplesPerCell),
  seed: anInteger(0, RUN_LIMITS.maxSeed),
  provider: aProvider,
  outFile: nullable(aNonEmptyString),
  maxNewTokens: optional(anInteger(1)),
  weights: optional(aWeightsChoice),
  kvDtype: optional(aKvDtype),
  allowLongContext: optional(aBoolean),
  shard: optional(nullable(refine(objectOf({ index: aCount, count: anInteger(1) }), (s, p) => (s.index < s.count ? null : `${p}.index must be below ${p}.count, found ${s.index}/${s.count}`)))),
  files: optional(arrayOf(aNonEmptyString)),
  imports: optional(arrayOf(aNonEmptyString)),
  importLimit: optional(anInteger(1)),
  rulerTask: optional(aNonEmptyString),
  selection: optional(nullable(objectOf({ file: aNonEmptyString, startLine: aCount, endLine: aCount }))),
});

/** The one check of a run request: the extension runs it before sending, the engine on receipt, the CLI on its flags. */
export const checkBenchRequest: Check<BenchRequest> = refine(isBenchRequestShape, (r) =>
  r.tasks.length === 0 && (r.imports ?? []).length === 0 ? 'tasks must name at least one task (or imports list a file to run instead)' : null,
);

const aModelInfo = objectOf<EngineModelInfo>({
  dir: aString,
  architecture: aString,
  hfArchitecture: aString,
  parameters: aCount,
  // Labels shown as they come; the engine's loader is what guarantees the set.
  dtype: check<StorageDtype>(aString),
  dtypeShares: arrayOf(objectOf({ dtype: check<StorageDtype>(aString), share: aNumber })),
  weightBytesOnDisk: aByteCount,
  weightBytesInMemory: aByteCount,
  weightFormat: aString,
  weightFormatReason: aString,
  kvBytesPer1kTokens: objectOf({ fp32: aByteCount, fp16: aByteCount }),
  layers: aCount,
  heads: aCount,
  kvHeads: aCount,
  headDim: aCount,
  hiddenSize: aCount,
  intermediateSize: aCount,
  vocabSize: aCount,
  contextLength: aCount,
  tiedEmbeddings: aBoolean,
  attentionBias: aBoolean,
  attentionLayout: aString,
  ropeTheta: aNumber,
  ropeScaling: aString,
  executionProvider: aString,
  providerFallbacks: arrayOf(aString),
});

const aMethodInfo = objectOf<MethodInfo>({
  name: aNonEmptyString,
  family: oneOf(FAMILIES),
  phases: arrayOf(oneOf(PHASES)),
  summary: aString,
  params: arrayOf(
    objectOf<MethodInfo['params'][number]>({
      name: aNonEmptyString,
      default: nullable(aNumber),
      min: aNumber,
      max: aNumber,
      choices: nullable(arrayOf(aNumber)),
      description: aString,
    }),
  ),
  paper: nullable(objectOf({ authors: aString, year: anInteger(), title: aString, arxiv: aString })),
});

const aRunEstimate = objectOf<RunEstimate>({
  modelPath: aString,
  contextTokens: aCount,
  weightBytes: aByteCount,
  weightFormat: aString,
  kvDtype: aKvDtype,
  fullKvBytes: aByteCount,
  methods: arrayOf(objectOf({ method: aString, kvBytes: nullable(aByteCount), problem: nullable(aString) })),
  totalBytes: aByteCount,
  freeBytes: aByteCount,
  totalMemoryBytes: aByteCount,
  fits: aBoolean,
  summary: aString,
});

/** Every call's request and answer check; a call added to EngineCalls without both does not compile. */
export const ENGINE_CALLS: { [K in CallType]: { request: Check<CallRequest<K>>; answer: Check<CallAnswer<K>> } } = {
  bench: {
    request: objectOf({ request: checkBenchRequest }),
    answer: objectOf<BenchAnswer>({ status: oneOf(RESULTS_STATUSES), outFile: nullable(aString), rows: aCount }),
  },
  info: {
    request: objectOf<CallRequest<'info'>>({ model: aNonEmptyString, provider: aProvider, weights: optional(aWeightsChoice) }),
    answer: aModelInfo,
  },
  methods: { request: objectOf({}), answer: arrayOf(aMethodInfo) },
  estimate: {
    request: objectOf<CallRequest<'estimate'>>({
      model: aNonEmptyString,
      lengths: arrayOf(anInteger(1), 'must list at least one length'),
      methods: arrayOf(aNonEmptyString),
      weights: optional(aWeightsChoice),
      kvDtype: optional(aKvDtype),
    }),
    answer: aRunEstimate,
  },
};

const isCallType = (type: unknown): type is CallType => typeof type === 'string' && Object.hasOwn(ENGINE_CALLS, type);

/** Why `answer` is not what the engine owes for a `type` call, or null when it is. */
export function checkAnswer<K extends CallType>(type: K, answer: unknown): Problem {
  return ENGINE_CALLS[type].answer(answer, `${type} answer`);
}

/** The answer to a `type` call as the table types it, or why it is not one. */
export function readAnswer<K extends CallType>(type: K, answer: unknown): { answer: CallAnswer<K> } | { problem: string } {
  const problem = checkAnswer(type, answer);
  return problem ? { problem } : { answer: answer as CallAnswer<K> };
}

/** Runtime check of a message arriving from a client: the message, or why it is not one. */
export function readClientMessage(value: unknown): { message: ClientMessage } | { problem: string } {
  if (!isRecord(value)) return { problem: 'a message must be an object' };
  const id = anInteger()(value.id, 'id');
  if (id) return { problem: id };
  if (value.type === 'cancel') return { message: value as ClientMessage };
  if (!isCallType(value.type)) return { problem: `unknown message type ${JSON.stringify(value.type)}` };
  const problem = ENGINE_CALLS[value.type].request(value, value.type);
  return problem ? { problem } : { message: value as ClientMessage };
}

/** The message from a client, or null for anything else (which the receiver drops). */
export function parseClientMessage(value: unknown): ClientMessage | null {
  const read = readClientMessage(value);
  return 'message' in read ? read.message : null;
}

const ENGINE_MESSAGE_CHECKS: { [T in EngineMessage['type']]: Check<Omit<Extract<EngineMessage, { type: T }>, 'type'>> } = {
  ready: objectOf({ pid: anInteger() }),
  progress: objectOf({
    id: anInteger(),
    // A progress event is a hint: a malformed ETA is shown as unknown, not a reason to drop the event.
    progress: objectOf<ProgressEvent>({ done: anInteger(), total: anInteger(), message: aString, etaSeconds: check<number | null>(() => null) }),
  }),
  log: objectOf({ id: anInteger(), line: aString }),
  result: objectOf({ id: anInteger(), result: check<unknown>(() => null) }),
  error: objectOf({ id: anInteger(), message: aString }),
};

/** Runtime check of a message arriving from the engine process. */
export function parseEngineMessage(value: unknown): EngineMessage | null {
  if (!isRecord(value) || typeof value.type !== 'string' || !Object.hasOwn(ENGINE_MESSAGE_CHECKS, value.type)) return null;
  if (value.type === 'result' && !('result' in value)) return null;
  const problem = ENGINE_MESSAGE_CHECKS[value.type as EngineMessage['type']](value, value.type);
  return problem ? null : (value as EngineMessage);
}

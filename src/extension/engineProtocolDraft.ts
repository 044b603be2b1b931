// Messages between the extension and the engine child process (dist/engineProcess.js), as the extension
// uses them. The engine's own protocol lives in src/engine/host/protocol.ts; this file is the extension's
// view of it and is reconciled with it (same shapes, validated at runtime on the extension side too).
import {
  type Problem,
  isRecord,
  describeValue,
  expectArray,
  expectInteger,
  expectNonEmptyString,
  expectNumber,
  expectString,
  firstProblem,
} from './validate';

export const EXECUTION_PROVIDERS = ['auto', 'cuda', 'webgpu', 'cpu'] as const;
export type ExecutionProviderSetting = (typeof EXECUTION_PROVIDERS)[number];

export interface RunRequestBody {
  /** Absolute path of the workspace folder the queries are built from. */
  workspace: string;
  /** 'default' (the embedded model) or a model directory. */
  model: string;
  methods: string[];
  tasks: string[];
  lengths: number[];
  depths: number[];
  samples: number;
  seed: number;
  provider: ExecutionProviderSetting;
  /** Where the engine writes the results file. */
  outFile: string;
  /** Restrict the workspace scan to these workspace-relative files (profile current file / selection). */
  files?: string[];
  /** Restrict sites to this 0-based inclusive line range of `files[0]` (profile selection). */
  lineRange?: [number, number];
}

export type EngineRequest =
  | { type: 'run'; id: string; request: RunRequestBody }
  | { type: 'cancel'; id: string }
  | { type: 'info'; id: string; model: string };

export type EngineEvent =
  | { type: 'progress'; id: string; done: number; total: number; message: string; etaSeconds: number | null }
  | { type: 'result'; id: string; resultsFile: string }
  | { type: 'error'; id: string; message: string }
  | { type: 'info'; id: string; info: Record<string, unknown> };

function checkProgress(event: Record<string, unknown>): Problem {
  return firstProblem(
    () => expectInteger(event.done, 'progress.done', 0),
    () => expectInteger(event.total, 'progress.total', 0),
    () => expectString(event.message, 'progress.message'),
    () => (event.etaSeconds === null || event.etaSeconds === undefined ? null : expectNumber(event.etaSeconds, 'progress.etaSeconds')),
  );
}

/** Checks a message from the engine; returns the typed event or a problem naming what was wrong. */
export function parseEngineEvent(raw: unknown): { event: EngineEvent } | { problem: string } {
  if (!isRecord(raw)) return { problem: `engine message must be an object, found ${describeValue(raw)}` };
  const idProblem = expectNonEmptyString(raw.id, 'engine message id');
  if (idProblem) return { problem: idProblem };
  const id = raw.id as string;
  switch (raw.type) {
    case 'progress': {
      const problem = checkProgress(raw);
      if (problem) return { problem };
      const eta = typeof raw.etaSeconds === 'number' ? raw.etaSeconds : null;
      return { event: { type: 'progress', id, done: raw.done as number, total: raw.total as number, message: raw.message as string, etaSeconds: eta } };
    }
    case 'result': {
      const problem = expectNonEmptyString(raw.resultsFile, 'result.resultsFile');
      return problem ? { problem } : { event: { type: 'result', id, resultsFile: raw.resultsFile as string } };
    }
    case 'error': {
      const problem = expectString(raw.message, 'error.message');
      return problem ? { problem } : { event: { type: 'error', id, message: raw.message as string } };
    }
    case 'info':
      return isRecord(raw.info)
        ? { event: { type: 'info', id, info: raw.info } }
        : { problem: `info.info must be an object, found ${describeValue(raw.info)}` };
    default:
      return { problem: `engine message has unknown type ${describeValue(raw.type)}` };
  }
}

/** Checks a run request before it is sent, so a bad setting fails in the extension with a clear message. */
export function checkRunRequest(request: RunRequestBody): Problem {
  const positive = (v: unknown, p: string) => expectInteger(v, p, 1);
  return firstProblem(
    () => expectNonEmptyString(request.workspace, 'run.workspace'),
    () => expectNonEmptyString(request.model, 'run.model'),
    () => (request.methods.length === 0 ? 'run.methods must name at least one method' : null),
    () => expectArray(request.methods, 'run.methods', expectNonEmptyString),
    () => (request.tasks.length === 0 ? 'run.tasks must name at least one task' : null),
    () => expectArray(request.tasks, 'run.tasks', expectNonEmptyString),
    () => expectArray(request.lengths, 'run.lengths', positive),
    () => expectArray(request.depths, 'run.depths', (v, p) => expectNumber(v, p) ?? ((v as number) < 0 || (v as number) > 1 ? `${p} must be within [0, 1], found ${v}` : null)),
    () => expectInteger(request.samples, 'run.samples', 1),
    () => expectInteger(request.seed, 'run.seed', 0),
    () => expectNonEmptyString(request.outFile, 'run.outFile'),
  );
}

// Runs the engine in a child process (dist/engineProcess.js) so inference never blocks the extension host.
// One child serves requests until it exits; a crashed child is reported (with its stderr tail) to every request
// it was serving and to onCrash, and a fresh one is started on the next request. A child is stopped with SIGTERM,
// then SIGKILL after a grace period, and none outlives the host. No `vscode` import: tested with a fake engine.
import { fork, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { KvlensError, describeError } from '../engine/errors';
import {
  readAnswer,
  checkBenchRequest,
  parseEngineMessage,
  type BenchAnswer,
  type BenchRequest,
  type CallAnswer,
  type CallRequest,
  type CallType,
  type ClientMessage,
  type ExecutionProviderChoice,
  type RequestMessage,
} from '../engine/host/protocol';
import type { WeightsChoice } from '../engine/model/weightFormat';
import type { KvDtype } from '../engine/kv/kv-dtype';
import { describeValue } from './validate';

export interface EngineProgress {
  done: number;
  total: number;
  message: string;
  etaSeconds: number | null;
}

/** `results` is what the engine answered: where the results file is and what it holds. */
export type RunOutcome =
  | { status: 'completed'; results: BenchAnswer }
  /** A cancelled run may still answer with the partial results it finished. */
  | { status: 'cancelled'; results: BenchAnswer | null };

export interface RunHandle {
  id: number;
  done: Promise<RunOutcome>;
}

/** An engine process that ended without being asked to: what the user is told. */
export interface EngineCrash {
  pid: number | undefined;
  /** "the engine process exited with code 3", "... was killed by SIGSEGV". */
  reason: string;
  /** Its last lines on stderr (at most STDERR_TAIL_LINES), oldest first. */
  stderrTail: string[];
  /** Requests it was serving, each rejected with the reason and the tail; 0 when it died idle. */
  interrupted: number;
}

export interface EngineClientOptions {
  /** The engine child entry (dist/engineProcess.js). */
  enginePath: string;
  log: (line: string) => void;
  /** How long a cancelled run may take to stop before its process is stopped. */
  cancelGraceMs?: number;
  /** How long a stopped process has between SIGTERM and SIGKILL (to save what it finished and exit). */
  killGraceMs?: number;
  /** Called when the engine process ends on its own (a crash), after the requests it served were rejected. */
  onCrash?: (crash: EngineCrash) => void;
  execArgv?: string[];
  env?: NodeJS.ProcessEnv;
}

interface PendingRun {
  kind: 'run';
  resolve: (outcome: RunOutcome) => void;
  reject: (error: Error) => void;
  onProgress: (progress: EngineProgress) => void;
  cancelRequested: boolean;
  cancelTimer?: ReturnType<typeof setTimeout>;
  child: ChildProcess;
}

interface PendingCall {
  kind: 'call';
  /** Which call: its answer is checked against the protocol's table before `resolve` sees it. */
  type: CallType;
  resolve: (answer: unknown) => void;
  reject: (error: Error) => void;
  child: ChildProcess;
}

type Pending = PendingRun | PendingCall;

const STDERR_TAIL_LINES = 12;
const DEFAULT_KILL_GRACE_MS = 3000;

function isAlive(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

export class EngineClient {
  private child: ChildProcess | null = null;
  private readonly pending = new Map<number, Pending>();
  private readonly stderrTail: string[] = [];
  private nextId = 1;
  private deliberateKill = new WeakSet<ChildProcess>();
  /** Processes whose crash the user has been told of. */
  private readonly reported = new WeakSet<ChildProcess>();
  /** Every process started and not yet exited: whatever happens, none outlives the extension host. */
  private readonly live = new Set<ChildProcess>();
  private readonly killLeftovers = () => {
    for (const child of this.live) if (isAlive(child)) child.kill('SIGKILL');
  };
  private disposed = false;
  /** The last crash, kept so the next run can say the engine was restarted and why. */
  lastCrash: string | null = null;

  constructor(private readonly options: EngineClientOptions) {}

  get running(): boolean {
    return [...this.pending.values()].some((p) => p.kind === 'run');
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  run(request: BenchRequest, onProgress: (progress: EngineProgress) => void): RunHandle {
    const id = this.nextId++;
    const done = new Promise<RunOutcome>((resolve, reject) => {
      const problem = checkBenchRequest(request, '');
      if (problem) throw new KvlensError(problem, 'run request');
      const child = this.ensureChild();
      this.pending.set(id, { kind: 'run', resolve, reject, onProgress, cancelRequested: false, child });
      this.send(child, { type: 'bench', id, request });
    });
    return { id, done };
  }

  /** Model and provider details from the engine (what it would load, and where it would run). */
  info(model: string, provider: ExecutionProviderChoice): Promise<CallAnswer<'info'>> {
    return this.ask('info', { model, provider });
  }

  /** Memory a run will need (weights + KV cache per method at the longest context) and whether it fits now. */
  estimate(model: string, lengths: number[], methods: string[], options: { weights?: WeightsChoice; kvDtype?: KvDtype } = {}): Promise<CallAnswer<'estimate'>> {
    return this.ask('estimate', { model, lengths, methods, ...options });
  }

  /** The engine's method registry (names, families, parameters and one-line summaries). */
  methods(): Promise<CallAnswer<'methods'>> {
    return this.ask('methods', {});
  }

  /** One request answered by one result (or error) message, of the type the protocol's table gives it. */
  private ask<K extends Exclude<CallType, 'bench'>>(type: K, request: CallRequest<K>): Promise<CallAnswer<K>> {
    const id = this.nextId++;
    return new Promise<CallAnswer<K>>((resolve, reject) => {
      const child = this.ensureChild();
      // Checked against ENGINE_CALLS[type].answer in onMessage, so the value is the table's answer type.
      this.pending.set(id, { kind: 'call', type, resolve: resolve as (answer: unknown) => void, reject, child });
      this.send(child, { type, id, ...request } as RequestMessage<K> as ClientMessage);
    });
  }

  /** Asks the engine to stop run `id`; kills the engine process if the run is still going after the grace period. */
  cancel(id: number): void {
    const pending = this.pending.get(id);
    if (!pending || pending.kind !== 'run' || pending.cancelRequested) return;
    pending.cancelRequested = true;
    this.options.log(`cancelling run ${id}`);
    this.send(pending.child, { type: 'cancel', id });
    const grace = this.options.cancelGraceMs ?? 5000;
    pending.cancelTimer = setTimeout(() => {
      if (this.pending.get(id) !== pending) return;
      this.options.log(`run ${id} did not stop within ${grace} ms of the cancel request; stopping the engine process`);
      this.settle(id);
      pending.resolve({ status: 'cancelled', results: null });
      this.stop(pending.child);
    }, grace);
  }

  cancelAll(): void {
    for (const [id, p] of this.pending) if (p.kind === 'run') this.cancel(id);
  }

  /**
   * Stops the engine process (SIGTERM, SIGKILL after the kill grace) and resolves once every process this client
   * started has exited, so a deactivating extension can wait for the engine to save and go. Safe to call twice.
   */
  dispose(): Promise<void> {
    if (this.disposed) return this.allExited();
    this.disposed = true;
    const error = new KvlensError('the engine was shut down because the extension is stopping', this.options.enginePath);
    for (const id of [...this.pending.keys()]) this.settle(id)?.reject(error);
    if (this.child) this.stop(this.child);
    return this.allExited();
  }

  private allExited(): Promise<void> {
    const exits = [...this.live].filter(isAlive).map((child) => new Promise<void>((resolve) => child.once('exit', () => resolve())));
    return Promise.all(exits).then(() => undefined);
  }

  private ensureChild(): ChildProcess {
    if (this.disposed) throw new KvlensError('the engine client is shut down', this.options.enginePath);
    if (this.child && this.child.connected) return this.child;
    if (!existsSync(this.options.enginePath)) {
      throw new KvlensError('engine entry not found; build the extension (npm run build) or reinstall it', this.options.enginePath);
    }
    if (this.lastCrash) this.options.log(`restarting the engine after: ${this.lastCrash}`);
    this.stderrTail.length = 0;
    const child = fork(this.options.enginePath, [], {
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      execArgv: this.options.execArgv ?? [],
      env: this.options.env ?? process.env,
      serialization: 'json',
    });
    this.child = child;
    if (this.live.size === 0) process.on('exit', this.killLeftovers);
    this.live.add(child);
    this.options.log(`engine process ${child.pid ?? '?'} started`);
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => this.capture(chunk, false));
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => this.capture(chunk, true));
    child.on('message', (raw) => this.onMessage(raw));
    child.on('error', (error) => {
      this.options.log(`engine process error: ${describeError(error)}`);
      this.onChildGone(child, `could not run the engine: ${describeError(error)}`);
    });
    child.on('exit', (code, signal) => {
      this.live.delete(child);
      if (this.live.size === 0) process.off('exit', this.killLeftovers);
      const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
      this.options.log(`engine process ${child.pid ?? '?'} ${how}`);
      this.onChildGone(child, `the engine process ${how}`);
    });
    return child;
  }

  private capture(chunk: string, isError: boolean): void {
    for (const line of chunk.split(/\r?\n/)) {
      if (line.trim() === '') continue;
      this.options.log(`[engine${isError ? ' stderr' : ''}] ${line}`);
      if (isError) {
        this.stderrTail.push(line);
        if (this.stderrTail.length > STDERR_TAIL_LINES) this.stderrTail.shift();
      }
    }
  }

  private onChildGone(child: ChildProcess, reason: string): void {
    if (this.child === child) this.child = null;
    const deliberate = this.deliberateKill.has(child);
    const stderrTail = this.stderrTail.slice();
    const tail = stderrTail.length > 0 ? `; last engine output: ${stderrTail.slice(-3).join(' | ')}` : '';
    const crashed = !deliberate && !this.disposed;
    if (crashed) this.lastCrash = `${reason}${tail}`;
    let interrupted = 0;
    for (const [id, p] of [...this.pending]) {
      if (p.child !== child) continue;
      this.settle(id);
      if (p.kind === 'run' && p.cancelRequested) p.resolve({ status: 'cancelled', results: null });
      else if (deliberate) p.reject(new KvlensError('the engine process was stopped before it answered', this.options.enginePath));
      else {
        interrupted++;
        p.reject(new KvlensError(`${reason} before it answered${tail}`, this.options.enginePath));
      }
    }
    // 'error' and 'exit' can both report one death: the user hears of it once.
    if (crashed && !this.reported.has(child)) {
      this.reported.add(child);
      this.options.onCrash?.({ pid: child.pid, reason, stderrTail, interrupted });
    }
  }

  /**
   * Ends `child`: SIGTERM first, so the engine cancels its runs and saves what they finished, then SIGKILL if it
   * has not exited within the kill grace (a process stuck in a long step never sees the SIGTERM).
   */
  private stop(child: ChildProcess): void {
    this.deliberateKill.add(child);
    // Forget it now: the exit event comes later, and a request in between must go to a fresh process.
    if (this.child === child) this.child = null;
    if (!isAlive(child)) return;
    const grace = this.options.killGraceMs ?? DEFAULT_KILL_GRACE_MS;
    this.options.log(`stopping engine process ${child.pid ?? '?'} (SIGTERM; SIGKILL after ${grace} ms)`);
    child.kill('SIGTERM');
    const timer = setTimeout(() => {
      if (!isAlive(child)) return;
      this.options.log(`engine process ${child.pid ?? '?'} did not exit within ${grace} ms of SIGTERM; sending SIGKILL`);
      child.kill('SIGKILL');
    }, grace);
    child.once('exit', () => clearTimeout(timer));
  }

  private send(child: ChildProcess, message: ClientMessage): void {
    if (!child.connected) {
      this.onChildGone(child, 'the engine process is not connected');
      return;
    }
    child.send(message, (error) => {
      if (error) this.options.log(`could not send ${message.type} ${message.id} to the engine: ${describeError(error)}`);
    });
  }

  private settle(id: number): Pending | undefined {
    const pending = this.pending.get(id);
    if (!pending) return undefined;
    this.pending.delete(id);
    if (pending.kind === 'run' && pending.cancelTimer) clearTimeout(pending.cancelTimer);
    return pending;
  }

  private outsideProtocol(id: number, problem: string): KvlensError {
    this.options.log(`the engine's answer to request ${id} does not fit the protocol: ${problem}`);
    return new KvlensError(`answered outside the protocol: ${problem}`, 'engine');
  }

  private onMessage(raw: unknown): void {
    const message = parseEngineMessage(raw);
    if (!message) {
      this.options.log(`dropped a malformed engine message: ${describeValue(raw)}`);
      return;
    }
    if (message.type === 'ready') {
      this.options.log(`engine process ${message.pid} ready`);
      return;
    }
    if (message.type === 'log') {
      this.options.log(`[engine] ${message.line}`);
      return;
    }
    const pending = this.pending.get(message.id);
    if (!pending) {
      this.options.log(`dropped an engine ${message.type} message for unknown request ${message.id}`);
      return;
    }
    switch (message.type) {
      case 'progress':
        if (pending.kind === 'run') {
          const p = message.progress;
          pending.onProgress({ done: p.done, total: p.total, message: p.message, etaSeconds: typeof p.etaSeconds === 'number' && Number.isFinite(p.etaSeconds) ? p.etaSeconds : null });
        }
        return;
      case 'result':
        this.settle(message.id);
        if (pending.kind === 'call') {
          const read = readAnswer(pending.type, message.result);
          if ('answer' in read) pending.resolve(read.answer);
          else pending.reject(this.outsideProtocol(message.id, read.problem));
        } else {
          const read = readAnswer('bench', message.result);
          if ('answer' in read) pending.resolve({ status: pending.cancelRequested ? 'cancelled' : 'completed', results: read.answer });
          else if (pending.cancelRequested) pending.resolve({ status: 'cancelled', results: null });
          else pending.reject(this.outsideProtocol(message.id, read.problem));
        }
        return;
      case 'error':
        this.settle(message.id);
        if (pending.kind === 'run' && pending.cancelRequested) pending.resolve({ status: 'cancelled', results: null });
        else pending.reject(new KvlensError(message.message, 'engine'));
        return;
    }
  }
}

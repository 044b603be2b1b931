// The engine child process: the extension forks this file so inference never runs on the extension host's thread.
// It answers the message table in protocol.ts over Node's IPC channel, one request at a time per id.
import { describeError } from '../errors';
import { openModel, type ModelSession } from '../session';
import { runBench } from '../bench/runner';
import { estimateRun, sweepContextTokens } from '../bench/estimate';
import { listMethods } from '../kv';
import { modelInfo } from '../model/info';
import type { WeightsChoice } from '../model/weightFormat';
import { DEFAULT_KV_DTYPE, type KvDtype } from '../kv/kv-dtype';
import { readClientMessage, type CallAnswer, type CallType, type ClientMessage, type EngineMessage, type ExecutionProviderChoice } from './protocol';

const send = (message: EngineMessage) => process.send?.(message);
/** The one way a call is answered: typed by the protocol's table. */
const answer = <K extends CallType>(id: number, _type: K, result: CallAnswer<K>) => send({ type: 'result', id, result });
const running = new Map<number, AbortController>();
let cached: { key: string; session: ModelSession } | null = null;

/** Keeps the last model loaded: a sweep after `info` on the same model does not read the weights twice. */
async function session(model: string, provider: ExecutionProviderChoice, contextTokens: number, weights: WeightsChoice = 'auto', kvDtype: KvDtype = DEFAULT_KV_DTYPE): Promise<ModelSession> {
  const key = `${model}\u0000${provider}\u0000${weights}\u0000${kvDtype}`;
  if (cached?.key === key) return cached.session;
  if (cached) await cached.session.dispose();
  cached = null;
  const opened = await openModel(model, { provider, contextTokens, weights, kvDtype });
  cached = { key, session: opened };
  return opened;
}

async function handle(message: ClientMessage): Promise<void> {
  switch (message.type) {
    case 'cancel':
      running.get(message.id)?.abort();
      return;
    case 'methods':
      answer(message.id, 'methods', listMethods());
      return;
    case 'estimate':
      answer(message.id, 'estimate', estimateRun(message.model, message.lengths, message.methods, { weights: message.weights, kvDtype: message.kvDtype }));
      return;
    case 'info': {
      const s = await session(message.model, message.provider, 4096, message.weights);
      answer(message.id, 'info', { ...modelInfo(s.model, s.weightFormat, s.weightFormatLabel), executionProvider: s.provider, providerFallbacks: s.fallbackReasons });
      return;
    }
    case 'bench': {
      const controller = new AbortController();
      running.set(message.id, controller);
      try {
        const r = message.request;
        const s = await session(r.model, r.provider, sweepContextTokens(r.lengths), r.weights, r.kvDtype);
        const results = await runBench(s, r, {
          signal: controller.signal,
          onProgress: (progress) => send({ type: 'progress', id: message.id, progress }),
          onLog: (line) => send({ type: 'log', id: message.id, line }),
        });
        answer(message.id, 'bench', { status: results.status, outFile: r.outFile, rows: results.rows.length });
      } finally {
        running.delete(message.id);
      }
      return;
    }
  }
}

process.on('message', (raw: unknown) => {
  const read = readClientMessage(raw);
  if ('problem' in read) {
    process.stderr.write(`kvlens engine: dropped a malformed message (${read.problem}): ${JSON.stringify(raw)?.slice(0, 200)}\n`);
    return;
  }
  const { message } = read;
  handle(message).catch((error) => send({ type: 'error', id: message.id, message: describeError(error) }));
});

// The parent going away (VS Code closing) must not leave an orphaned engine burning CPU.
process.on('disconnect', () => process.exit(0));

// The client stops the process with SIGTERM (a cancel that did not finish in time, the extension stopping): the
// running sweeps are cancelled so their results files say so and keep their rows, then the process exits. A
// second SIGTERM, or the client's SIGKILL after its grace period, ends it at once.
let stopping = false;
process.on('SIGTERM', () => {
  if (stopping) process.exit(143);
  stopping = true;
  for (const controller of running.values()) controller.abort();
  const exitWhenIdle = () => (running.size === 0 ? process.exit(143) : setTimeout(exitWhenIdle, 20));
  exitWhenIdle();
});
send({ type: 'ready', pid: process.pid });

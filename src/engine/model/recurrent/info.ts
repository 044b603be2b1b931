// What `kvlens info` says about a recurrent or hybrid model: its size, and the state it carries instead of a
// KV cache (per layer, by array, and in total: the same at any context length).
import { formatBytes } from '../../format';
import type { ModelSession } from '../../session';
import type { RecurrentForward } from './types';

export function recurrentModelInfo(session: ModelSession, forward: RecurrentForward): { human: string; json: Record<string, unknown> } {
  const { config } = forward;
  const { model } = session;
  const state = forward.initialState();
  const arrays = new Map<string, { shape: number[]; layers: number }>();
  for (const layer of state.layers) {
    for (const array of layer) {
      const key = `${array.name} [${array.shape.join(', ')}]`;
      arrays.set(key, { shape: array.shape, layers: (arrays.get(key)?.layers ?? 0) + 1 });
    }
  }
  const stateLine = [...arrays.entries()].map(([key, { layers }]) => `${layers} x ${key}`).join(' + ');
  const json = {
    dir: model.dir,
    architecture: config.architecture,
    hfArchitecture: config.hfArchitecture,
    family: config.architecture === 'recurrent_gemma' ? 'hybrid' : 'recurrent',
    parameters: model.parameterCount,
    dtype: model.dtype,
    weightBytesOnDisk: model.weightBytesOnDisk,
    weightBytesInMemory: session.weightFormat.weightBytes,
    weightFormat: session.weightFormatLabel,
    weightFormatReason: session.weightFormat.reason,
    kvBytesPer1kTokens: { fp32: 0, fp16: 0 },
    recurrentStateBytes: state.bytes(),
    recurrentState: [...arrays.entries()].map(([key, { shape, layers }]) => ({ array: key.split(' ')[0], shape, layers })),
    layers: config.numLayers,
    hiddenSize: config.hiddenSize,
    intermediateSize: config.intermediateSize,
    vocabSize: config.vocabSize,
    trainedContext: config.trainedContext,
    tiedEmbeddings: config.tieWordEmbeddings,
    executionProvider: session.provider,
  };
  const rows: [string, string][] = [
    ['model', model.dir],
    ['architecture', `${config.architecture} (${config.hfArchitecture}), ${json.family}`],
    ['parameters', model.parameterCount.toLocaleString('en-US')],
    ['dtype on disk', model.dtype],
    ['weights on disk', formatBytes(model.weightBytesOnDisk)],
    ['weights in memory', `${formatBytes(session.weightFormat.weightBytes)} (${session.weightFormatLabel}: ${session.weightFormat.reason})`],
    ['KV cache per 1k tokens', 'none: the model carries a fixed-size state'],
    ['state carried', `${formatBytes(state.bytes())} fp32 at any context length (${stateLine})`],
    ['layers', String(config.numLayers)],
    ['hidden / inner size', `${config.hiddenSize} / ${config.intermediateSize}`],
    ['vocabulary', config.vocabSize.toLocaleString('en-US')],
    ['context length', config.trainedContext === null ? 'no limit in config.json' : `${config.trainedContext.toLocaleString('en-US')} (trained)`],
    ['tied embeddings', config.tieWordEmbeddings ? 'yes' : 'no'],
    ['execution provider', `${session.provider} (typed arrays)`],
  ];
  const width = Math.max(...rows.map(([label]) => label.length));
  return { human: rows.map(([label, value]) => `${label.padEnd(width)}  ${value}`).join('\n'), json };
}

// Decode cost against context length: a Mamba of the default model's size (random weights, built here) beside
// the default transformer, each prefilled to 1k, 4k and 16k tokens, then timed over its decode steps. The
// recurrent model's time per token and bytes carried stay flat; the transformer's KV cache and decode grow.
// Run: npx tsx bench/recurrent.ts [--contexts 1024,4096,16384] [--decode-steps 32] [--threads 1]
// Not a test: it takes minutes (the typed-array prefill of 16k tokens is the slow part).

import { loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { createOnnxForward } from '../src/engine/model/onnx/onnxForward';
import { prefill } from '../src/engine/model/prefill';
import { inspectModel, resolveModelDir } from '../src/engine/model/loader';
import { kvBytesPerToken } from '../src/engine/model/config';
import { MambaForward, mambaTensorShapes, type MambaConfig } from '../src/engine/model/recurrent/mamba';
import { recurrentPrefill } from '../src/engine/model/recurrent/generate';
import { formatBytes } from '../src/engine/format';

function argument(name: string, fallback: string): string {
  const index = process.argv.indexOf(`--${name}`);
  return index >= 0 && process.argv[index + 1] ? process.argv[index + 1] : fallback;
}

const contexts = argument('contexts', '1024,4096,16384').split(',').map(Number);
const decodeSteps = Number(argument('decode-steps', '32'));
const threads = Number(argument('threads', '1'));

/** Mamba at the default model's width and vocabulary; five layers put its parameters near the transformer's. */
function mambaConfig(vocabSize: number): MambaConfig {
  return {
    architecture: 'mamba',
    hfArchitecture: 'MambaForCausalLM',
    hiddenSize: 192,
    intermediateSize: 384,
    numLayers: 5,
    vocabSize,
    tieWordEmbeddings: true,
    trainedContext: null,
    bosTokenId: null,
    eosTokenIds: [],
    torchDtype: 'float32',
    stateSize: 16,
    convKernel: 4,
    timeStepRank: 12,
    useBias: false,
    useConvBias: true,
    normEps: 1e-5,
  };
}

function randomMamba(config: MambaConfig): { forward: MambaForward; parameters: number } {
  let seed = 12345;
  const random = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32) * 2 - 1;
  const weights = new Map<string, Float32Array>();
  let parameters = 0;
  for (const [name, shape] of mambaTensorShapes(config, 'backbone.embeddings.weight').expected) {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    const scale = name.endsWith('A_log') || name.endsWith('.D') || name.endsWith('norm.weight') || name.endsWith('norm_f.weight') ? 0 : 0.1;
    for (let i = 0; i < data.length; i++) data[i] = (name.endsWith('dt_proj.bias') ? -3 : name.endsWith('A_log') ? Math.log(1 + (i % config.stateSize)) : 1) * (scale === 0 ? 1 : 0) + scale * random();
    weights.set(name, data);
    parameters += data.length;
  }
  return { forward: new MambaForward(config, weights, 'backbone.embeddings.weight'), parameters };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

function tokens(n: number, vocab: number): number[] {
  return Array.from({ length: n }, (_, i) => 4 + ((i * 2654435761) >>> 0) % (vocab - 4));
}

async function main(): Promise<void> {
  console.log(`load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}; ${decodeSteps} decode steps per context, ${threads} thread(s) for onnxruntime\n`);
  const plan = inspectModel(resolveModelDir('default'));
  const { forward: mamba, parameters } = randomMamba(mambaConfig(plan.config.vocabSize));
  const stored = plan.storedWeights();
  const transformer = await createOnnxForward({ config: plan.config, weights: stored }, { provider: 'cpu', kvDtype: 'fp16', threads });
  stored.close();
  console.log(`transformer: models/default (${plan.parameterCount.toLocaleString('en-US')} parameters, fp32 weights, fp16 KV cache)`);
  console.log(`recurrent:   Mamba, hidden 192, 5 layers, state 16 (${parameters.toLocaleString('en-US')} parameters, random weights, fp32)\n`);
  // Warm both up (JIT, onnxruntime's first runs) so the first context is not charged for it.
  const warm = mamba.initialState();
  for (let step = 0; step < 2 * decodeSteps; step++) mamba.forward([5 + step], warm, 'last');
  const warmPrefill = await prefill(transformer, tokens(64, plan.config.vocabSize));
  for (let step = 0; step < decodeSteps; step++) {
    const out = await transformer.forward({ tokens: [5], positions: [64 + step], past: warmPrefill.layers.map((layer) => layer.view()) });
    warmPrefill.layers.forEach((layer, l) => layer.append(out.newKeys[l], out.newValues[l], [64 + step]));
  }
  console.log('| context | transformer decode ms/token (median) | transformer KV bytes | Mamba decode ms/token (median) | Mamba state bytes |');
  console.log('|---:|---:|---:|---:|---:|');
  try {
    for (const context of contexts) {
      const ids = tokens(context, plan.config.vocabSize);
      const pre = await prefill(transformer, ids);
      // Median step time: this machine is shared, and a mean takes in every pause of the other jobs.
      const transformerSteps: number[] = [];
      for (let step = 0; step < decodeSteps; step++) {
        const began = performance.now();
        const out = await transformer.forward({ tokens: [ids[step]], positions: [context + step], past: pre.layers.map((layer) => layer.view()) });
        pre.layers.forEach((layer, l) => layer.append(out.newKeys[l], out.newValues[l], [context + step]));
        transformerSteps.push(performance.now() - began);
      }
      const kvBytes = kvBytesPerToken(plan.config, 2) * (context + decodeSteps);
      const began = performance.now();
      const state = recurrentPrefill(mamba, ids);
      const prefillSeconds = (performance.now() - began) / 1000;
      const mambaSteps: number[] = [];
      for (let step = 0; step < decodeSteps; step++) {
        const stepBegan = performance.now();
        mamba.forward([ids[step]], state.state, 'last');
        mambaSteps.push(performance.now() - stepBegan);
      }
      console.log(
        `| ${context} | ${median(transformerSteps).toFixed(2)} | ${formatBytes(kvBytes)} | ${median(mambaSteps).toFixed(2)} | ${formatBytes(state.state.bytes())} |` +
          `  (prefill: transformer ${(pre.ms / 1000).toFixed(1)} s, Mamba ${prefillSeconds.toFixed(1)} s)`,
      );
    }
  } finally {
    await transformer.dispose();
  }
}

void main();

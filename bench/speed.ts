// Prefill and decode speed of the ONNX forward, next to the memory-bandwidth bound of decoding.
// Run: npx tsx bench/speed.ts [--contexts 1024,4096] [--decode-steps 8] [--only default|qwen] [--quant fp32,int4,int4-128]
// (int4 = 4-bit MatMulNBits weights in 32-wide blocks, like llama.cpp's Q4_0; int4-128 uses 128-wide blocks)
// [--bandwidth 12.9] uses a known copy bandwidth (GB/s) instead of measuring one, which on a busy machine
// reads low and makes every bound look loose.
// Not a test: it takes minutes and several GB of memory.

import { existsSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createOnnxForward } from '../src/engine/model/onnx/onnxForward';
import { prefill } from '../src/engine/model/prefill';
import { loadModel } from '../src/engine/model/loader';
import { kvBytesPerToken, type ModelConfig } from '../src/engine/model/config';
import type { WeightMap } from '../src/engine/model/types';
import { argmax } from '../src/engine/model/reference';
import { testConfig, randomWeights, seededRandom } from '../test/helpers/random-model';

function argument(name: string, fallback: string): string {
  const index = process.argv.indexOf(`--${name}`);
  return index >= 0 && process.argv[index + 1] ? process.argv[index + 1] : fallback;
}

const contexts = argument('contexts', '1024,4096').split(',').map(Number);
const decodeSteps = Number(argument('decode-steps', '8'));
const only = argument('only', 'all');
const variants = argument('quant', 'fp32,int4').split(',');
const VARIANTS: Record<string, { quantization: 'fp32' | 'int4'; blockSize: number }> = {
  fp32: { quantization: 'fp32', blockSize: 32 },
  int4: { quantization: 'int4', blockSize: 32 },
  'int4-128': { quantization: 'int4', blockSize: 128 },
};
for (const v of variants) if (!VARIANTS[v]) throw new Error(`unknown --quant variant ${v} (known: ${Object.keys(VARIANTS).join(', ')})`);

/**
 * Best-of-10 large array copy, in GB/s of bytes copied (the figure decode reads are compared with).
 * On a shared machine this swings with other processes' load, and the bound with it.
 */
function measureCopyBandwidth(): number {
  const size = 64 * 1024 * 1024; // 256 MB of floats, far beyond any cache
  const source = new Float32Array(size).fill(1);
  const target = new Float32Array(size).fill(0); // touch every page first: page faults are not bandwidth
  let best = Infinity;
  for (let i = 0; i < 10; i++) {
    const began = performance.now();
    target.set(source);
    best = Math.min(best, performance.now() - began);
  }
  return (size * 4) / (best / 1000) / 1e9;
}

function qwenShapedConfig(): ModelConfig {
  return testConfig({
    architecture: 'qwen2',
    hfArchitecture: 'Qwen2ForCausalLM',
    hiddenSize: 896,
    intermediateSize: 4864,
    numLayers: 24,
    numHeads: 14,
    numKvHeads: 2,
    headDim: 64,
    vocabSize: 151936,
    ropeTheta: 1000000,
    rmsNormEps: 1e-6,
    tieWordEmbeddings: true,
    attentionBias: true,
    maxPositionEmbeddings: 32768,
  });
}

/** Bytes of weights one decode step reads: every matrix once (lm_head included), one embedding row. */
function weightBytesPerToken(config: ModelConfig, quantization: 'fp32' | 'int4', blockSize: number): number {
  const { hiddenSize: h, intermediateSize: f, numHeads, numKvHeads, headDim, vocabSize, numLayers } = config;
  const perLayer = h * numHeads * headDim * 2 + h * numKvHeads * headDim * 2 + 3 * h * f;
  const matrices = numLayers * perLayer + vocabSize * h;
  // int4: half a byte per weight plus one fp32 scale per block.
  const bytesPerWeight = quantization === 'int4' ? 0.5 + 4 / blockSize : 4;
  return matrices * bytesPerWeight + h * 4;
}

async function benchModel(label: string, model: { config: ModelConfig; weights: WeightMap }, bandwidth: number): Promise<void> {
  const { config } = model;
  const random = seededRandom(17);
  for (const variant of variants) {
    const { quantization, blockSize } = VARIANTS[variant];
    const began = performance.now();
    let forward;
    try {
      forward = await createOnnxForward(model, { provider: 'cpu', quantization, int4BlockSize: blockSize });
    } catch (error) {
      console.log(`${label} ${variant}: could not load (${(error as Error).message.split('\n')[0]})`);
      continue;
    }
    console.log(`${label} ${variant}: session ready in ${((performance.now() - began) / 1000).toFixed(1)} s on ${forward.provider}`);
    for (const context of contexts) {
      const prompt = Array.from({ length: context }, () => Math.floor(random() * config.vocabSize));
      const pre = await prefill(forward, prompt, { chunkSize: 512 });
      // Decode: time each step on the growing cache; the first step warms nothing special, keep all.
      let logits = pre.lastLogits;
      let position = context;
      const stepMs: number[] = [];
      for (let i = 0; i < decodeSteps; i++) {
        const token = argmax(logits);
        const t0 = performance.now();
        const out = await forward.forward({ tokens: [token], positions: [position], past: pre.layers.map((c) => c.view()) });
        stepMs.push(performance.now() - t0);
        pre.layers.forEach((c, l) => c.append(out.newKeys[l], out.newValues[l], [position]));
        logits = out.logits;
        position++;
      }
      stepMs.sort((a, b) => a - b);
      const medianMs = stepMs[Math.floor(stepMs.length / 2)];
      const bytes = weightBytesPerToken(config, quantization, blockSize) + kvBytesPerToken(config) * context;
      const boundMs = (bytes / (bandwidth * 1e9)) * 1000;
      console.log(
        `  ctx ${String(context).padStart(5)}: prefill ${pre.tokensPerSecond.toFixed(0).padStart(5)} tok/s | decode ${medianMs.toFixed(1)} ms/tok ` +
          `(${(1000 / medianMs).toFixed(1)} tok/s) | bound ${boundMs.toFixed(1)} ms (${(bytes / 1e6).toFixed(0)} MB/token) | ` +
          `decode/bound ${(medianMs / boundMs).toFixed(2)}x`,
      );
    }
    await forward.dispose();
  }
}

async function main(): Promise<void> {
  const given = Number(argument('bandwidth', 'NaN'));
  const bandwidth = Number.isFinite(given) && given > 0 ? given : measureCopyBandwidth();
  console.log(`memcpy bandwidth: ${bandwidth.toFixed(1)} GB/s${Number.isFinite(given) ? ' (given)' : ''} (bound = bytes read per decoded token / this)`);
  // Other processes share the cores and the memory bus: every figure below depends on them.
  console.log(`load average: ${loadavg().map((v) => v.toFixed(1)).join(' ')}`);
  console.log(`contexts ${contexts.join(', ')}, ${decodeSteps} decode steps each (median reported)\n`);

  if (only === 'all' || only === 'default') {
    const dir = join(__dirname, '..', 'models', 'default');
    if (existsSync(join(dir, 'config.json'))) await benchModel('models/default', loadModel(dir), bandwidth);
    else console.log(`models/default: skipped (no config.json in ${dir})\n`);
  }
  if (only === 'all' || only === 'qwen') {
    const config = qwenShapedConfig();
    const began = performance.now();
    const weights = randomWeights(config, 3);
    console.log(`Qwen2.5-0.5B-shaped random model built in ${((performance.now() - began) / 1000).toFixed(1)} s`);
    await benchModel('qwen2.5-0.5b-shape', { config, weights }, bandwidth);
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});

// Per method at a long context on one model: compression time, decode speed and bytes held, as ratios to `full`
// measured in the same run on the same prefilled cache, decoding round-robin (one step per method in turn). Run: npx tsx bench/methods.ts [--model M] [--length 4096]
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { openModel } from '../src/engine/session';
import { prefill } from '../src/engine/model/prefill';
import { argmax } from '../src/engine/model/reference';
import { createMethod, mergeNeeds, verifyCompression } from '../src/engine/kv';
import { formatBytes } from '../src/engine/format';

const { values } = parseArgs({
  options: {
    model: { type: 'string', default: 'default' },
    length: { type: 'string', default: '4096' },
    steps: { type: 'string', default: '32' },
    methods: { type: 'string', default: 'full,int8,fp8,kivi:bits=4,kivi:bits=2,flexgen:bits=4,streamingllm:ratio=0.75,h2o:ratio=0.75,snapkv:ratio=0.75,pyramidkv:ratio=0.75,adakv:ratio=0.75,tova:ratio=0.75,infllm,knorm:ratio=0.75,random:ratio=0.75,vllm,vllm:dtype=fp8_e5m2,llamacpp:k=q8_0,v=q8_0,llamacpp:k=q8_0,v=q4_0,llamacpp:k=q4_0,v=q4_0,keydiff:ratio=0.75,expectedattention:ratio=0.75,scissorhands:ratio=0.75,chunkkv:ratio=0.75,quest' },
  },
});

/** Comma-separated specs; a part with "=" and no ":" continues the previous spec's parameters (`llamacpp:k=q8_0,v=q4_0`). */
function methodList(text: string): string[] {
  const specs: string[] = [];
  for (const part of text.split(',').map((s) => s.trim()).filter(Boolean)) {
    if (specs.length > 0 && !part.includes(':') && part.includes('=')) specs[specs.length - 1] += `,${part}`;
    else specs.push(part);
  }
  return specs;
}

async function main(): Promise<void> {
  const length = Number(values.length);
  const steps = Number(values.steps);
  const session = await openModel(String(values.model), { provider: 'cpu', contextTokens: length + steps });
  const { config } = session.model;
  // A prompt of real-looking ids: the benchmark measures cost, not accuracy.
  const ids = Array.from({ length }, (_, i) => ((i * 2654435761) >>> 7) % (config.vocabSize - 2) + 1);
  const methods = methodList(String(values.methods)).map((s) => createMethod(s));
  const needs = mergeNeeds(...methods.map((m) => m.needs(ids.length)));
  const pre = await prefill(session.forward, ids, { chunkSize: 512, attention: needs });
  console.log(`${session.modelPath} on ${session.provider}: ${length}-token prompt prefilled in ${pre.ms.toFixed(0)} ms, ${steps} decode steps per method`);
  // Every method's cache first, then decode round-robin one step per method, so a busy machine slows every method
  // alike; the per-step median is the speed.
  const runs = methods.map((method) => {
    const began = performance.now();
    const cache = method.compress({ layers: pre.layers, stats: pre.stats, config });
    const compressMs = performance.now() - began;
    verifyCompression(method, cache, pre.layers, config);
    return { method, cache, compressMs, bytes: cache.bytes(), logits: pre.lastLogits, stepMs: [] as number[] };
  });
  for (let step = 0; step < steps; step++) {
    const position = ids.length + step;
    for (const run of runs) {
      const token = argmax(run.logits, run.logits.length - config.vocabSize, config.vocabSize);
      const began = performance.now();
      const output = await session.forward.forward({ tokens: [token], positions: [position], past: run.cache.views(), logits: 'last', attention: run.method.decodeNeeds });
      output.newKeys.forEach((keys, layer) => run.cache.append(layer, keys, output.newValues[layer], [position]));
      run.cache.afterStep?.(output.attention, position);
      run.stepMs.push(performance.now() - began);
      run.logits = output.logits;
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const rows = runs.map((run) => ({ spec: run.method.spec, compressMs: run.compressMs, tokPerS: 1000 / median(run.stepMs), held: run.bytes.held, active: run.bytes.active }));
  const full = rows.find((r) => r.spec === 'full') ?? rows[0];
  console.log('\n| method | compress ms | decode tok/s | decode speed vs full | bytes held | held vs full | read per step vs full |');
  console.log('|---|---:|---:|---:|---:|---:|---:|');
  for (const r of rows) {
    console.log(
      `| ${r.spec} | ${r.compressMs.toFixed(1)} | ${r.tokPerS.toFixed(1)} | ${(r.tokPerS / full.tokPerS).toFixed(2)}× | ${formatBytes(r.held)} | ${(r.held / full.held).toFixed(3)} | ${(r.active / full.active).toFixed(3)} |`,
    );
  }
  await session.dispose();
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});

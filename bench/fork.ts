// The cost of forking: an 8-method sweep that prefills each sample once and forks the cache, against 8 independent
// runs that each prefill the same samples themselves. Run: npx tsx bench/fork.ts [--model M] [--length 2048]
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { join } from 'node:path';
import { openModel } from '../src/engine/session';
import { runBench } from '../src/engine/bench/runner';
import type { BenchRequest } from '../src/engine/host/protocol';

const { values } = parseArgs({
  options: {
    model: { type: 'string', default: 'default' },
    length: { type: 'string', default: '2048' },
    workspace: { type: 'string', default: join(__dirname, '..', 'src') },
  },
});

const METHODS = ['full', 'kivi:bits=2', 'kivi:bits=4', 'int8', 'snapkv:ratio=0.75', 'h2o:ratio=0.75', 'streamingllm:ratio=0.75', 'tova:ratio=0.75'];

async function main(): Promise<void> {
  const session = await openModel(String(values.model), { provider: 'cpu', contextTokens: Number(values.length) + 64 });
  const request = (methods: string[]): BenchRequest => ({
    workspace: String(values.workspace),
    model: String(values.model),
    methods,
    tasks: ['needle'],
    lengths: [Number(values.length)],
    depths: [0.25, 0.75],
    samples: 1,
    seed: 0,
    provider: 'cpu',
    outFile: null,
  });
  let began = performance.now();
  const forked = await runBench(session, request(METHODS));
  const forkedMs = performance.now() - began;
  began = performance.now();
  let independentRows = 0;
  for (const method of METHODS) {
    // Each run prefills on its own; `full` is always added as the reference, so count only the method's rows.
    const alone = await runBench(session, request([method]));
    independentRows += alone.rows.filter((r) => r.method === method || method === 'full').length;
  }
  const independentMs = performance.now() - began;
  console.log(`${session.modelPath} on ${session.provider}, needle at ${values.length} tokens, 2 samples, ${METHODS.length} methods`);
  console.log(`forked sweep:      ${(forkedMs / 1000).toFixed(1)} s for ${forked.rows.length} rows`);
  console.log(`independent runs:  ${(independentMs / 1000).toFixed(1)} s for ${independentRows} rows (plus the reference rows each run adds)`);
  console.log(`independent / forked time: ${(independentMs / forkedMs).toFixed(2)}×`);
  await session.dispose();
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});

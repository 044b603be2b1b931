// One llama.cpp generation (node-llama-cpp, CPU), printed as the same JSON fields `kvlens generate --json` gives,
// so bench/vs-llamacpp.ts can run both sides as separate processes and compare their own peak RSS.
// Run: npx tsx bench/llamacpp-runner.ts --model F.gguf --prompt-file P --context N --threads T --new-tokens N

import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

function argument(name: string): string {
  const index = process.argv.indexOf(`--${name}`);
  if (index < 0 || !process.argv[index + 1]) throw new Error(`llamacpp-runner needs --${name}`);
  return process.argv[index + 1];
}

async function main(): Promise<void> {
  // node-llama-cpp is ESM-only; a dynamic import keeps this file loadable from the CommonJS project.
  const { getLlama, LlamaLogLevel } = await import('node-llama-cpp');
  const threads = Number(argument('threads'));
  const newTokens = Number(argument('new-tokens'));
  const began = performance.now();
  // build 'never': a missing prebuilt binary is an error here, not a silent minutes-long compile.
  const llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error });
  const model = await llama.loadModel({ modelPath: argument('model'), gpuLayers: 0 });
  const context = await model.createContext({ contextSize: Number(argument('context')), threads, batchSize: 512 });
  const loadMs = performance.now() - began;
  const text = readFileSync(argument('prompt-file'), 'utf8');
  const ids = model.tokenize(text);
  if (model.tokens.bos !== null && model.tokens.shouldPrependBosToken) ids.unshift(model.tokens.bos);
  const sequence = context.getSequence();
  const generated: typeof ids = [];
  const start = performance.now();
  let firstTokenAt = 0;
  // Greedy, and never stopped early, so every run decodes the same number of tokens.
  for await (const token of sequence.evaluate(ids, { temperature: 0 })) {
    if (generated.length === 0) firstTokenAt = performance.now();
    generated.push(token);
    if (generated.length >= newTokens) break;
  }
  const end = performance.now();
  const prefillMs = firstTokenAt - start;
  const decodeMs = end - firstTokenAt;
  const result = {
    text: model.detokenize(generated),
    promptTokens: ids.length,
    generatedTokens: generated.length,
    loadMs,
    prefillMs,
    prefillTokensPerSecond: ids.length / (prefillMs / 1000),
    // The first token comes out of the prefill; the others are decode steps.
    decodeMsPerToken: generated.length > 1 ? decodeMs / (generated.length - 1) : null,
    decodeTokensPerSecond: generated.length > 1 ? (generated.length - 1) / (decodeMs / 1000) : 0,
    timeToFirstTokenMs: prefillMs,
    peakRssMiB: process.resourceUsage().maxRSS / 1024,
    threads,
  };
  process.stdout.write(JSON.stringify(result) + '\n');
  await context.dispose();
  await model.dispose();
  await llama.dispose();
}

main().catch((error) => {
  process.stderr.write(`llamacpp-runner: ${(error as Error).message}\n`);
  process.exit(1);
});

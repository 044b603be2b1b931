// kvlens against llama.cpp (node-llama-cpp, CPU) on the same model files, same prompt, same threads, in one run:
// prefill tok/s, decode ms/token, time to first token and peak RSS per format and context, as kvlens/llama.cpp ratios.
// Not a test: minutes per row. Each side runs as its own process (alternating), so each peak RSS is its own.
//
// Run: npx tsx bench/vs-llamacpp.ts [--models DIR] [--formats q4_0,q8_0,q4_k,f16,bf16] [--contexts 1024,4096]
//          [--new-tokens 32] [--threads 2] [--repeats 1] [--out bench-vs-llamacpp.json]
// DIR (default $KVLENS_BENCH_MODELS or /work/bench-cache/qwen05b) is what tools/make_bench_models.py writes: the same
// random Qwen2.5-0.5B-shaped weights as gguf/model-{f16,q8_0,q4_0,q4_k}.gguf and an hf-bf16/ folder. The bf16 folder
// runs on kvlens only; its llama.cpp column is the F16 GGUF of the same values.

import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { loadavg } from 'node:os';
import { loadTokenizer } from '../src/engine/tokenizer/tokenizer';

function argument(name: string, fallback: string): string {
  const index = process.argv.indexOf(`--${name}`);
  return index >= 0 && process.argv[index + 1] ? process.argv[index + 1] : fallback;
}

const REPO = resolve(__dirname, '..');
const modelsDir = resolve(argument('models', process.env.KVLENS_BENCH_MODELS ?? '/work/bench-cache/qwen05b'));
const formats = argument('formats', 'q4_0,q8_0,q4_k,f16,bf16').split(',');
const contexts = argument('contexts', '1024,4096').split(',').map(Number);
const newTokens = Number(argument('new-tokens', '32'));
const threads = Number(argument('threads', '2'));
const repeats = Number(argument('repeats', '1'));
const outFile = resolve(argument('out', 'bench-vs-llamacpp.json'));

/** What both sides print (kvlens generate --json and bench/llamacpp-runner.ts share these fields). */
interface RunResult {
  promptTokens: number;
  generatedTokens: number;
  prefillTokensPerSecond: number;
  decodeMsPerToken: number | null;
  timeToFirstTokenMs: number;
  peakRssMiB: number;
  wallMs: number;
  /** kvlens only: the up-front memory estimate the load was checked against. */
  estimatedMiB?: number;
}

function ggufFile(format: string): string {
  return join(modelsDir, 'gguf', `model-${format === 'bf16' ? 'f16' : format}.gguf`);
}

function kvlensModel(format: string): string {
  return format === 'bf16' ? join(modelsDir, 'hf-bf16') : ggufFile(format);
}

function run(command: string, args: string[]): RunResult {
  const began = performance.now();
  const child = spawnSync(command, args, { cwd: REPO, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  const wallMs = performance.now() - began;
  if (child.status !== 0) throw new Error(`${args.slice(0, 2).join(' ')} failed (${child.status}): ${child.stderr.trim().split('\n').slice(-3).join(' | ')}`);
  // Both print one JSON object on stdout (kvlens pretty-printed, the runner on one line).
  const parsed = JSON.parse(child.stdout.slice(child.stdout.indexOf('{'))) as Omit<RunResult, 'wallMs'>;
  return { ...parsed, wallMs };
}

function runKvlens(format: string, promptFile: string): RunResult {
  return run(process.execPath, [
    join(REPO, 'bin', 'kvlens.js'),
    'generate',
    '--model', kvlensModel(format),
    '--prompt-file', promptFile,
    '--max-new-tokens', String(newTokens),
    '--threads', String(threads),
    '--provider', 'cpu',
    '--json',
  ]);
}

function runLlamaCpp(format: string, promptFile: string, context: number): RunResult {
  return run(process.execPath, [
    '--import', 'tsx',
    join(REPO, 'bench', 'llamacpp-runner.ts'),
    '--model', ggufFile(format),
    '--prompt-file', promptFile,
    '--context', String(context + newTokens + 64),
    '--threads', String(threads),
    '--new-tokens', String(newTokens),
  ]);
}

/** Real source text (this repository's TypeScript) cut to `tokens` tokens of the models' own tokenizer. */
function makePrompt(tokens: number): string {
  const tokenizer = loadTokenizer(join(modelsDir, 'gguf'), { gguf: false });
  const files: string[] = [];
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir).sort()) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else if (name.endsWith('.ts')) files.push(path);
    }
  };
  walk(join(REPO, 'src'));
  let text = '';
  for (const file of files) {
    text += `// ${file.slice(REPO.length + 1)}\n${readFileSync(file, 'utf8')}\n`;
    if (text.length > tokens * 6) break;
  }
  const ids = tokenizer.encode(text).slice(0, tokens);
  return tokenizer.decode(ids, { skipSpecialTokens: true });
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length % 2 ? sorted[(sorted.length - 1) / 2] : (sorted[sorted.length / 2 - 1] + sorted[sorted.length / 2]) / 2;
};

function summarize(runs: RunResult[]): RunResult {
  const pick = (f: (r: RunResult) => number | null) => median(runs.map((r) => f(r) ?? NaN));
  return {
    promptTokens: runs[0].promptTokens,
    generatedTokens: runs[0].generatedTokens,
    prefillTokensPerSecond: pick((r) => r.prefillTokensPerSecond),
    decodeMsPerToken: pick((r) => r.decodeMsPerToken),
    timeToFirstTokenMs: pick((r) => r.timeToFirstTokenMs),
    peakRssMiB: pick((r) => r.peakRssMiB),
    wallMs: pick((r) => r.wallMs),
    estimatedMiB: runs[0].estimatedMiB,
  };
}

interface Row {
  format: string;
  context: number;
  kvlens: RunResult;
  llamacpp: RunResult;
  /** kvlens over llama.cpp, each oriented so that above 1 means kvlens is better (speed) or bigger (memory). */
  ratios: { prefill: number; decode: number; timeToFirstToken: number; peakRss: number };
}

// Targets of the engine-at-scale work: decode >= 0.9x and peak RSS <= 1.3x llama.cpp on Q4_0 and Q8_0, prefill >= 0.7x.
const TARGETS = { decode: 0.9, prefill: 0.7, peakRss: 1.3 };

function main(): void {
  for (const format of formats) {
    if (!existsSync(kvlensModel(format)) || !existsSync(ggufFile(format))) {
      throw new Error(`${kvlensModel(format)} or ${ggufFile(format)} is missing: make them with /work/venv/bin/python tools/make_bench_models.py --out ${modelsDir}`);
    }
  }
  console.log(`models ${modelsDir}; ${threads} threads; ${newTokens} new tokens; ${repeats} repeat(s); load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  const rows: Row[] = [];
  for (const context of contexts) {
    const promptFile = join(modelsDir, `prompt-${context}.txt`);
    writeFileSync(promptFile, makePrompt(context - newTokens));
    for (const format of formats) {
      const ours: RunResult[] = [];
      const theirs: RunResult[] = [];
      // Alternating, so a load change on the machine hits both sides alike. The first kvlens start on a model
      // converts and caches its weights; one untimed start makes every timed one a normal (cached) start.
      if (context === contexts[0]) runKvlens(format, promptFile);
      for (let r = 0; r < repeats; r++) {
        ours.push(runKvlens(format, promptFile));
        theirs.push(runLlamaCpp(format, promptFile, context));
      }
      const kvlens = summarize(ours);
      const llamacpp = summarize(theirs);
      const row: Row = {
        format,
        context,
        kvlens,
        llamacpp,
        ratios: {
          prefill: kvlens.prefillTokensPerSecond / llamacpp.prefillTokensPerSecond,
          decode: (llamacpp.decodeMsPerToken ?? NaN) / (kvlens.decodeMsPerToken ?? NaN),
          timeToFirstToken: llamacpp.timeToFirstTokenMs / kvlens.timeToFirstTokenMs,
          peakRss: kvlens.peakRssMiB / llamacpp.peakRssMiB,
        },
      };
      rows.push(row);
      console.log(
        `${format.padEnd(5)} ${String(context).padStart(5)}: prefill ${kvlens.prefillTokensPerSecond.toFixed(0)} vs ${llamacpp.prefillTokensPerSecond.toFixed(0)} tok/s, ` +
          `decode ${kvlens.decodeMsPerToken?.toFixed(1)} vs ${llamacpp.decodeMsPerToken?.toFixed(1)} ms/token, ` +
          `peak RSS ${kvlens.peakRssMiB.toFixed(0)} vs ${llamacpp.peakRssMiB.toFixed(0)} MiB ` +
          `(kvlens estimated ${kvlens.estimatedMiB?.toFixed(0)} MiB up front: measured/estimate ${(kvlens.peakRssMiB / (kvlens.estimatedMiB ?? NaN)).toFixed(2)})`,
      );
    }
  }
  const mark = (ok: boolean) => (ok ? '' : ' ✗');
  console.log('\n| format | context | prefill tok/s (kvlens / llama.cpp) | decode ms/token | time to first token ms | peak RSS MiB |');
  console.log('|---|---:|---:|---:|---:|---:|');
  for (const { format, context, kvlens, llamacpp, ratios } of rows) {
    const targeted = format === 'q4_0' || format === 'q8_0';
    console.log(
      `| ${format} | ${context} | ${kvlens.prefillTokensPerSecond.toFixed(0)} / ${llamacpp.prefillTokensPerSecond.toFixed(0)} = ${ratios.prefill.toFixed(2)}×${mark(!targeted || ratios.prefill >= TARGETS.prefill)} ` +
        `| ${kvlens.decodeMsPerToken?.toFixed(1)} / ${llamacpp.decodeMsPerToken?.toFixed(1)} = ${ratios.decode.toFixed(2)}×${mark(!targeted || ratios.decode >= TARGETS.decode)} ` +
        `| ${kvlens.timeToFirstTokenMs.toFixed(0)} / ${llamacpp.timeToFirstTokenMs.toFixed(0)} = ${ratios.timeToFirstToken.toFixed(2)}× ` +
        `| ${kvlens.peakRssMiB.toFixed(0)} / ${llamacpp.peakRssMiB.toFixed(0)} = ${ratios.peakRss.toFixed(2)}×${mark(!targeted || ratios.peakRss <= TARGETS.peakRss)} |`,
    );
  }
  console.log(`\nratios: speed as kvlens/llama.cpp speed (above 1: kvlens faster), memory as kvlens/llama.cpp (below 1: kvlens smaller).`);
  console.log(`✗: misses its target on Q4_0/Q8_0 (decode >= ${TARGETS.decode}×, prefill >= ${TARGETS.prefill}×, peak RSS <= ${TARGETS.peakRss}×).`);
  writeFileSync(outFile, JSON.stringify({ modelsDir, threads, newTokens, repeats, rows }, null, 2));
  console.log(`→ ${outFile}`);
}

main();

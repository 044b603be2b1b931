import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateCompletion } from '../../src/engine/tasks/completion';
import { generateCrossfile, crossFileSites, uniqueDefinitions } from '../../src/engine/tasks/crossfile';
import { splitLines } from '../../src/engine/tasks/context';
import type { CodeFile, Sample } from '../../src/engine/tasks/types';
import { fixtureFiles, realCounter, repoFiles } from './tasks-support';

function options(targetLength: number, sampleIndex = 0, seed = 5) {
  return { targetLength, depth: null, sampleIndex, samplesPerCell: 3, seed, counter: realCounter() };
}

/** The prompt ends with the target file's header and its lines up to the target, then a newline. */
function checkPrefix(sample: Sample, files: CodeFile[]): void {
  assert.ok(sample.source);
  const file = files.find((f) => f.path === sample.source!.file)!;
  const lines = splitLines(file.text);
  assert.equal(sample.answer, lines[sample.source.line].trim());
  assert.ok(sample.prompt.endsWith('\n'));
  const promptLines = sample.prompt.slice(0, -1).split('\n');
  const header = promptLines.lastIndexOf(`// file: ${file.path}`);
  assert.ok(header >= 0, 'the target file has its header');
  const prefixStart = (sample.meta.prefixStart as number) ?? 0;
  assert.deepEqual(promptLines.slice(header + 1), lines.slice(prefixStart, sample.source.line));
  assert.ok(!sample.answer.startsWith('//') && !sample.answer.startsWith('#') && sample.answer.length >= 6);
}

test('completion: deterministic, different per seed, answer is the next code line of a real file', () => {
  const files = repoFiles();
  assert.deepEqual(generateCompletion(files, options(1024)), generateCompletion(files, options(1024)));
  const seeds = new Set([5, 6, 7, 8].map((seed) => generateCompletion(files, options(1024, 0, seed)).prompt));
  assert.ok(seeds.size > 1);
  const counter = realCounter();
  for (const targetLength of [512, 2048]) {
    for (const sampleIndex of [0, 1, 2]) {
      const sample = generateCompletion(files, options(targetLength, sampleIndex));
      const tokens = counter.encode(sample.prompt).length;
      assert.ok(tokens <= targetLength && tokens >= 0.9 * targetLength, `${sample.id}: ${tokens}`);
      assert.equal(sample.scoring, 'edit-similarity');
      assert.equal(sample.depth, null);
      checkPrefix(sample, files);
    }
  }
});

test('completion: a file longer than the budget keeps the lines just before the target', () => {
  const body = Array.from({ length: 400 }, (_, i) => `  total += weights[${i}] * inputs[${i}];`).join('\n');
  const big: CodeFile = { path: 'big.ts', language: 'typescript', text: `export function dot(weights: number[], inputs: number[]): number {\n  let total = 0;\n${body}\n  return total;\n}\n` };
  const sample = generateCompletion([big], options(256));
  const tokens = realCounter().encode(sample.prompt).length;
  assert.ok(tokens <= 256 && tokens >= 0.9 * 256, `${tokens}`);
  assert.ok((sample.meta.prefixStart as number) > 0);
  checkPrefix(sample, [big]);
});

test('crossfile: the target uses a symbol defined only in another file, which opens the context', () => {
  const files = fixtureFiles();
  const counter = realCounter();
  const defs = uniqueDefinitions(files);
  assert.equal(defs.get('formatPrice')?.file.path, 'src/catalog.ts');
  assert.equal(defs.get('bestDiscount')?.file.path, 'src/discounts.ts');
  const cart = files.find((f) => f.path === 'src/cart.ts')!;
  const sites = crossFileSites(cart, defs);
  assert.ok(sites.length > 0);
  for (const site of sites) assert.notEqual(site.definition.file.path, 'src/cart.ts');
  for (const sampleIndex of [0, 1, 2]) {
    const sample = generateCrossfile(files, options(1024, sampleIndex));
    assert.deepEqual(sample, generateCrossfile(files, options(1024, sampleIndex)));
    const tokens = counter.encode(sample.prompt).length;
    assert.ok(tokens <= 1024 && tokens >= 0.9 * 1024, `${sample.id}: ${tokens}`);
    checkPrefix(sample, files);
    const symbol = sample.meta.symbol as string;
    const definedIn = sample.meta.definedIn as string;
    assert.notEqual(definedIn, sample.source!.file);
    assert.match(sample.answer, new RegExp(`\\b${symbol.replace(/\$/g, '\\$')}\\b`));
    assert.ok(sample.prompt.startsWith(`// file: ${definedIn}\n`), 'the defining file opens the context');
    const defLine = splitLines(files.find((f) => f.path === definedIn)!.text)[sample.meta.definitionLine as number];
    assert.ok(sample.prompt.includes(defLine));
  }
});

test('crossfile with a real repository slice and a small budget shrinks the defining file to a window', () => {
  const files = repoFiles();
  const sample = generateCrossfile(files, options(384));
  const tokens = realCounter().encode(sample.prompt).length;
  assert.ok(tokens <= 384 && tokens >= 0.9 * 384, `${tokens}`);
  checkPrefix(sample, files);
  const defLine = splitLines(files.find((f) => f.path === sample.meta.definedIn)!.text)[sample.meta.definitionLine as number];
  assert.ok(sample.prompt.includes(defLine));
});

test('crossfile reports a workspace without cross-file uses', () => {
  const lone: CodeFile = { path: 'a.ts', language: 'typescript', text: 'export function alone(): number {\n  return 1;\n}\nconst value = alone();\nconsole.log(value);\n' };
  assert.throws(() => generateCrossfile([lone], options(256)), /no line in the workspace uses a symbol defined in another file/);
});

test('crossfile never ties a use to a definition in an unrelated language', () => {
  const files = fixtureFiles();
  const defs = uniqueDefinitions(files);
  const report = files.find((f) => f.path === 'scripts/report.py')!;
  // `handle` is a Go method in cmd/server/main.go and a local name in the Python script.
  assert.equal(defs.get('handle')?.file.path, 'cmd/server/main.go');
  assert.deepEqual(crossFileSites(report, defs), []);
});

test('completion and crossfile ask for the same line at every length of a sample index', () => {
  const files = fixtureFiles();
  for (const generate of [generateCompletion, generateCrossfile]) {
    const short = generate(files, options(384, 1));
    const long = generate(files, options(1536, 1));
    assert.deepEqual(long.source, short.source);
    assert.equal(long.answer, short.answer);
    assert.ok(long.promptTokens > 3 * short.promptTokens);
  }
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateNeedle } from '../../src/engine/tasks/needle';
import { composeWithInsertions, roundHalfEven, splitLines } from '../../src/engine/tasks/context';
import { KvlensError } from '../../src/engine/errors';
import type { CodeFile, Sample, TokenCounter } from '../../src/engine/tasks/types';
import { fixtureFiles, fixtureModelCounter, realCounter, repoFiles, wordCounter } from './tasks-support';

const NEEDLE = /^const ([A-Z]+_[A-Z]+_[0-9a-f]{4}) = ([1-9]\d{0,5});$/;

function needle(files: CodeFile[], counter: TokenCounter, targetLength: number, depth: number, sampleIndex = 0, seed = 7): Sample {
  return generateNeedle(files, { targetLength, depth, sampleIndex, samplesPerCell: 3, seed, counter });
}

/**
 * Checks a needle prompt against the probe definition, independently of the generator: every line is either
 * a `// file:` header, a real line of that file continuing where the previous one stopped, the needle, or the
 * final query. Returns the needle's line index and the number of context lines.
 */
function checkStructure(sample: Sample, files: CodeFile[]): { needleAt: number; contextLines: number; name: string } {
  const lines = sample.prompt.split('\n');
  const query = lines[lines.length - 1];
  const needleIndices = lines.map((l, i) => (NEEDLE.test(l) ? i : -1)).filter((i) => i >= 0);
  assert.equal(needleIndices.length, 1, 'exactly one needle line');
  const needleAt = needleIndices[0];
  const [, name, value] = NEEDLE.exec(lines[needleAt])!;
  assert.equal(value, sample.answer);
  assert.equal(query, `// ${name} =`);
  assert.ok(sample.prompt.endsWith(`\n// ${name} =`));
  assert.equal(lines.filter((l) => l.includes(name)).length, 2, 'the name appears only in the needle and the query');
  const byPath = new Map(files.map((f) => [f.path, splitLines(f.text)]));
  let current: string[] | null = null;
  let next = 0;
  const context = lines.slice(0, -1).filter((_, i) => i !== needleAt);
  assert.ok(context[0].startsWith('// file: '), 'the context opens with a file header');
  for (const line of context) {
    if (line.startsWith('// file: ')) {
      current = byPath.get(line.slice('// file: '.length)) ?? null;
      assert.ok(current, `header names a workspace file: ${line}`);
      next = 0;
      continue;
    }
    assert.ok(current);
    assert.equal(line, current[next], 'context lines are the file lines in order, whole');
    next++;
  }
  return { needleAt, contextLines: context.length, name };
}

test('needle: same seed gives identical samples, another seed or sample index gives different ones', () => {
  const files = repoFiles();
  const counter = realCounter();
  const a = needle(files, counter, 1024, 0.5);
  const b = needle(files, counter, 1024, 0.5);
  assert.deepEqual(a, b);
  const c = needle(files, counter, 1024, 0.5, 0, 8);
  assert.notEqual(c.prompt, a.prompt);
  assert.notEqual((c.meta as { name: string }).name, (a.meta as { name: string }).name);
  const d = needle(files, counter, 1024, 0.5, 1);
  const firstHeader = (s: Sample) => s.prompt.split('\n').find((l) => l.startsWith('// file: '));
  assert.notEqual(firstHeader(d), firstHeader(a), 'different samples of a cell start in different files');
});

test('needle with a real tokenizer: within [0.9 L, L] tokens, real code cut at line boundaries, needle at its depth', () => {
  const files = repoFiles();
  const counter = realCounter();
  for (const targetLength of [512, 2048]) {
    for (const depth of [0, 0.25, 0.5, 0.75, 1]) {
      const sample = needle(files, counter, targetLength, depth);
      const tokens = counter.encode(sample.prompt).length;
      assert.ok(tokens <= targetLength, `${sample.id}: ${tokens} > ${targetLength}`);
      assert.ok(tokens >= 0.9 * targetLength, `${sample.id}: ${tokens} < 0.9 * ${targetLength}`);
      assert.equal(sample.promptTokens, tokens);
      const { needleAt, contextLines } = checkStructure(sample, files);
      // The needle goes before context line round(d * n): its relative position is d up to half a line.
      assert.ok(Math.abs(needleAt / contextLines - depth) <= 0.5 / contextLines + 1e-9, `${sample.id}: at ${needleAt}/${contextLines}`);
      if (depth === 0) assert.equal(needleAt, 0);
      if (depth === 1) assert.equal(needleAt, contextLines);
      assert.equal(sample.depth, depth);
      assert.equal(sample.scoring, 'exact');
    }
  }
});

test('needle source points at the workspace line next to the needle', () => {
  const files = repoFiles();
  const counter = realCounter();
  for (const depth of [0.3, 1]) {
    const sample = needle(files, counter, 1024, depth);
    const lines = sample.prompt.split('\n');
    const at = lines.findIndex((l) => NEEDLE.test(l));
    assert.ok(sample.source);
    const fileLines = splitLines(files.find((f) => f.path === sample.source!.file)!.text);
    const neighbour = depth === 1 ? lines[at - 1] : lines[at + 1];
    if (neighbour.startsWith('// file: ')) {
      assert.equal(neighbour, `// file: ${sample.source.file}`);
      assert.equal(sample.source.line, 0);
    } else {
      assert.equal(fileLines[sample.source.line], neighbour);
    }
  }
});

test('needle with the fixture checkpoint tokenizer and a multi-language workspace (Python gets // file: too)', () => {
  const files = fixtureFiles();
  const counter = fixtureModelCounter();
  for (const depth of [0, 0.6, 1]) {
    const sample = needle(files, counter, 1024, depth, 2);
    const tokens = counter.encode(sample.prompt).length;
    assert.ok(tokens <= 1024 && tokens >= 0.9 * 1024, `${tokens}`);
    checkStructure(sample, files);
  }
  // A workspace smaller than the context is read again rather than leaving the context short.
  const wrapped = needle(files, counter, 4096, 0.5);
  assert.ok(counter.encode(wrapped.prompt).length >= 0.9 * 4096);
  assert.ok(wrapped.prompt.includes('// file: scripts/report.py'));
});

test('needle fit is tight: with a word counter the prompt is within one line of the budget', () => {
  const files = repoFiles();
  const sample = needle(files, wordCounter, 700, 0.4);
  const tokens = wordCounter.encode(sample.prompt).length;
  assert.ok(tokens <= 700);
  const longestLine = Math.max(...files.flatMap((f) => f.text.split('\n').map((l) => l.split(/\s+/).filter(Boolean).length)));
  assert.ok(tokens > 700 - longestLine - 1, `${tokens}`);
});

test('needle rejects a bad depth and a budget too small for the needle and query', () => {
  const files = repoFiles();
  assert.throws(() => needle(files, realCounter(), 1024, 1.5), KvlensError);
  assert.throws(() => needle(files, realCounter(), 12, 0.5), /too small/);
  assert.throws(() => generateNeedle([], { targetLength: 512, depth: 0, sampleIndex: 0, samplesPerCell: 1, seed: 1, counter: wordCounter }), /no usable code files/);
});

test('needle placement rounds halves to even, matching the default model probe builder (Python round)', () => {
  assert.deepEqual([0.5, 1.5, 2.5, 3.5, 2.4999, 2.5001, 7].map(roundHalfEven), [0, 2, 2, 4, 2, 3, 7]);
  const context = Array.from({ length: 5 }, (_, i) => ({ text: `l${i}`, file: 'f', line: i, header: false }));
  // depth 0.5 of 5 lines: 2.5 rounds to 2, so the needle comes after l0, l1.
  assert.deepEqual(composeWithInsertions(context, 5, [{ rel: 0.5, text: 'N' }]).lines, ['l0', 'l1', 'N', 'l2', 'l3', 'l4']);
  // 1.5 rounds to 2.
  assert.deepEqual(composeWithInsertions(context, 3, [{ rel: 0.5, text: 'N' }]).lines, ['l0', 'l1', 'N', 'l2']);
});

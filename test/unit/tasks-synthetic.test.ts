import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateMultikey, MULTIKEY_KEYS } from '../../src/engine/tasks/multikey';
import { generateVartrack, VARTRACK_HOPS } from '../../src/engine/tasks/vartrack';
import type { Sample } from '../../src/engine/tasks/types';
import { fixtureFiles, realCounter, repoFiles } from './tasks-support';

const DEFINITION = /^const ([A-Z]+_[A-Z]+)_([0-9a-f]{4}) = ([1-9]\d{0,5});$/;

function multikey(targetLength: number, depth: number, seed = 11, sampleIndex = 0): Sample {
  return generateMultikey(repoFiles(), { targetLength, depth, sampleIndex, samplesPerCell: 2, seed, counter: realCounter() });
}

function vartrack(targetLength: number, depth: number, seed = 11, sampleIndex = 0): Sample {
  return generateVartrack(fixtureFiles(), { targetLength, depth, sampleIndex, samplesPerCell: 2, seed, counter: realCounter() });
}

test('multikey: deterministic per seed, different for another seed', () => {
  assert.deepEqual(multikey(1024, 0.5), multikey(1024, 0.5));
  assert.notEqual(multikey(1024, 0.5, 12).prompt, multikey(1024, 0.5).prompt);
});

test('multikey: keys share one stem with distinct suffixes and values; the asked one is at its depth', () => {
  const counter = realCounter();
  for (const depth of [0, 0.5, 1]) {
    for (const targetLength of [512, 2048]) {
      const sample = multikey(targetLength, depth);
      const tokens = counter.encode(sample.prompt).length;
      assert.ok(tokens <= targetLength && tokens >= 0.9 * targetLength, `${sample.id}: ${tokens}`);
      const lines = sample.prompt.split('\n');
      const defs = lines.map((l, i) => ({ i, m: DEFINITION.exec(l) })).filter((d) => d.m !== null);
      assert.equal(defs.length, MULTIKEY_KEYS);
      const stems = new Set(defs.map((d) => d.m![1]));
      assert.equal(stems.size, 1);
      assert.equal(new Set(defs.map((d) => d.m![2])).size, MULTIKEY_KEYS);
      assert.equal(new Set(defs.map((d) => d.m![3])).size, MULTIKEY_KEYS);
      const query = /^\/\/ ([A-Z]+_[A-Z]+_[0-9a-f]{4}) =$/.exec(lines[lines.length - 1]);
      assert.ok(query);
      const asked = defs.find((d) => `${d.m![1]}_${d.m![2]}` === query[1]);
      assert.ok(asked, 'the asked key is defined');
      assert.equal(asked.m![3], sample.answer);
      // Context lines exclude the inserted definitions and the query line.
      const contextLines = lines.length - 1 - MULTIKEY_KEYS;
      const contextBefore = asked.i - defs.filter((d) => d.i < asked.i).length;
      assert.ok(Math.abs(contextBefore / contextLines - depth) <= 0.5 / contextLines + 1e-9, `${contextBefore}/${contextLines}`);
    }
  }
});

test('vartrack: deterministic per seed, different for another seed', () => {
  assert.deepEqual(vartrack(1024, 0.2), vartrack(1024, 0.2));
  assert.notEqual(vartrack(1024, 0.2, 99).prompt, vartrack(1024, 0.2).prompt);
});

test('vartrack: an unbroken chain in reading order, first link at the depth, the last variable asked', () => {
  const counter = realCounter();
  for (const depth of [0, 0.4, 1]) {
    const sample = vartrack(1024, depth);
    const tokens = counter.encode(sample.prompt).length;
    assert.ok(tokens <= 1024 && tokens >= 0.9 * 1024, `${sample.id}: ${tokens}`);
    const lines = sample.prompt.split('\n');
    const chainLines = lines.map((l, i) => ({ l, i })).filter(({ l }) => /^const v_[0-9a-f]{4} = /.test(l));
    assert.equal(chainLines.length, VARTRACK_HOPS + 1);
    // Follow the chain as a reader would: each link must refer to a variable already defined above it.
    const values = new Map<string, string>();
    for (const { l } of chainLines) {
      const [, name, rhs] = /^const (v_[0-9a-f]{4}) = (\w+);$/.exec(l)!;
      const value = /^\d+$/.test(rhs) ? rhs : values.get(rhs);
      assert.ok(value !== undefined, `${rhs} is defined before ${name}`);
      values.set(name, value);
    }
    const last = /^\/\/ (v_[0-9a-f]{4}) =$/.exec(lines[lines.length - 1]);
    assert.ok(last);
    assert.equal(values.get(last[1]), sample.answer);
    const contextLines = lines.length - 1 - chainLines.length;
    assert.ok(Math.abs(chainLines[0].i / contextLines - depth) <= 0.5 / contextLines + 1e-9);
  }
});

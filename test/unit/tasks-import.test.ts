import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { importJsonl, parseJsonl, samplesToJsonl } from '../../src/engine/tasks/importJsonl';
import { buildSamples } from '../../src/engine/tasks/index';
import { scoreSample } from '../../src/engine/tasks/scoring';
import { KvlensError } from '../../src/engine/errors';
import { wordCounter } from './tasks-support';

const longbenchQa = { context: 'Passage 1: The lighthouse keeper was named Ada.\nPassage 2: Boats came on Tuesdays.', input: 'Who kept the lighthouse?', answers: ['Ada'], length: 14, dataset: 'hotpotqa', _id: 'abc123' };
const longbenchCode = { context: 'def area(r):\n    return 3.14159 * r * r\n\n', input: 'def circumference(r):\n', answers: ['    return 2 * 3.14159 * r\n'], length: 12, dataset: 'lcc', _id: 'code1' };
const ruler = { index: 4, input: 'Some text. One of the special magic numbers for cat is: 8812. More text. What is the special magic number for cat?', outputs: ['8812'], length: 30, answer_prefix: ' Answer: The special magic number for cat is' };
const needle = { id: 'n1', prompt: '// file: a.ts\nconst RETRY_LIMIT_a8f3 = 12;\n// RETRY_LIMIT_a8f3 =', answer: 12, depth: 0.5, targetLength: 512, source: { file: 'a.ts', line: 0 } };

function lines(...rows: unknown[]): string {
  return rows.map((r) => (typeof r === 'string' ? r : JSON.stringify(r))).join('\n') + '\n';
}

test('imports LongBench, RULER and needle rows into samples', () => {
  const samples = parseJsonl(lines(longbenchQa, longbenchCode, '', ruler, needle), 'niah_single_1/validation.jsonl', { counter: wordCounter });
  assert.equal(samples.length, 4);
  const [qa, code, r, n] = samples;
  assert.equal(qa.id, 'longbench-abc123');
  assert.equal(qa.task, 'longbench/hotpotqa');
  assert.equal(qa.answer, 'Ada');
  assert.equal(qa.scoring, 'qa_f1_score');
  assert.deepEqual(qa.benchmark, { references: ['Ada'] });
  assert.ok(qa.prompt.includes(`The following are given passages.\n${longbenchQa.context}\n\n`));
  assert.ok(qa.prompt.endsWith('Question: Who kept the lighthouse?\nAnswer:'));
  assert.equal(code.scoring, 'code_sim_score');
  assert.equal(code.answer, '    return 2 * 3.14159 * r\n');
  // lcc's template has no {input}: the context is the whole code.
  assert.equal(code.prompt, `Please complete the code given below. \n${longbenchCode.context}Next line of code:\n`);
  assert.equal(r.id, 'ruler-niah_single_1-4');
  assert.equal(r.prompt, ruler.input + ruler.answer_prefix);
  assert.equal(r.answer, '8812');
  assert.equal(r.scoring, 'string_match_all');
  assert.equal(r.targetLength, 30);
  assert.equal(n.answer, '12');
  assert.equal(n.depth, 0.5);
  assert.deepEqual(n.source, { file: 'a.ts', line: 0 });
  assert.equal(n.promptTokens, wordCounter.encode(needle.prompt).length);
});

test('malformed rows fail with the file and line named', () => {
  const bad = (text: string, pattern: RegExp) =>
    assert.throws(() => parseJsonl(text, 'data/set.jsonl'), (e: unknown) => e instanceof KvlensError && pattern.test(e.message), text);
  bad(lines(longbenchQa, '{"context": "x", '), /^data\/set\.jsonl: line 2: not valid JSON/);
  bad(lines(needle, [1, 2]), /^data\/set\.jsonl: line 2: each line must hold a JSON object/);
  bad(lines({ ...longbenchQa, answers: 'Ada', input: 5 }), /line 1: "input" must be a string, found 5/);
  bad(lines({ ...longbenchQa, answers: [] }), /line 1: "answers" must be a non-empty list/);
  bad(lines({ foo: 1 }), /line 1: unknown row shape/);
  bad(lines({ ...needle, depth: 2 }), /line 1: "depth" must be in \[0, 1\]/);
  bad(lines(needle, needle), /duplicate sample id "n1"/);
  assert.throws(() => parseJsonl(lines(longbenchQa), 'f.jsonl', { format: 'ruler' }), /line 1: "outputs" must be a non-empty list/);
});

test('importJsonl reads a file from disk and names a missing one', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kvlens-import-'));
  try {
    const file = join(dir, 'rows.jsonl');
    writeFileSync(file, lines(ruler, { ...ruler, index: 5 }, { ...ruler, index: 6 }));
    assert.deepEqual(importJsonl(file, { limit: 2, rulerTask: 'niah_single_1' }).map((s) => s.id), ['ruler-niah_single_1-4', 'ruler-niah_single_1-5']);
    assert.throws(() => importJsonl(join(dir, 'missing.jsonl')), /missing\.jsonl: cannot read \(ENOENT\)/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('generated samples written as JSONL read back as the same samples', () => {
  const files = [{ path: 'src/a.ts', language: 'typescript', text: Array.from({ length: 80 }, (_, i) => `export const item${i} = lookup("k${i}");`).join('\n') }];
  const samples = buildSamples(files, { tasks: ['needle', 'completion'], lengths: [200], depths: [0.5], samplesPerCell: 1, seed: 4, counter: wordCounter });
  const back = parseJsonl(samplesToJsonl(samples), 'export.jsonl', { counter: wordCounter });
  assert.deepEqual(back, samples);
  assert.throws(() => parseJsonl(lines({ ...needle, segments: [{ file: 'a.ts' }] }), 'x.jsonl'), /line 1: "segments" must be a list/);
});

test('LongBench answer lists are all gold answers: the score is the best of them', () => {
  const [sample] = parseJsonl(lines({ ...longbenchQa, answers: ['Ada Lovelace', 'Ada'] }), 'qa.jsonl');
  assert.equal(sample.answer, 'Ada Lovelace');
  assert.deepEqual(sample.benchmark?.references, ['Ada Lovelace', 'Ada']);
  // " Ada.\n" → "ada": F1 2/3 against "ada lovelace", 1 against "ada".
  assert.deepEqual(scoreSample(sample, ' Ada.\n'), { score: 1, exact: true, answer: ' Ada.\n' });
});

test('imported benchmark samples written as JSONL read back with their metric, references and budget', () => {
  const samples = parseJsonl(lines(longbenchQa, { ...longbenchCode, dataset: 'repobench-p' }), 'set.jsonl', { counter: wordCounter });
  const back = parseJsonl(samplesToJsonl(samples), 'export.jsonl', { counter: wordCounter });
  assert.deepEqual(back, samples);
  assert.throws(() => parseJsonl(lines({ ...needle, scoring: 'rouge_score' }), 'x.jsonl'), /line 1: scoring "rouge_score" needs "benchmark"/);
  assert.throws(() => parseJsonl(lines({ ...needle, scoring: 'bleu' }), 'x.jsonl'), /line 1: "scoring" must be one of exact, edit-similarity, qa_f1_score/);
  assert.throws(() => parseJsonl(lines({ ...needle, generation: { maxNewTokens: 0, stopAtNewline: false } }), 'x.jsonl'), /line 1: "generation" must be/);
});

// LongBench v2 as pred.py and result.py run it: the 0-shot prompt, the middle cut to the model's length, the
// letter found by extract_answer's two regular expressions, and accuracy overall, by difficulty and by length.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseJsonl } from '../../src/engine/tasks/importJsonl';
import { extractLongBenchV2Answer, renderLongBenchV2Prompt, truncateLongBenchV2 } from '../../src/engine/tasks/longbenchV2';
import { scoreSample } from '../../src/engine/tasks/scoring';
import { benchmarkScores } from '../../src/engine/tasks/benchmarkScores';
import { pyRound1 } from '../../src/engine/tasks/pyText';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SCORE_RULES, type ResultRow } from '../../src/engine/bench/results';
import { resultsSchemaErrors } from '../../src/engine/bench/validate';
import type { TokenCounter } from '../../src/engine/tasks/types';

const row = (extra: Record<string, unknown> = {}) => ({
  _id: '66f36490821e116aacb2cc22',
  domain: 'Single-Document QA',
  sub_domain: 'Financial',
  difficulty: 'easy',
  length: 'short',
  question: ' Which year? ',
  choice_A: '2019',
  choice_B: '2020 ',
  choice_C: '2021',
  choice_D: '2022',
  answer: 'B',
  context: '\nThe report was filed in 2020.\n',
  ...extra,
});
const jsonl = (...rows: unknown[]) => rows.map((r) => JSON.stringify(r)).join('\n') + '\n';

// prompts/0shot.txt with $DOC$, $Q$ and $C_A$..$C_D$ replaced by the stripped fields, written out by hand.
const EXPECTED_PROMPT =
  'Please read the following text and answer the question below.\n' +
  '\n' +
  '<text>\n' +
  'The report was filed in 2020.\n' +
  '</text>\n' +
  '\n' +
  'What is the correct answer to this question: Which year?\n' +
  'Choices:\n' +
  '(A) 2019\n' +
  '(B) 2020\n' +
  '(C) 2021\n' +
  '(D) 2022\n' +
  '\n' +
  'Format your response as follows: "The correct answer is (insert answer here)".';

test('the 0-shot prompt is prompts/0shot.txt filled with the stripped context, question and choices', () => {
  const r = row();
  const prompt = renderLongBenchV2Prompt({ context: r.context, question: r.question, choices: { A: r.choice_A, B: r.choice_B, C: r.choice_C, D: r.choice_D } });
  assert.equal(prompt, EXPECTED_PROMPT);
  // Successive str.replace calls: a "$Q$" in the document is filled by the question, and "$&" stays literal.
  const odd = renderLongBenchV2Prompt({ context: 'see $Q$ and $&', question: 'Q?', choices: { A: 'a', B: 'b', C: 'c', D: 'd' } });
  assert.ok(odd.includes('<text>\nsee Q? and $&\n</text>'));
});

test('an imported row: one user message, 128 new tokens, scored by the extracted letter', () => {
  const chat = (messages: { role: string; content: string }[]) => `<user>${messages[0].content}</user><assistant>`;
  const [sample] = parseJsonl(jsonl(row()), '/data/longbench_v2.jsonl', { style: { formatChat: chat } });
  assert.equal(sample.id, 'longbench-v2-66f36490821e116aacb2cc22');
  assert.equal(sample.task, 'longbench-v2');
  assert.equal(sample.prompt, `<user>${EXPECTED_PROMPT}</user><assistant>`);
  assert.equal(sample.scoring, 'choice_accuracy');
  assert.deepEqual(sample.generation, { maxNewTokens: 128, stopAtNewline: false });
  assert.deepEqual(sample.benchmark, { references: ['B'], group: 'easy/short' });
  assert.deepEqual(scoreSample(sample, '**The correct answer is (B)**'), { score: 1, exact: true, answer: 'B' });
  assert.deepEqual(scoreSample(sample, 'The correct answer is (A)'), { score: 0, exact: false, answer: 'A' });
  assert.deepEqual(scoreSample(sample, 'I cannot tell.'), { score: 0, exact: false, answer: '' });
});

test('data.json as THUDM/LongBench-v2 ships it: one JSON array of rows', () => {
  const samples = parseJsonl(JSON.stringify([row(), row({ _id: 'x2', difficulty: 'hard', length: 'long' })]), '/data/data.json');
  assert.deepEqual(samples.map((s) => s.benchmark?.group), ['easy/short', 'hard/long']);
  assert.throws(() => parseJsonl(JSON.stringify([row({ answer: 'E' })]), '/data/data.json'), /data\.json: row 1: "answer" must be one of A, B, C, D, found "E"/);
  assert.throws(() => parseJsonl(jsonl(row({ difficulty: 'medium' })), '/d/v2.jsonl'), /line 1: "difficulty" must be one of easy, hard, found "medium"/);
  assert.throws(() => parseJsonl('[1, 2]', '/d/v2.json'), /row 1: each row must hold a JSON object/);
});

test("extract_answer: asterisks dropped, '(X)' before a bare letter, case-sensitive, first match", () => {
  assert.equal(extractLongBenchV2Answer('The correct answer is (C).'), 'C');
  assert.equal(extractLongBenchV2Answer('**The correct answer is** (D)'), 'D');
  assert.equal(extractLongBenchV2Answer('  The correct answer is B, because...'), 'B');
  // The bare-letter pattern reads the first letter of a word: "Definitely" answers D.
  assert.equal(extractLongBenchV2Answer('The correct answer is Definitely the second'), 'D');
  assert.equal(extractLongBenchV2Answer('the correct answer is (A)'), null);
  assert.equal(extractLongBenchV2Answer('The correct answer is (E)'), null);
  assert.equal(extractLongBenchV2Answer('The correct answer is (C'), null);
  assert.equal(extractLongBenchV2Answer('The correct answer is A. No: The correct answer is (B)'), 'B', 'the parenthesised form is searched first');
});

test("query_llm's cut: ids[:n // 2] + ids[-n // 2:], decoded together", () => {
  const codec = { encode: (t: string) => t.split(' ').map(Number), decode: (ids: number[]) => ids.join(' ') };
  const ten = '0 1 2 3 4 5 6 7 8 9';
  assert.deepEqual(truncateLongBenchV2(ten, codec, 6), { prompt: '0 1 2 7 8 9', truncated: true });
  // -5 // 2 is -3 in Python: the odd token goes to the end.
  assert.deepEqual(truncateLongBenchV2(ten, codec, 5), { prompt: '0 1 7 8 9', truncated: true });
  assert.deepEqual(truncateLongBenchV2(ten, codec, 10), { prompt: ten, truncated: false });
  // Through the importer: cut first (BOS counted, skipped when decoding), then the chat template.
  const vocabulary: string[] = [];
  const counter: TokenCounter = {
    encode: (t) => [0, ...t.split(' ').map((w) => (vocabulary.includes(w) ? vocabulary.indexOf(w) : vocabulary.push(w) - 1) + 1)],
    decode: (ids) => ids.filter((id) => id !== 0).map((id) => vocabulary[id - 1]).join(' '),
  };
  const words = EXPECTED_PROMPT.split(' ');
  const [sample] = parseJsonl(jsonl(row()), '/d/v2.jsonl', { counter, maxTokens: 20, style: { formatChat: (m) => `[${m[0].content}]` } });
  // 20 ids: BOS and the first 9 words, then the last 10 words.
  assert.equal(sample.prompt, `[${[...words.slice(0, 9), ...words.slice(-10)].join(' ')}]`);
  assert.equal(sample.meta.truncated, true);
  assert.equal(sample.targetLength, 20);
});

test('result.py: accuracy × 100 to one decimal, overall, easy / hard and short / medium / long', () => {
  const base = { model: 'default', length: 10, targetLength: 10, depth: null, family: 'baseline', exact: false, answer: '', expected: '', prediction: '', tokensKept: 0, tokensKeptPerHead: 0, tokensFull: 0, bytesHeld: 0, bytesFull: 0, bytesActive: 0, compressionRatio: 1, verified: true, note: null, prefillMs: 0, compressMs: 0, decodeTokensPerSecond: 0, peakRssBytes: 0, source: null, error: null };
  const r = (group: string, score: number, error: string | null = null): ResultRow => ({ ...base, task: 'longbench-v2', sampleId: group, method: 'full', metric: 'choice_accuracy', group, score, error });
  const scores = benchmarkScores([r('easy/short', 1), r('easy/long', 0), r('hard/medium', 1), r('hard/long', 1), r('hard/short', 0, 'engine failed')]);
  const by = Object.fromEntries(scores.map((s) => [s.group ?? 'overall', [s.rows, s.score]]));
  // Overall 3 of 5; easy 1 of 2; hard 2 of 3 (66.666... → 66.7); short 1 of 2; medium 1 of 1; long 1 of 2.
  assert.deepEqual(by, { overall: [5, 60], easy: [2, 50], hard: [3, 66.7], short: [2, 50], medium: [1, 100], long: [2, 50] });
  // Python's round(x, 1) on exact ties goes to the even neighbour.
  assert.equal(pyRound1(0.25), 0.2);
  assert.equal(pyRound1(0.75), 0.8);
  assert.equal(pyRound1(12.25), 12.2);
});

test('a LongBench v2 row is a valid results row: choice_accuracy is in the schema as in SCORE_RULES', () => {
  const file = JSON.parse(readFileSync(join(__dirname, '..', 'fixtures', 'extension', 'results-fixture.json'), 'utf8'));
  Object.assign(file.rows[0], { task: 'longbench-v2', metric: 'choice_accuracy', group: 'hard/long', answer: 'B', prediction: 'The correct answer is (B)' });
  assert.deepEqual(resultsSchemaErrors(file), []);
  const schema = JSON.parse(readFileSync(join(__dirname, '..', '..', 'schema', 'results.schema.json'), 'utf8'));
  assert.deepEqual(schema.definitions.row.properties.metric.oneOf[1].enum, SCORE_RULES);
});

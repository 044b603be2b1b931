// RULER import and scoring as RULER runs them: task and length from prepare.py's layout, tokens to generate per
// task, input + answer_prefix as the prompt, evaluate.py's cleaning and string_match_all / string_match_part.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseJsonl } from '../../src/engine/tasks/importJsonl';
import { RULER_TASKS, rulerLengthFromPath, rulerPostprocess, rulerTask, rulerTaskFromPath, stringMatchAll, stringMatchPart } from '../../src/engine/tasks/ruler';
import { scoreSample } from '../../src/engine/tasks/scoring';
import { benchmarkScores } from '../../src/engine/tasks/benchmarkScores';
import type { ResultRow } from '../../src/engine/bench/results';
import { wordCounter } from './tasks-support';

const multivalue = {
  index: 3,
  input: 'Some special magic numbers are hidden within the following text. ... One of the special magic numbers for lazy-cat is: 1111. ... 2222 ... 3333 ... 4444 ...\nWhat are all the special magic numbers for lazy-cat mentioned in the provided text?',
  outputs: ['1111', '2222', '3333', '4444'],
  length: 4000,
  length_w_model_temp: 4000,
  answer_prefix: ' The special magic numbers for lazy-cat mentioned in the provided text are',
  token_position_answer: 120,
};
const jsonl = (...rows: unknown[]) => rows.map((r) => JSON.stringify(r)).join('\n') + '\n';

test('the task and the sequence length come from run.sh / prepare.py paths', () => {
  const file = '/runs/llama/synthetic/4096/data/niah_multivalue/validation.jsonl';
  assert.equal(rulerTaskFromPath(file), 'niah_multivalue');
  assert.equal(rulerLengthFromPath(file), 4096);
  assert.equal(rulerTaskFromPath('C:\\ruler\\8192\\data\\qa_2\\validation.jsonl'), 'qa_2');
  assert.equal(rulerTaskFromPath('/tmp/rows.jsonl'), null);
  assert.equal(rulerLengthFromPath('/tmp/rows.jsonl'), null);
  assert.equal(RULER_TASKS.size, 13 + 5, "synthetic.yaml's 13 tasks and the 5 base tasks");
});

test('tokens to generate and the metric per task, as synthetic/constants.py assigns them', () => {
  const of = (name: string) => {
    const t = rulerTask(name)!;
    return [t.base, t.tokensToGenerate, t.metric];
  };
  assert.deepEqual(of('niah_single_1'), ['niah', 128, 'string_match_all']);
  assert.deepEqual(of('niah_multiquery'), ['niah', 128, 'string_match_all']);
  assert.deepEqual(of('vt'), ['variable_tracking', 30, 'string_match_all']);
  assert.deepEqual(of('cwe'), ['common_words_extraction', 120, 'string_match_all']);
  assert.deepEqual(of('fwe'), ['freq_words_extraction', 50, 'string_match_all']);
  assert.deepEqual(of('qa_1'), ['qa', 32, 'string_match_part']);
  assert.equal(rulerTask('niah_nothing'), null);
});

test('a RULER multi-value row: input + answer_prefix as the prompt, every value needed', () => {
  const file = '/runs/m/synthetic/4096/data/niah_multivalue/validation.jsonl';
  const [sample] = parseJsonl(jsonl(multivalue), file, { counter: wordCounter, style: { formatChat: () => 'never used' } });
  assert.equal(sample.id, 'ruler-niah_multivalue-3');
  assert.equal(sample.task, 'ruler/niah_multivalue');
  assert.equal(sample.prompt, multivalue.input + multivalue.answer_prefix, 'used as it stands: prepare.py applied the model template');
  assert.equal(sample.targetLength, 4096);
  assert.equal(sample.scoring, 'string_match_all');
  assert.deepEqual(sample.generation, { maxNewTokens: 128, stopAtNewline: false });
  assert.deepEqual(sample.benchmark, { references: ['1111', '2222', '3333', '4444'] });
  // Three of the four values are in the prediction: 3/4.
  assert.deepEqual(scoreSample(sample, ' 1111, 2222 and 4444.'), { score: 0.75, exact: false, answer: '1111, 2222 and 4444.' });
  assert.equal(scoreSample(sample, ' 4444 3333 2222 1111').score, 1);
  // Outside the layout the task must be named; an unknown one is refused.
  assert.throws(() => parseJsonl(jsonl(multivalue), '/tmp/rows.jsonl'), /line 1: cannot tell which RULER task this is/);
  assert.equal(parseJsonl(jsonl(multivalue), '/tmp/rows.jsonl', { rulerTask: 'vt' })[0].generation?.maxNewTokens, 30);
  assert.throws(() => parseJsonl(jsonl(multivalue), '/tmp/rows.jsonl', { rulerTask: 'niah_nothing' }), /unknown RULER task "niah_nothing"/);
});

test('string_match_all and string_match_part are case-insensitive substring matches after evaluate.py cleaning', () => {
  // strip, control characters → "\n", strip again.
  assert.equal(rulerPostprocess('  \u0007Paris\tFrance \n'), 'Paris\nFrance');
  assert.equal(stringMatchAll('the values are 12 and 7', ['12', '7', '99']), 2 / 3);
  assert.equal(stringMatchPart('PARIS', ['Paris', 'Lyon']), 1);
  assert.equal(stringMatchPart('Marseille', ['Paris', 'Lyon']), 0);
  // Substring, not word: "12" is found inside "123".
  assert.equal(stringMatchAll('123', ['12']), 1);
  const [qa] = parseJsonl(jsonl({ index: 0, input: 'Q?', outputs: ['Paris', 'the city of Paris'], length: 50, answer_prefix: ' Answer:' }), 'x/qa_1/validation.jsonl');
  assert.equal(qa.scoring, 'string_match_part');
  assert.equal(scoreSample(qa, ' It is paris.').score, 1);
});

test('RULER scores: total / n × 100 rounded to 2 decimals, by task and sequence length', () => {
  const base = { model: 'default', sampleId: 's', length: 10, depth: null, family: 'baseline', exact: false, answer: '', expected: '', prediction: '', group: null, tokensKept: 0, tokensKeptPerHead: 0, tokensFull: 0, bytesHeld: 0, bytesFull: 0, bytesActive: 0, compressionRatio: 1, verified: true, note: null, prefillMs: 0, compressMs: 0, decodeTokensPerSecond: 0, peakRssBytes: 0, source: null, error: null };
  const rows: ResultRow[] = [
    { ...base, task: 'ruler/niah_multivalue', targetLength: 4096, method: 'full', score: 0.75, metric: 'string_match_all' },
    { ...base, task: 'ruler/niah_multivalue', targetLength: 4096, method: 'full', score: 1, metric: 'string_match_all' },
    { ...base, task: 'ruler/niah_multivalue', targetLength: 4096, method: 'full', score: 0.5, metric: 'string_match_all' },
    { ...base, task: 'ruler/niah_multivalue', targetLength: 8192, method: 'full', score: 0.25, metric: 'string_match_all' },
  ];
  // (0.75 + 1 + 0.5) / 3 = 0.75 → 75; the 8192 run is its own cell.
  assert.deepEqual(benchmarkScores(rows).map((s) => [s.task, s.group, s.score]), [
    ['ruler/niah_multivalue', '4096', 75],
    ['ruler/niah_multivalue', '8192', 25],
  ]);
});

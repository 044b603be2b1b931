// LongBench import as pred.py / eval.py run it: official prompt strings, token-level middle truncation, the chat
// template per dataset, new-token budgets, LongBench-E length groups, first-line scoring and max over answers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseJsonl } from '../../src/engine/tasks/importJsonl';
import { LONGBENCH_DATASETS, firstLine, longBenchELengthGroup, renderLongBenchTemplate, truncateMiddleTokens } from '../../src/engine/tasks/longbench';
import { scoreSample } from '../../src/engine/tasks/scoring';
import { benchmarkScores } from '../../src/engine/tasks/benchmarkScores';
import type { ResultRow } from '../../src/engine/bench/results';
import type { TokenCounter } from '../../src/engine/tasks/types';
import { realCounter } from './tasks-support';

const row = (dataset: string, extra: Record<string, unknown> = {}) => ({
  _id: `id-${dataset}`,
  dataset,
  context: 'CTX',
  input: 'IN',
  answers: ['ANS'],
  length: 100,
  all_classes: null,
  language: 'en',
  ...extra,
});
const jsonl = (...rows: unknown[]) => rows.map((r) => JSON.stringify(r)).join('\n') + '\n';

/** One token per space-separated word plus a BOS id 0 that decoding skips. */
const words: string[] = [];
const wordCodec: TokenCounter = {
  encode: (text) => [0, ...text.split(' ').map((w) => (words.includes(w) ? words.indexOf(w) : words.push(w) - 1) + 1)],
  decode: (ids) => ids.filter((id) => id !== 0).map((id) => words[id - 1]).join(' '),
};

test('prompt templates render to the official LongBench strings (pred.py: dataset2prompt[dataset].format(**row))', () => {
  const render = (name: string) => renderLongBenchTemplate(LONGBENCH_DATASETS.get(name)!, { context: 'CTX', input: 'IN' });
  assert.equal(
    render('hotpotqa'),
    'Answer the question based on the given passages. Only give me the answer and do not output any other words.\n\nThe following are given passages.\nCTX\n\nAnswer the question based on the given passages. Only give me the answer and do not output any other words.\n\nQuestion: IN\nAnswer:',
  );
  assert.equal(
    render('narrativeqa'),
    'You are given a story, which can be either a novel or a movie script, and a question. Answer the question asconcisely as you can, using a single phrase if possible. Do not provide any explanation.\n\nStory: CTX\n\nNow, answer the question based on the story asconcisely as you can, using a single phrase if possible. Do not provide any explanation.\n\nQuestion: IN\n\nAnswer:',
  );
  assert.equal(render('lcc'), 'Please complete the code given below. \nCTXNext line of code:\n');
  assert.equal(render('repobench-p'), 'Please complete the code given below. \nCTXINNext line of code:\n');
  assert.equal(render('trec'), 'Please determine the type of the question below. Here are some examples of questions.\n\nCTX\nIN');
  assert.equal(render('multifieldqa_zh'), '阅读以下文字并用中文简短回答：\n\nCTX\n\n现在请基于上面的文章回答下面的问题，只告诉我答案，不要输出任何其他字词。\n\n问题：IN\n回答：');
  assert.ok(render('passage_count').endsWith('\n\nThe final answer is: '), 'the trailing space is part of the prompt');
  assert.equal(render('vcsum'), '下面有一段会议记录，请你阅读后，写一段总结，总结会议的内容。\n会议记录：\nCTX\n\n会议总结：');
  // One pass, as str.format: a "{input}" inside the context is text, not a placeholder.
  assert.equal(
    renderLongBenchTemplate(LONGBENCH_DATASETS.get('lsht')!, { context: 'a {input} b', input: 'Q' }),
    '请判断给定新闻的类别，下面是一些例子。\n\na {input} b\nQ',
  );
});

test('all 21 LongBench v1 sets with their new-token budgets (dataset2maxlen), metrics and chat rule', () => {
  assert.equal(LONGBENCH_DATASETS.size, 21);
  const budget = Object.fromEntries([...LONGBENCH_DATASETS.values()].map((d) => [d.name, d.maxNewTokens]));
  assert.deepEqual(budget, {
    narrativeqa: 128, qasper: 128, multifieldqa_en: 64, multifieldqa_zh: 64, hotpotqa: 32, '2wikimqa': 32, musique: 32,
    dureader: 128, gov_report: 512, qmsum: 512, multi_news: 512, vcsum: 512, trec: 64, triviaqa: 32, samsum: 128,
    lsht: 64, passage_count: 32, passage_retrieval_en: 32, passage_retrieval_zh: 32, lcc: 64, 'repobench-p': 64,
  });
  const byMetric = (metric: string) => [...LONGBENCH_DATASETS.values()].filter((d) => d.metric === metric).map((d) => d.name);
  assert.deepEqual(byMetric('qa_f1_score'), ['narrativeqa', 'qasper', 'multifieldqa_en', 'hotpotqa', '2wikimqa', 'musique', 'triviaqa']);
  assert.deepEqual(byMetric('rouge_score'), ['gov_report', 'qmsum', 'multi_news', 'samsum']);
  assert.deepEqual(byMetric('rouge_zh_score'), ['dureader', 'vcsum']);
  assert.deepEqual(byMetric('classification_score'), ['trec', 'lsht']);
  assert.deepEqual(byMetric('code_sim_score'), ['lcc', 'repobench-p']);
  assert.deepEqual([...LONGBENCH_DATASETS.values()].filter((d) => !d.chat).map((d) => d.name), ['trec', 'triviaqa', 'samsum', 'lsht', 'lcc', 'repobench-p']);
  assert.deepEqual([...LONGBENCH_DATASETS.values()].filter((d) => d.firstLineOnly).map((d) => d.name), ['trec', 'triviaqa', 'samsum', 'lsht']);
  assert.equal([...LONGBENCH_DATASETS.values()].filter((d) => d.inLongBenchE).length, 13);
});

test('a prompt over the budget keeps its first and last floor(max/2) tokens, each half decoded on its own', () => {
  const prompt = 'w1 w2 w3 w4 w5 w6 w7 w8 w9 w10';
  // 11 tokens with BOS; max 7 → half 3: [BOS, w1, w2] → "w1 w2" and [w8, w9, w10] → "w8 w9 w10", joined as is.
  assert.deepEqual(truncateMiddleTokens(prompt, { encode: wordCodec.encode, decode: wordCodec.decode! }, 7), { prompt: 'w1 w2w8 w9 w10', truncated: true });
  assert.deepEqual(truncateMiddleTokens(prompt, { encode: wordCodec.encode, decode: wordCodec.decode! }, 11), { prompt, truncated: false });
});

test('a long LongBench row is cut in the middle with a real tokenizer, keeping the instructions at both ends', () => {
  const paragraphs = Array.from({ length: 300 }, (_, i) => `Paragraph ${i}: the archive lists shelf ${i * 7} under section ${i % 13}.`);
  const counter = realCounter();
  const [sample] = parseJsonl(jsonl(row('hotpotqa', { context: paragraphs.join('\n'), input: 'Who kept the lighthouse?' })), 'long.jsonl', { counter, maxTokens: 600 });
  const tokens = counter.encode(sample.prompt).length;
  assert.ok(Math.abs(tokens - 600) <= 3, `${tokens}`);
  assert.ok(sample.prompt.startsWith('Answer the question based on the given passages.'));
  assert.ok(sample.prompt.includes('Paragraph 0: '));
  assert.ok(sample.prompt.includes('Paragraph 299: '), 'the end of the context survives');
  assert.ok(!sample.prompt.includes('Paragraph 150: '), 'the middle is cut');
  assert.ok(sample.prompt.endsWith('Question: Who kept the lighthouse?\nAnswer:'));
  assert.equal(sample.meta.truncated, true);
  assert.equal(sample.promptTokens, tokens);
  // Without a decoder the cut cannot be made at token boundaries.
  assert.throws(() => parseJsonl(jsonl(row('hotpotqa', { context: paragraphs.join('\n') })), 'long.jsonl', { counter: { encode: counter.encode }, maxTokens: 600 }), /line 1: cutting this prompt/);
});

test('the chat template wraps every set but trec, triviaqa, samsum, lsht, lcc and repobench-p; budgets and stops follow the set', () => {
  const style = { formatChat: (m: { content: string }[]) => `<user>${m[0].content}</user><assistant>` };
  const samples = parseJsonl(
    jsonl(row('hotpotqa'), row('trec', { all_classes: ['Animal', 'Food'] }), row('samsum'), row('lcc'), row('gov_report')),
    'mixed.jsonl',
    { style, counter: wordCodec },
  );
  const [hotpot, trec, samsum, lcc, gov] = samples;
  assert.ok(hotpot.prompt.startsWith('<user>Answer the question') && hotpot.prompt.endsWith('Answer:</user><assistant>'));
  assert.ok(trec.prompt.startsWith('Please determine the type'), 'trec is fed without the chat template');
  assert.ok(!lcc.prompt.includes('<user>'));
  assert.ok(gov.prompt.startsWith('<user>'));
  assert.deepEqual(hotpot.generation, { maxNewTokens: 32, stopAtNewline: false });
  assert.deepEqual(samsum.generation, { maxNewTokens: 128, stopAtNewline: true }, "samsum adds '\\n' to its EOS tokens");
  assert.deepEqual(gov.generation, { maxNewTokens: 512, stopAtNewline: false });
  assert.equal(hotpot.task, 'longbench/hotpotqa');
  assert.equal(hotpot.scoring, 'qa_f1_score');
  assert.deepEqual(trec.benchmark, { references: ['ANS'], classes: ['Animal', 'Food'], firstLineOnly: true });
  assert.equal(hotpot.promptTokens, wordCodec.encode(hotpot.prompt).length);
});

test('the dataset comes from the row or the file name; LongBench-E rows are grouped by length', () => {
  const [fromName] = parseJsonl(jsonl({ ...row('x'), dataset: undefined }), 'data/qmsum.jsonl');
  assert.equal(fromName.task, 'longbench/qmsum');
  const [e1, e2, e3] = parseJsonl(
    jsonl({ ...row('qasper'), _id: 'a', length: 3999 }, { ...row('qasper'), _id: 'b', length: 4000 }, { ...row('qasper'), _id: 'c', length: 8000 }),
    'data/qasper_e.jsonl',
  );
  assert.equal(e1.task, 'longbench-e/qasper');
  assert.deepEqual([e1, e2, e3].map((s) => s.benchmark?.group), ['0-4k', '4-8k', '8k+']);
  const [eField] = parseJsonl(jsonl(row('hotpotqa_e', { length: 7999 })), 'rows.jsonl');
  assert.equal(eField.task, 'longbench-e/hotpotqa');
  assert.equal(eField.benchmark?.group, '4-8k');
  assert.deepEqual([0, 3999, 4000, 7999, 8000, 20000].map(longBenchELengthGroup), ['0-4k', '0-4k', '4-8k', '4-8k', '8k+', '8k+']);
  assert.throws(() => parseJsonl(jsonl(row('nosuchset')), 'f.jsonl'), /line 1: unknown LongBench dataset "nosuchset" \(expected one of narrativeqa, /);
  assert.throws(() => parseJsonl(jsonl(row('passage_retrieval_zh_e')), 'f.jsonl'), /unknown LongBench dataset "passage_retrieval_zh_e"/, 'not a LongBench-E set');
  assert.throws(() => parseJsonl(jsonl(row('lsht')), 'f.jsonl'), /"all_classes" is needed to score lsht/);
});

test('scoring: the first line only for trec/triviaqa/samsum/lsht, the max over gold answers, 0 as the floor', () => {
  const [trivia, hotpot, trec, code] = parseJsonl(
    jsonl(
      row('triviaqa', { answers: ['Paris'] }),
      row('hotpotqa', { answers: ['Ada Lovelace', 'Ada'] }),
      row('trec', { answers: ['Food'], all_classes: ['Animal', 'Food'] }),
      row('lcc', { answers: ['    return x'] }),
    ),
    'f.jsonl',
  );
  // eval.py: prediction.lstrip('\n').split('\n')[0] → "Paris" → F1 1; the second line is never read.
  assert.equal(firstLine('\n\nParis\nLondon Paris'), 'Paris');
  assert.deepEqual(scoreSample(trivia, '\nParis\nand also London'), { score: 1, exact: true, answer: 'Paris' });
  // Without the first-line rule hotpotqa reads it all: "ada" vs "ada lovelace": P 1, R 1/2 → 2/3; vs "ada": 1 → max 1.
  const h = scoreSample(hotpot, 'Ada');
  assert.equal(h.score, 1);
  // "ada was here\nlovelace": vs "ada lovelace" 2 shared of 4 / 2 → P 1/2, R 1 → 2/3; vs "ada": P 1/4 → 0.4; max 2/3.
  assert.ok(Math.abs(scoreSample(hotpot, 'Ada was here\nLovelace').score - 2 / 3) < 1e-12);
  // trec's first line names both classes: 1/2; the "Animal" on line two would not count.
  assert.equal(scoreSample(trec, 'Food or Animal\n').score, 0.5);
  assert.equal(scoreSample(trec, 'Food\nAnimal').score, 1);
  const c = scoreSample(code, '# the next line\n    return x\n');
  assert.deepEqual(c, { score: 1, exact: true, answer: '    return x' });
});

function resultRow(task: string, method: string, score: number, extra: Partial<ResultRow> = {}): ResultRow {
  return {
    model: 'default', task, sampleId: `${task}-${score}-${Math.random()}`, length: 10, targetLength: 4096, depth: null, method, family: 'baseline', score, exact: score === 1,
    answer: '', expected: '', prediction: '', metric: 'qa_f1_score', group: null, tokensKept: 0, tokensKeptPerHead: 0, tokensFull: 0,
    bytesHeld: 0, bytesFull: 0, bytesActive: 0, compressionRatio: 1, verified: true, note: null, prefillMs: 0, compressMs: 0,
    decodeTokensPerSecond: 0, peakRssBytes: 0, source: null, error: null, ...extra,
  };
}

test('dataset scores are the mean × 100 rounded to 2 decimals, per method, dataset and LongBench-E group', () => {
  const rows = [
    resultRow('longbench/hotpotqa', 'full', 1),
    resultRow('longbench/hotpotqa', 'full', 0),
    resultRow('longbench/hotpotqa', 'full', 0.5),
    resultRow('longbench/hotpotqa', 'kivi', 2 / 3),
    resultRow('longbench/hotpotqa', 'kivi', 0, { error: 'boom' }),
    resultRow('longbench/hotpotqa', 'kivi', 0),
    resultRow('longbench-e/qasper', 'full', 1, { group: '0-4k' }),
    resultRow('longbench-e/qasper', 'full', 0.25, { group: '4-8k' }),
    resultRow('needle', 'full', 1, { metric: 'exact' }),
  ];
  const scores = benchmarkScores(rows).map(({ method, task, group, score, rows: n, errors }) => ({ method, task, group, score, n, errors }));
  assert.deepEqual(scores, [
    // (1 + 0 + 0.5) / 3 × 100 = 50
    { method: 'full', task: 'longbench/hotpotqa', group: null, score: 50, n: 3, errors: 0 },
    // (2/3 + 0 + 0) / 3 × 100 = 22.222… → 22.22; the failed row counts as 0
    { method: 'kivi', task: 'longbench/hotpotqa', group: null, score: 22.22, n: 3, errors: 1 },
    { method: 'full', task: 'longbench-e/qasper', group: '0-4k', score: 100, n: 1, errors: 0 },
    { method: 'full', task: 'longbench-e/qasper', group: '4-8k', score: 25, n: 1, errors: 0 },
  ]);
});

// kvpress' shared row format: the prompt as KVPressTextGenerationPipeline.preprocess builds it (chat template
// split at a separator after the context, "\n" after the question without one, the answer prefix last), the
// row's max_new_tokens, and the metric of the benchmark its task names; from JSONL, JSON or Parquet.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { importSamples, parseJsonl } from '../../src/engine/tasks/importJsonl';
import { kvpressPrompt } from '../../src/engine/tasks/kvpress';
import { scoreSample } from '../../src/engine/tasks/scoring';
import type { ChatMessage } from '../../src/engine/tasks/prompt';
import type { TokenCounter } from '../../src/engine/tasks/types';

const jsonl = (...rows: unknown[]) => rows.map((r) => JSON.stringify(r)).join('\n') + '\n';
const ruler = {
  context: 'Some special magic numbers are hidden within the following text. ... 1111 ... 2222 ...\n',
  question: 'What are all the special magic numbers for lazy-cat mentioned in the provided text?',
  answer_prefix: ' The special magic numbers for lazy-cat mentioned in the provided text are',
  answer: ['1111', '2222'],
  task: 'niah_multivalue',
  max_new_tokens: 128,
};

/** A template that trims the message, as Llama 3's does: only the text around the separator is affected. */
const llamaLike = (messages: ChatMessage[]) => `<|begin|><|user|>\n\n${messages[0].content.trim()}<|eot|><|assistant|>\n\n`;

test('without a chat template: context + question + "\\n" + answer prefix', () => {
  const [sample] = parseJsonl(jsonl(ruler), '/data/ruler/4096/test.jsonl');
  assert.equal(sample.prompt, `${ruler.context}${ruler.question}\n${ruler.answer_prefix}`);
  assert.equal(sample.task, 'ruler/niah_multivalue');
  assert.equal(sample.targetLength, 4096);
  assert.equal(sample.scoring, 'string_match_all');
  assert.deepEqual(sample.generation, { maxNewTokens: 128, stopAtNewline: false });
  assert.equal(scoreSample(sample, ' 2222 and 9999').score, 0.5);
});

test('with a chat template: the part after the separator follows the question, untrimmed', () => {
  const parts = kvpressPrompt('  Doc.  ', ' Q? ', 'Answer:', llamaLike);
  // The template trims the user message's start (before the context) but never sees the question.
  assert.deepEqual(parts, { context: '<|begin|><|user|>\n\nDoc.  ', question: ' Q? <|eot|><|assistant|>\n\nAnswer:' });
  const [sample] = parseJsonl(jsonl(ruler), '/x/rows.jsonl', { style: { formatChat: llamaLike } });
  assert.equal(sample.prompt, `<|begin|><|user|>\n\n${ruler.context}${ruler.question}<|eot|><|assistant|>\n\n${ruler.answer_prefix}`);
});

test('LongBench and LongBench-E rows score with their dataset metric against `answers`', () => {
  const hotpot = { context: 'C', question: 'Question: Who?\n', answer_prefix: 'Answer:', answers: ['Ada Lovelace'], all_classes: null, length: 5200, task: 'hotpotqa', max_new_tokens: 52, _id: 'h1' };
  const [v1] = parseJsonl(jsonl(hotpot), '/d/longbench/hotpotqa.jsonl');
  assert.equal(v1.task, 'longbench/hotpotqa');
  assert.equal(v1.id, 'kvpress-longbench-hotpotqa-h1');
  assert.equal(v1.scoring, 'qa_f1_score');
  assert.equal(v1.generation?.maxNewTokens, 52, "the row's own budget (kvpress adds 20 to LongBench's)");
  // Token F1 of "lovelace" against "ada lovelace": precision 1, recall 1/2, F1 2/3.
  assert.equal(scoreSample(v1, ' Lovelace').score, 2 / 3);
  const [e] = parseJsonl(jsonl({ ...hotpot, dataset: 'hotpotqa_e' }), '/d/rows.jsonl');
  assert.equal(e.task, 'longbench-e/hotpotqa');
  assert.equal(e.benchmark?.group, '4-8k');
  const trec = { ...hotpot, task: 'trec', answers: ['Entity'], all_classes: ['Entity', 'Location'] };
  const [t] = parseJsonl(jsonl(trec), '/d/trec.jsonl');
  assert.equal(t.scoring, 'classification_score');
  assert.equal(t.benchmark?.firstLineOnly, true);
  assert.throws(() => parseJsonl(jsonl({ ...trec, all_classes: null }), '/d/trec.jsonl'), /line 1: "all_classes" is needed to score trec/);
});

test('LongBench v2 rows (difficulty, length, answer letter) and tasks without a metric here', () => {
  const v2 = { context: 'C', question: 'Q', answer_prefix: '', answer: 'C', difficulty: 'hard', length: 'medium', max_new_tokens: 16 };
  const [sample] = parseJsonl(jsonl(v2), '/d/v2.jsonl');
  assert.equal(sample.task, 'longbench-v2');
  assert.equal(sample.benchmark?.group, 'hard/medium');
  assert.equal(scoreSample(sample, 'The correct answer is (C)').score, 1);
  assert.throws(() => parseJsonl(jsonl({ ...ruler, task: 'kv_retrieval' }), '/d/ib.jsonl'), /line 1: kvpress task "kv_retrieval" has no metric in kvlens/);
  assert.throws(() => parseJsonl(jsonl({ ...ruler, task: undefined }), '/d/x.jsonl'), /line 1: "task" is missing/);
  assert.throws(() => parseJsonl(jsonl({ ...ruler, max_new_tokens: 0 }), '/d/x.jsonl'), /"max_new_tokens" must be a positive integer, found 0/);
});

test('a long context keeps its first tokens so that context + question fit the run', () => {
  const vocabulary: string[] = [];
  const counter: TokenCounter = {
    // Each token is a word with the spaces after it; BOS (0) is skipped when decoding.
    encode: (t) => [0, ...t.split(/(?<= )(?! )/).filter(Boolean).map((w) => (vocabulary.includes(w) ? vocabulary.indexOf(w) : vocabulary.push(w) - 1) + 1)],
    decode: (ids) => ids.filter((id) => id !== 0).map((id) => vocabulary[id - 1]).join(''),
  };
  const row = { context: 'w1 w2 w3 w4 w5 w6 w7 w8 w9 w10 ', question: 'q1 q2', answer_prefix: ' a1', answer: ['w1'], task: 'qa_1', max_new_tokens: 32 };
  const [sample] = parseJsonl(jsonl(row), '/d/x.jsonl', { counter, maxTokens: 8 });
  // 14 tokens (BOS, 10 context words, "q1 ", "q2\n ", "a1"): the context gives up its last 6.
  assert.equal(sample.prompt, 'w1 w2 w3 w4 q1 q2\n a1');
  assert.equal(sample.promptTokens, 8);
  assert.equal(sample.meta.truncated, true);
  assert.throws(() => parseJsonl(jsonl(row), '/d/x.jsonl', { counter, maxTokens: 3 }), /the question alone does not fit in 3 tokens/);
});

test('a Parquet table (snappy, as Hugging Face writes it) reads as the same rows in JSONL', async () => {
  const rows = [
    ruler,
    { ...ruler, context: 'Other context. 7 ...\n', answer: ['7'], task: 'vt', max_new_tokens: 30 },
  ];
  const dir = mkdtempSync(join(tmpdir(), 'kvlens-parquet-'));
  const file = join(dir, 'test.parquet');
  const buffer = parquetWriteBuffer({
    codec: 'SNAPPY',
    columnData: [
      { name: 'context', data: rows.map((r) => r.context), type: 'STRING' },
      { name: 'question', data: rows.map((r) => r.question), type: 'STRING' },
      { name: 'answer_prefix', data: rows.map((r) => r.answer_prefix), type: 'STRING' },
      { name: 'answer', data: rows.map((r) => r.answer) },
      { name: 'task', data: rows.map((r) => r.task), type: 'STRING' },
      { name: 'max_new_tokens', data: BigInt64Array.from(rows.map((r) => BigInt(r.max_new_tokens))), type: 'INT64' },
    ],
  });
  writeFileSync(file, Buffer.from(buffer));
  const fromParquet = await importSamples(file);
  const fromJsonl = parseJsonl(jsonl(...rows), file);
  assert.equal(fromParquet.length, 2);
  // Rows are numbered from 1, as JSONL lines are, so even the ids agree.
  assert.deepEqual(fromParquet, fromJsonl);
  assert.deepEqual(fromParquet[1].generation, { maxNewTokens: 30, stopAtNewline: false });
  assert.equal((await importSamples(file, { limit: 1 })).length, 1);
  writeFileSync(join(dir, 'bad.parquet'), 'not parquet at all');
  await assert.rejects(importSamples(join(dir, 'bad.parquet')), /bad\.parquet: cannot read as Parquet \(/);
});

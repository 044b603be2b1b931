// LongBench v1 and LongBench-E as their authors run them (pred.py / eval.py): each dataset's own prompt template
// and number of new tokens, the prompt cut in the middle at the token level to the context budget, the chat
// template applied except on the few-shot and code sets, and each dataset's metric with its first-line rule
// and the max over the gold answers. Kept in one table so prompts, lengths and metrics cannot drift apart.
import type { ScoreRule } from './types';

export type LongBenchCategory = 'single-doc QA' | 'multi-doc QA' | 'summarization' | 'few-shot' | 'synthetic' | 'code';

export interface LongBenchDataset {
  name: string;
  category: LongBenchCategory;
  /** The template, with {context} and {input} filled in one pass (Python's str.format). */
  template: string;
  /** New tokens to generate (dataset2maxlen). */
  maxNewTokens: number;
  metric: ScoreRule;
  /** False for the sets LongBench feeds to chat models without their chat template. */
  chat: boolean;
  /** Only the first line of the prediction is scored (trec, triviaqa, samsum, lsht). */
  firstLineOnly: boolean;
  /** Part of LongBench-E (the `<name>_e` sets, reported by length group). */
  inLongBenchE: boolean;
}

const PASSAGES_QA =
  'Answer the question based on the given passages. Only give me the answer and do not output any other words.';
const multiDocQa = `${PASSAGES_QA}\n\nThe following are given passages.\n{context}\n\n${PASSAGES_QA}\n\nQuestion: {input}\nAnswer:`;

// "asconcisely" is LongBench's own spelling, kept so the prompt is byte-identical.
const NARRATIVE_ASK = 'as' + 'concisely as you can, using a single phrase if possible. Do not provide any explanation.';
const QASPER_ASK =
  'as concisely as you can, using a single phrase or sentence if possible. If the question cannot be answered based on the information in the article, write "unanswerable". If the question is a yes/no question, answer "yes", "no", or "unanswerable". Do not provide any explanation.';

type Row = [name: string, category: LongBenchCategory, template: string, maxNewTokens: number, metric: ScoreRule];

const ROWS: Row[] = [
  [
    'narrativeqa',
    'single-doc QA',
    `You are given a story, which can be either a novel or a movie script, and a question. Answer the question ${NARRATIVE_ASK}\n\nStory: {context}\n\nNow, answer the question based on the story ${NARRATIVE_ASK}\n\nQuestion: {input}\n\nAnswer:`,
    128,
    'qa_f1_score',
  ],
  [
    'qasper',
    'single-doc QA',
    `You are given a scientific article and a question. Answer the question ${QASPER_ASK}\n\nArticle: {context}\n\n Answer the question based on the above article ${QASPER_ASK}\n\nQuestion: {input}\n\nAnswer:`,
    128,
    'qa_f1_score',
  ],
  [
    'multifieldqa_en',
    'single-doc QA',
    'Read the following text and answer briefly.\n\n{context}\n\nNow, answer the following question based on the above text, only give me the answer and do not output any other words.\n\nQuestion: {input}\nAnswer:',
    64,
    'qa_f1_score',
  ],
  [
    'multifieldqa_zh',
    'single-doc QA',
    '阅读以下文字并用中文简短回答：\n\n{context}\n\n现在请基于上面的文章回答下面的问题，只告诉我答案，不要输出任何其他字词。\n\n问题：{input}\n回答：',
    64,
    'qa_f1_zh_score',
  ],
  ['hotpotqa', 'multi-doc QA', multiDocQa, 32, 'qa_f1_score'],
  ['2wikimqa', 'multi-doc QA', multiDocQa, 32, 'qa_f1_score'],
  ['musique', 'multi-doc QA', multiDocQa, 32, 'qa_f1_score'],
  ['dureader', 'multi-doc QA', '请基于给定的文章回答下述问题。\n\n文章：{context}\n\n请基于上述文章回答下面的问题。\n\n问题：{input}\n回答：', 128, 'rouge_zh_score'],
  [
    'gov_report',
    'summarization',
    'You are given a report by a government agency. Write a one-page summary of the report.\n\nReport:\n{context}\n\nNow, write a one-page summary of the report.\n\nSummary:',
    512,
    'rouge_score',
  ],
  [
    'qmsum',
    'summarization',
    'You are given a meeting transcript and a query containing a question or instruction. Answer the query in one or more sentences.\n\nTranscript:\n{context}\n\nNow, answer the query based on the above meeting transcript in one or more sentences.\n\nQuery: {input}\nAnswer:',
    512,
    'rouge_score',
  ],
  [
    'multi_news',
    'summarization',
    'You are given several news passages. Write a one-page summary of all news. \n\nNews:\n{context}\n\nNow, write a one-page summary of all the news.\n\nSummary:',
    512,
    'rouge_score',
  ],
  ['vcsum', 'summarization', '下面有一段会议记录，请你阅读后，写一段总结，总结会议的内容。\n会议记录：\n{context}\n\n会议总结：', 512, 'rouge_zh_score'],
  ['trec', 'few-shot', 'Please determine the type of the question below. Here are some examples of questions.\n\n{context}\n{input}', 64, 'classification_score'],
  [
    'triviaqa',
    'few-shot',
    'Answer the question based on the given passage. Only give me the answer and do not output any other words. The following are some examples.\n\n{context}\n\n{input}',
    32,
    'qa_f1_score',
  ],
  ['samsum', 'few-shot', 'Summarize the dialogue into a few short sentences. The following are some examples.\n\n{context}\n\n{input}', 128, 'rouge_score'],
  ['lsht', 'few-shot', '请判断给定新闻的类别，下面是一些例子。\n\n{context}\n{input}', 64, 'classification_score'],
  [
    'passage_count',
    'synthetic',
    'There are some paragraphs below sourced from Wikipedia. Some of them may be duplicates. Please carefully read these paragraphs and determine how many unique paragraphs there are after removing duplicates. In other words, how many non-repeating paragraphs are there in total?\n\n{context}\n\nPlease enter the final count of unique paragraphs after removing duplicates. The output format should only contain the number, such as 1, 2, 3, and so on.\n\nThe final answer is: ',
    32,
    'count_score',
  ],
  [
    'passage_retrieval_en',
    'synthetic',
    'Here are 30 paragraphs from Wikipedia, along with an abstract. Please determine which paragraph the abstract is from.\n\n{context}\n\nThe following is an abstract.\n\n{input}\n\nPlease enter the number of the paragraph that the abstract is from. The answer format must be like "Paragraph 1", "Paragraph 2", etc.\n\nThe answer is: ',
    32,
    'retrieval_score',
  ],
  [
    'passage_retrieval_zh',
    'synthetic',
    '以下是若干段落文字，以及其中一个段落的摘要。请确定给定的摘要出自哪一段。\n\n{context}\n\n下面是一个摘要\n\n{input}\n\n请输入摘要所属段落的编号。答案格式必须是"段落1"，"段落2"等格式\n\n答案是：',
    32,
    'retrieval_zh_score',
  ],
  ['lcc', 'code', 'Please complete the code given below. \n{context}Next line of code:\n', 64, 'code_sim_score'],
  ['repobench-p', 'code', 'Please complete the code given below. \n{context}{input}Next line of code:\n', 64, 'code_sim_score'],
];

/** The sets pred.py feeds to chat models as plain text. */
const NO_CHAT = new Set(['trec', 'triviaqa', 'samsum', 'lsht', 'lcc', 'repobench-p']);
/** The sets eval.py scores on the first line of the prediction only. */
const FIRST_LINE = new Set(['trec', 'triviaqa', 'samsum', 'lsht']);
const LONGBENCH_E = new Set([
  'qasper', 'multifieldqa_en', 'hotpotqa', '2wikimqa', 'gov_report', 'multi_news', 'trec', 'triviaqa', 'samsum',
  'passage_count', 'passage_retrieval_en', 'lcc', 'repobench-p',
]);

export const LONGBENCH_DATASETS: ReadonlyMap<string, LongBenchDataset> = new Map(
  ROWS.map(([name, category, template, maxNewTokens, metric]) => [
    name,
    { name, category, template, maxNewTokens, metric, chat: !NO_CHAT.has(name), firstLineOnly: FIRST_LINE.has(name), inLongBenchE: LONGBENCH_E.has(name) },
  ]),
);

/**
 * The dataset a row belongs to, from its `dataset` field or else the file name (`hotpotqa.jsonl`,
 * `hotpotqa_e.jsonl`), and whether it is a LongBench-E row (an `_e` name).
 */
export function resolveLongBenchDataset(field: string | null, fileName: string): { dataset: LongBenchDataset; e: boolean } | { unknown: string } {
  const base = fileName.replace(/^.*[\\/]/, '').replace(/\.jsonl$/i, '');
  const raw = field ?? base;
  const e = raw.endsWith('_e') || (field !== null && base === `${field}_e`);
  const name = raw.endsWith('_e') ? raw.slice(0, -2) : raw;
  const dataset = LONGBENCH_DATASETS.get(name);
  if (!dataset || (e && !dataset.inLongBenchE)) return { unknown: raw };
  return { dataset, e };
}

/** The template filled in one pass, as Python's str.format fills {context} and {input}. */
export function renderLongBenchTemplate(dataset: LongBenchDataset, values: { context: string; input: string }): string {
  return dataset.template.replace(/\{(context|input)\}/g, (_, key: 'context' | 'input') => values[key]);
}

/** A codec that can cut a prompt at token boundaries. */
export interface TokenCodec {
  encode(text: string): number[];
  decode(ids: number[]): string;
}

/**
 * pred.py's truncation: when the prompt has more than `maxTokens` tokens, keep the first and the last
 * floor(maxTokens / 2) tokens, each half decoded on its own, and join the two texts.
 */
export function truncateMiddleTokens(prompt: string, codec: TokenCodec, maxTokens: number): { prompt: string; truncated: boolean } {
  const ids = codec.encode(prompt);
  if (ids.length <= maxTokens) return { prompt, truncated: false };
  const half = Math.floor(maxTokens / 2);
  return { prompt: codec.decode(ids.slice(0, half)) + codec.decode(ids.slice(ids.length - half)), truncated: true };
}

/** LongBench-E's length groups, on the row's `length` (words, as LongBench counts them). */
export function longBenchELengthGroup(length: number): '0-4k' | '4-8k' | '8k+' {
  if (length < 4000) return '0-4k';
  if (length < 8000) return '4-8k';
  return '8k+';
}

/** eval.py's first-line rule: leading newlines dropped, everything from the next newline on dropped. */
export function firstLine(prediction: string): string {
  return prediction.replace(/^\n+/, '').split('\n')[0];
}

// kvpress' row format, which all its evaluation datasets share: `context`, `question`, `answer_prefix`,
// `answer` (or LongBench's `answers`), `max_new_tokens`, plus the benchmark's own columns (`task`, LongBench's
// `all_classes` and `length`, LongBench v2's `difficulty` and `length`). The prompt is built as kvpress'
// pipeline builds it: with a chat template, the template around `context` + a separator is split at the
// separator, so the template's closing part follows the question; without one, the question ends with "\n";
// the answer prefix comes last. The task column picks the benchmark's own metric.
import { LONGBENCH_DATASETS, longBenchELengthGroup, resolveLongBenchDataset } from './longbench';
import { LONGBENCH_V2_CHOICES, LONGBENCH_V2_DIFFICULTIES, LONGBENCH_V2_LENGTHS, longBenchV2Group } from './longbenchV2';
import { RULER_TASKS, rulerLengthFromPath, rulerTask } from './ruler';
import type { FormatChat } from './prompt';
import type { RowReader } from './rowReader';
import type { BenchmarkScoring, Sample, SampleOptions, ScoreRule, TokenCounter } from './types';

/** The two parts of a kvpress prompt: the context kvpress prefills (and cuts) and what follows it. */
export interface KvpressPrompt {
  context: string;
  question: string;
}

/** KVPressTextGenerationPipeline.preprocess, as text. */
export function kvpressPrompt(context: string, question: string, answerPrefix: string, formatChat?: FormatChat): KvpressPrompt {
  if (!formatChat) return { context, question: `${question}\n${answerPrefix}` };
  const separator = '#'.repeat(Array.from(context).length + 10);
  const rendered = formatChat([{ role: 'user', content: context + separator }]);
  const at = rendered.indexOf(separator);
  if (at < 0) throw new Error('the chat template dropped the separator kvpress splits the prompt at');
  return { context: rendered.slice(0, at), question: question + rendered.slice(at + separator.length) + answerPrefix };
}

/**
 * kvpress keeps the first max_context_length tokens of the context and appends the question after them; here
 * the context keeps its first tokens so that the whole prompt fits `maxTokens`, the run's largest context.
 */
export function cutKvpressContext(prompt: KvpressPrompt, counter: TokenCounter & { decode(ids: number[]): string }, maxTokens: number): { prompt: KvpressPrompt; truncated: boolean } {
  let context = prompt.context;
  const contextIds = counter.encode(context);
  let keep = contextIds.length;
  // Cutting can move a token boundary at the seam, so measure the joined prompt again (twice at most suffices).
  for (let attempt = 0; attempt < 4; attempt++) {
    const over = counter.encode(context + prompt.question).length - maxTokens;
    if (over <= 0) return { prompt: { context, question: prompt.question }, truncated: keep < contextIds.length };
    keep -= over;
    if (keep <= 0) break;
    context = counter.decode(contextIds.slice(0, keep));
  }
  return { prompt: { context, question: prompt.question }, truncated: true };
}

interface Scored {
  task: string;
  scoring: ScoreRule;
  answer: string;
  benchmark: BenchmarkScoring;
  meta: Record<string, unknown>;
}

const KNOWN = 'RULER tasks, the LongBench and LongBench-E sets, and LongBench v2 rows (with "difficulty")';

function scoredAs(reader: RowReader, file: string): Scored {
  if (reader.has('difficulty')) {
    const difficulty = reader.choice('difficulty', LONGBENCH_V2_DIFFICULTIES);
    const length = reader.choice('length', LONGBENCH_V2_LENGTHS);
    const answer = reader.choice('answer', LONGBENCH_V2_CHOICES);
    return {
      task: 'longbench-v2',
      scoring: 'choice_accuracy',
      answer,
      benchmark: { references: [answer], group: longBenchV2Group(difficulty, length) },
      meta: { difficulty, length, domain: reader.optionalString('domain') },
    };
  }
  const task = reader.optionalString('task') ?? reader.fail(`"task" is missing: kvpress rows are scored by their task (kvlens scores ${KNOWN})`);
  const ruler = rulerTask(task);
  if (ruler) {
    const references = reader.stringList('answer');
    return { task: `ruler/${ruler.name}`, scoring: ruler.metric, answer: references.join(', '), benchmark: { references }, meta: { rulerTask: ruler.name, baseTask: ruler.base } };
  }
  if (LONGBENCH_DATASETS.has(task.replace(/[-_]e$/, ''))) {
    const resolved = resolveLongBenchDataset(reader.optionalString('dataset') ?? task.replace(/-e$/, '_e'), file);
    if ('unknown' in resolved) reader.fail(`"dataset" ${JSON.stringify(resolved.unknown)} is not a LongBench set`);
    const { dataset, e } = resolved;
    const references = reader.stringList('answers');
    const classes = reader.optionalStringList('all_classes');
    if (dataset.metric === 'classification_score' && classes === null) reader.fail(`"all_classes" is needed to score ${dataset.name}`);
    const length = reader.optionalNumber('length');
    if (e && length === null) reader.fail('"length" is needed to group a LongBench-E row');
    return {
      task: `${e ? 'longbench-e' : 'longbench'}/${dataset.name}`,
      scoring: dataset.metric,
      answer: references[0],
      benchmark: {
        references,
        ...(classes ? { classes } : {}),
        ...(dataset.firstLineOnly ? { firstLineOnly: true } : {}),
        ...(e ? { group: longBenchELengthGroup(length!) } : {}),
      },
      meta: { dataset: dataset.name, category: dataset.category, length },
    };
  }
  return reader.fail(`kvpress task ${JSON.stringify(task)} has no metric in kvlens (it scores ${KNOWN}; known RULER tasks: ${[...RULER_TASKS.keys()].join(', ')})`);
}

/** One kvpress row as a sample, under the same task names as the benchmark's own files. */
export function kvpressSample(reader: RowReader, options: SampleOptions, file: string): Sample {
  const scored = scoredAs(reader, file);
  const maxNewTokens = reader.positiveInteger('max_new_tokens');
  let parts = kvpressPrompt(reader.string('context'), reader.string('question'), reader.optionalString('answer_prefix') ?? '', options.style?.formatChat);
  let truncated = false;
  const { counter, maxTokens } = options;
  if (counter && maxTokens !== undefined && counter.encode(parts.context + parts.question).length > maxTokens) {
    const decode = counter.decode ?? reader.fail('cutting this prompt to the context needs a tokenizer that can decode');
    ({ prompt: parts, truncated } = cutKvpressContext(parts, { encode: (t) => counter.encode(t), decode: (ids) => decode(ids) }, maxTokens));
    if (counter.encode(parts.context + parts.question).length > maxTokens) reader.fail(`the question alone does not fit in ${maxTokens} tokens`);
  }
  const prompt = parts.context + parts.question;
  const tokens = counter ? counter.encode(prompt).length : 0;
  const kind = scored.task.replace(/\/.*$/, '');
  return {
    id: `kvpress-${scored.task.replace('/', '-')}-${reader.optionalString('_id') ?? reader.lineNumber}`,
    task: scored.task,
    targetLength: kind === 'ruler' ? (rulerLengthFromPath(file) ?? maxTokens ?? tokens) : (maxTokens ?? tokens),
    depth: null,
    prompt,
    promptTokens: tokens,
    answer: scored.answer,
    scoring: scored.scoring,
    source: null,
    benchmark: scored.benchmark,
    generation: { maxNewTokens, stopAtNewline: false },
    meta: { ...scored.meta, format: 'kvpress', truncated },
  };
}

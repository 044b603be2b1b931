// Brings published long-context sets into the same Sample shape, prompted, sized and scored as their authors
// do: LongBench / LongBench-E rows (context, input, answers; see longbench.ts), LongBench v2 rows (context,
// question, choice_A..D; see longbenchV2.ts), RULER rows (input, outputs, answer_prefix; see ruler.ts),
// kvpress rows (context, question, answer_prefix, max_new_tokens; see kvpress.ts) and needle rows (prompt,
// answer, as kvlens writes them). A file holds one JSON object a line, one JSON array of them, or (.parquet)
// a Parquet table of them.
import { readFileSync } from 'node:fs';
import { KvlensError } from '../errors';
import { SCORE_RULES } from '../bench/results';
import { LONGBENCH_DATASETS, longBenchELengthGroup, renderLongBenchTemplate, resolveLongBenchDataset, truncateMiddleTokens } from './longbench';
import { longBenchV2Sample } from './longbenchV2';
import { kvpressSample } from './kvpress';
import { RULER_TASKS, rulerLengthFromPath, rulerTask, rulerTaskFromPath } from './ruler';
import { RowReader, describe, type Row } from './rowReader';
import { readParquetRows } from './parquetRows';
import type { BenchmarkScoring, Generation, PromptSegment, Sample, SampleOptions, SampleSource, ScoreRule, TokenCounter } from './types';

export type JsonlFormat = 'auto' | 'longbench' | 'longbench-v2' | 'ruler' | 'kvpress' | 'needle';

export interface ImportOptions extends SampleOptions {
  format?: JsonlFormat;
  /**
   * Prompts longer than maxTokens are cut as their benchmark cuts them: LongBench v1 and v2 in the middle at
   * token boundaries (needs `counter.decode`), kvpress rows at the end of the context; RULER rows are refused.
   */
  maxTokens?: number;
  /** The RULER task of the rows (e.g. `niah_multivalue`); by default the folder of `<task>/validation.jsonl`. */
  rulerTask?: string;
  /** Rows to read at most. */
  limit?: number;
}

function detect(row: Row): Exclude<JsonlFormat, 'auto'> | null {
  if ('context' in row && 'question' in row && 'answer_prefix' in row && 'max_new_tokens' in row) return 'kvpress';
  if ('context' in row && 'question' in row && 'choice_A' in row) return 'longbench-v2';
  if ('context' in row && 'input' in row && 'answers' in row) return 'longbench';
  if ('input' in row && 'outputs' in row) return 'ruler';
  if ('prompt' in row && 'answer' in row) return 'needle';
  return null;
}

function tokensOf(counter: TokenCounter | undefined, text: string): number {
  return counter ? counter.encode(text).length : 0;
}

function fromLongBench(reader: RowReader, options: ImportOptions, file: string): Sample {
  const context = reader.string('context');
  const input = reader.string('input');
  const answers = reader.stringList('answers');
  const id = reader.optionalString('_id') ?? reader.fail('"_id" is missing');
  const length = reader.optionalNumber('length');
  const resolved = resolveLongBenchDataset(reader.optionalString('dataset'), file);
  if ('unknown' in resolved) {
    reader.fail(`unknown LongBench dataset "${resolved.unknown}" (expected one of ${[...LONGBENCH_DATASETS.keys()].join(', ')}, or <name>_e for LongBench-E)`);
  }
  const { dataset, e } = resolved;
  const classes = reader.optionalStringList('all_classes');
  if (dataset.metric === 'classification_score' && classes === null) reader.fail(`"all_classes" is needed to score ${dataset.name}`);
  if (e && length === null) reader.fail('"length" is needed to group a LongBench-E row');
  let prompt = renderLongBenchTemplate(dataset, { context, input });
  let truncated = false;
  if (options.counter && options.maxTokens !== undefined) {
    const { counter, maxTokens } = options;
    if (counter.encode(prompt).length > maxTokens) {
      if (!counter.decode) reader.fail('cutting this prompt to the context needs a tokenizer that can decode');
      ({ prompt, truncated } = truncateMiddleTokens(prompt, { encode: (t) => counter.encode(t), decode: (ids) => counter.decode!(ids) }, maxTokens));
    }
  }
  const formatChat = options.style?.formatChat;
  if (dataset.chat && formatChat) prompt = formatChat([{ role: 'user', content: prompt }]);
  const tokens = tokensOf(options.counter, prompt);
  return {
    id: `longbench-${id}`,
    task: `${e ? 'longbench-e' : 'longbench'}/${dataset.name}`,
    targetLength: options.maxTokens ?? (tokens || (length ?? 0)),
    depth: null,
    prompt,
    promptTokens: tokens,
    answer: answers[0],
    scoring: dataset.metric,
    source: null,
    benchmark: {
      references: answers,
      ...(classes ? { classes } : {}),
      ...(dataset.firstLineOnly ? { firstLineOnly: true } : {}),
      ...(e ? { group: longBenchELengthGroup(length!) } : {}),
    },
    generation: { maxNewTokens: dataset.maxNewTokens, stopAtNewline: dataset.name === 'samsum' },
    meta: { dataset: dataset.name, category: dataset.category, length, truncated, language: reader.optionalString('language') },
  };
}

function fromRuler(reader: RowReader, options: ImportOptions, file: string): Sample {
  const input = reader.string('input');
  const outputs = reader.stringList('outputs');
  const index = reader.optionalNumber('index');
  const length = reader.optionalNumber('length');
  const answerPrefix = reader.optionalString('answer_prefix') ?? '';
  const name = options.rulerTask ?? rulerTaskFromPath(file);
  if (name === null) {
    reader.fail(`cannot tell which RULER task this is: keep the file as RULER writes it, <task>/validation.jsonl, or name the task (one of ${[...RULER_TASKS.keys()].join(', ')})`);
  }
  const task = rulerTask(name) ?? reader.fail(`unknown RULER task "${name}" (expected one of ${[...RULER_TASKS.keys()].join(', ')})`);
  // RULER feeds `input` + `answer_prefix` as they stand: prepare.py has already wrapped `input` in the model template.
  const prompt = input + answerPrefix;
  const tokens = tokensOf(options.counter, prompt);
  if (options.maxTokens !== undefined && options.counter && tokens > options.maxTokens) {
    reader.fail(`the RULER prompt has ${tokens} tokens, more than the ${options.maxTokens} allowed (RULER rows are built for one length; pick the matching file)`);
  }
  return {
    id: `ruler-${task.name}-${index ?? reader.lineNumber}`,
    task: `ruler/${task.name}`,
    targetLength: rulerLengthFromPath(file) ?? length ?? tokens,
    depth: null,
    prompt,
    promptTokens: tokens,
    answer: outputs.join(', '),
    scoring: task.metric,
    source: null,
    benchmark: { references: outputs },
    generation: { maxNewTokens: task.tokensToGenerate, stopAtNewline: false },
    meta: { rulerTask: task.name, baseTask: task.base, length },
  };
}

function fromNeedle(reader: RowReader, options: ImportOptions, row: Row): Sample {
  const prompt = reader.string('prompt');
  const answerValue = row.answer;
  if (typeof answerValue !== 'string' && typeof answerValue !== 'number') reader.fail(`"answer" must be a string or number, found ${describe(answerValue)}`);
  const depth = reader.optionalNumber('depth');
  if (depth !== null && (depth < 0 || depth > 1)) reader.fail(`"depth" must be in [0, 1], found ${depth}`);
  const scoring = reader.optionalString('scoring') ?? 'exact';
  if (!(SCORE_RULES as readonly string[]).includes(scoring)) reader.fail(`"scoring" must be one of ${SCORE_RULES.join(', ')}, found ${describe(scoring)}`);
  const benchmark = readBenchmark(reader, row.benchmark);
  const generation = readGeneration(reader, row.generation);
  if (benchmark === undefined && scoring !== 'exact' && scoring !== 'edit-similarity') reader.fail(`scoring "${scoring}" needs "benchmark": {references}`);
  const tokens = tokensOf(options.counter, prompt);
  const targetLength = reader.optionalNumber('targetLength') ?? reader.optionalNumber('length') ?? tokens;
  let source: SampleSource | null = null;
  if (row.source !== undefined && row.source !== null) {
    const s = row.source as Row;
    if (typeof s !== 'object' || typeof s.file !== 'string' || typeof s.line !== 'number') reader.fail('"source" must be {file, line}');
    source = { file: s.file as string, line: s.line as number };
  }
  let segments: PromptSegment[] | undefined;
  if (row.segments !== undefined && row.segments !== null) {
    const list = row.segments;
    const valid =
      Array.isArray(list) &&
      list.every((g: Row) => typeof g === 'object' && g !== null && typeof g.file === 'string' && [g.promptLine, g.startLine, g.lineCount].every((v) => Number.isInteger(v)));
    if (!valid) reader.fail('"segments" must be a list of {promptLine, file, startLine, lineCount}');
    segments = (list as PromptSegment[]).map((g) => ({ promptLine: g.promptLine, file: g.file, startLine: g.startLine, lineCount: g.lineCount }));
  }
  return {
    id: reader.optionalString('id') ?? `needle-import-${reader.lineNumber}`,
    task: reader.optionalString('task') ?? 'needle',
    targetLength,
    depth,
    prompt,
    promptTokens: tokens,
    answer: String(answerValue),
    scoring: scoring as ScoreRule,
    source,
    ...(segments ? { segments } : {}),
    ...(benchmark ? { benchmark } : {}),
    ...(generation ? { generation } : {}),
    meta: typeof row.meta === 'object' && row.meta !== null ? (row.meta as Record<string, unknown>) : {},
  };
}

function readBenchmark(reader: RowReader, value: unknown): BenchmarkScoring | undefined {
  if (value === undefined || value === null) return undefined;
  const b = value as Record<string, unknown>;
  const strings = (v: unknown) => Array.isArray(v) && v.every((x) => typeof x === 'string');
  const valid =
    typeof b === 'object' &&
    strings(b.references) &&
    (b.references as string[]).length > 0 &&
    (b.classes === undefined || strings(b.classes)) &&
    (b.firstLineOnly === undefined || typeof b.firstLineOnly === 'boolean') &&
    (b.group === undefined || typeof b.group === 'string');
  if (!valid) reader.fail('"benchmark" must be {references: [string, ...], classes?, firstLineOnly?, group?}');
  return {
    references: b.references as string[],
    ...(b.classes !== undefined ? { classes: b.classes as string[] } : {}),
    ...(b.firstLineOnly !== undefined ? { firstLineOnly: b.firstLineOnly as boolean } : {}),
    ...(b.group !== undefined ? { group: b.group as string } : {}),
  };
}

function readGeneration(reader: RowReader, value: unknown): Generation | undefined {
  if (value === undefined || value === null) return undefined;
  const g = value as Record<string, unknown>;
  if (typeof g !== 'object' || !Number.isInteger(g.maxNewTokens) || (g.maxNewTokens as number) < 1 || typeof g.stopAtNewline !== 'boolean') {
    reader.fail('"generation" must be {maxNewTokens: integer ≥ 1, stopAtNewline: boolean}');
  }
  return { maxNewTokens: g.maxNewTokens as number, stopAtNewline: g.stopAtNewline as boolean };
}

/** The rows of a file with the number errors name them by: JSONL lines, or the entries of one JSON array. */
function rowsOf(text: string, file: string): { value: unknown; number: number; unit: 'line' | 'row' }[] {
  if (text.trimStart().startsWith('[')) {
    let list: unknown;
    try {
      list = JSON.parse(text);
    } catch (error) {
      throw new KvlensError(`not valid JSON (${(error as Error).message})`, file);
    }
    if (!Array.isArray(list)) throw new KvlensError('a JSON file must hold one array of row objects', file);
    return list.map((value, i) => ({ value, number: i + 1, unit: 'row' as const }));
  }
  const rows: { value: unknown; number: number; unit: 'line' | 'row' }[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === '') continue;
    try {
      rows.push({ value: JSON.parse(line), number: i + 1, unit: 'line' });
    } catch (error) {
      throw new KvlensError(`line ${i + 1}: not valid JSON (${(error as Error).message})`, file);
    }
  }
  return rows;
}

export function parseJsonl(text: string, file: string, options: ImportOptions = {}): Sample[] {
  return samplesOfRows(rowsOf(text, file), file, options);
}

function samplesOfRows(rows: { value: unknown; number: number; unit: 'line' | 'row' }[], file: string, options: ImportOptions): Sample[] {
  const format = options.format ?? 'auto';
  const samples: Sample[] = [];
  for (const { value: row, number, unit } of rows) {
    if (options.limit !== undefined && samples.length >= options.limit) break;
    if (typeof row !== 'object' || row === null || Array.isArray(row)) {
      throw new KvlensError(`${unit} ${number}: each ${unit} must hold a JSON object`, file);
    }
    const reader = new RowReader(row as Row, file, number, unit);
    const kind = format === 'auto' ? detect(row as Row) : format;
    if (kind === null) {
      reader.fail(
        'unknown row shape: expected LongBench (context, input, answers), LongBench v2 (context, question, choice_A..D), RULER (input, outputs), kvpress (context, question, answer_prefix, max_new_tokens) or needle (prompt, answer) fields',
      );
    }
    if (kind === 'longbench') samples.push(fromLongBench(reader, options, file));
    else if (kind === 'longbench-v2') samples.push(longBenchV2Sample(reader, options));
    else if (kind === 'kvpress') samples.push(kvpressSample(reader, options, file));
    else if (kind === 'ruler') samples.push(fromRuler(reader, options, file));
    else samples.push(fromNeedle(reader, options, row as Row));
  }
  const ids = new Set<string>();
  for (const sample of samples) {
    if (ids.has(sample.id)) throw new KvlensError(`duplicate sample id "${sample.id}"`, file);
    ids.add(sample.id);
  }
  return samples;
}

export function importJsonl(file: string, options: ImportOptions = {}): Sample[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new KvlensError(`cannot read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`, file);
  }
  return parseJsonl(text, file, options);
}

/** An imported file's samples: Parquet (`.parquet`, read with hyparquet), else JSONL or a JSON array. */
export async function importSamples(file: string, options: ImportOptions = {}): Promise<Sample[]> {
  if (!/\.parquet$/i.test(file)) return importJsonl(file, options);
  const rows = await readParquetRows(file, options.limit);
  return samplesOfRows(rows.map((r) => ({ ...r, unit: 'row' as const })), file, options);
}

/** Samples as needle-format JSONL (one object a line) that parseJsonl reads back unchanged. */
export function samplesToJsonl(samples: readonly Sample[]): string {
  return samples
    .map((s) =>
      JSON.stringify({
        id: s.id,
        task: s.task,
        targetLength: s.targetLength,
        depth: s.depth,
        prompt: s.prompt,
        answer: s.answer,
        scoring: s.scoring,
        source: s.source,
        segments: s.segments,
        benchmark: s.benchmark,
        generation: s.generation,
        meta: s.meta,
      }),
    )
    .map((line) => `${line}\n`)
    .join('');
}

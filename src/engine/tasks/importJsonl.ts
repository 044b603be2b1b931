// Brings published long-context sets into the same Sample shape: LongBench rows (context, input, answers),
// RULER rows (input, outputs) and needle rows (prompt, answer, as kvlens writes them).
import { readFileSync } from 'node:fs';
import { KvlensError } from '../errors';
import { fitToBudget } from './context';
import { renderPrompt, type PromptStyle } from './prompt';
import type { PromptSegment, Sample, SampleSource, ScoreRule, TokenCounter } from './types';

export type JsonlFormat = 'auto' | 'longbench' | 'ruler' | 'needle';

export interface ImportOptions {
  format?: JsonlFormat;
  /** Measures prompts (promptTokens) and, with maxTokens, truncates long contexts. */
  counter?: TokenCounter;
  /** Contexts longer than this are cut in the middle, keeping their beginning and end (as LongBench does). */
  maxTokens?: number;
  /** Rows to read at most. */
  limit?: number;
  style?: PromptStyle;
}

type Row = Record<string, unknown>;

/** LongBench's code-completion sets, scored by edit similarity. */
const LONGBENCH_CODE_SETS = new Set(['lcc', 'repobench-p']);

function detect(row: Row): Exclude<JsonlFormat, 'auto'> | null {
  if ('context' in row && 'input' in row && 'answers' in row) return 'longbench';
  if ('input' in row && 'outputs' in row) return 'ruler';
  if ('prompt' in row && 'answer' in row) return 'needle';
  return null;
}

class RowReader {
  constructor(
    private readonly row: Row,
    private readonly file: string,
    readonly lineNumber: number,
  ) {}

  fail(problem: string): never {
    throw new KvlensError(`line ${this.lineNumber}: ${problem}`, this.file);
  }

  string(key: string): string {
    const value = this.row[key];
    if (typeof value !== 'string') this.fail(`"${key}" must be a string, found ${describe(value)}`);
    return value;
  }

  optionalString(key: string): string | null {
    const value = this.row[key];
    if (value === undefined || value === null) return null;
    if (typeof value !== 'string') this.fail(`"${key}" must be a string, found ${describe(value)}`);
    return value;
  }

  optionalNumber(key: string): number | null {
    const value = this.row[key];
    if (value === undefined || value === null) return null;
    if (typeof value !== 'number' || !Number.isFinite(value)) this.fail(`"${key}" must be a number, found ${describe(value)}`);
    return value;
  }

  stringList(key: string): string[] {
    const value = this.row[key];
    const list = typeof value === 'string' ? [value] : value;
    if (!Array.isArray(list) || list.length === 0 || !list.every((v) => typeof v === 'string' || typeof v === 'number')) {
      this.fail(`"${key}" must be a non-empty list of strings, found ${describe(value)}`);
    }
    return list.map(String);
  }
}

function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  const text = JSON.stringify(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

function tokensOf(counter: TokenCounter | undefined, text: string): number {
  return counter ? counter.encode(text).length : 0;
}

/** The prompt with its context cut in the middle until it fits `maxTokens`. */
function truncateMiddle(
  context: string,
  render: (context: string) => string,
  options: ImportOptions,
  reader: RowReader,
): { prompt: string; tokens: number; truncated: boolean } {
  const full = render(context);
  if (!options.counter || options.maxTokens === undefined) return { prompt: full, tokens: tokensOf(options.counter, full), truncated: false };
  const fullTokens = options.counter.encode(full).length;
  if (fullTokens <= options.maxTokens) return { prompt: full, tokens: fullTokens, truncated: false };
  const half = Math.floor(context.length / 2);
  const fit = fitToBudget(half, (keep) => render(context.slice(0, keep) + context.slice(context.length - keep)), options.counter, options.maxTokens);
  if (!fit) reader.fail(`the question alone is longer than ${options.maxTokens} tokens`);
  return { prompt: fit.text, tokens: fit.tokens, truncated: true };
}

function fromLongBench(reader: RowReader, options: ImportOptions): Sample {
  const context = reader.string('context');
  const input = reader.string('input');
  const answers = reader.stringList('answers');
  const id = reader.optionalString('_id') ?? reader.fail('"_id" is missing');
  const length = reader.optionalNumber('length');
  const dataset = reader.optionalString('dataset') ?? 'longbench';
  const isCode = LONGBENCH_CODE_SETS.has(dataset);
  const style = options.style ?? {};
  // Code sets continue the code; the others ask the question after the document.
  const render = isCode
    ? (ctx: string) =>
        renderPrompt(`${ctx}${input}`, { cue: '', question: 'Write the next line of code. Reply with that line only.' }, style)
    : (ctx: string) => renderPrompt(ctx, { cue: `Question: ${input}\nAnswer:`, question: `${input}\nAnswer briefly.` }, style);
  const { prompt, tokens, truncated } = truncateMiddle(context, render, options, reader);
  return {
    id: `longbench-${id}`,
    task: `longbench/${dataset}`,
    targetLength: options.maxTokens ?? (tokens || (length ?? 0)),
    depth: null,
    prompt,
    promptTokens: tokens,
    answer: isCode ? answers[0].split('\n').find((l) => l.trim() !== '')?.trim() ?? answers[0] : answers[0],
    scoring: isCode ? 'edit-similarity' : 'exact',
    source: null,
    // `alternatives` are the other accepted answers, which the bench passes to scoreContinuation.
    meta: { answers, alternatives: isCode ? [] : answers.slice(1), dataset, length, truncated },
  };
}

function fromRuler(reader: RowReader, options: ImportOptions): Sample {
  const input = reader.string('input');
  const outputs = reader.stringList('outputs');
  const index = reader.optionalNumber('index');
  const length = reader.optionalNumber('length');
  const answerPrefix = reader.optionalString('answer_prefix') ?? '';
  const style = options.style ?? {};
  const prompt = style.formatChat ? style.formatChat([{ role: 'user', content: input }]) + answerPrefix : input + answerPrefix;
  const tokens = tokensOf(options.counter, prompt);
  if (options.maxTokens !== undefined && options.counter && tokens > options.maxTokens) {
    reader.fail(`the RULER prompt has ${tokens} tokens, more than the ${options.maxTokens} allowed (RULER rows are built for one length; pick the matching file)`);
  }
  return {
    id: `ruler-${index ?? reader.lineNumber}`,
    task: 'ruler',
    targetLength: length ?? tokens,
    depth: null,
    prompt,
    promptTokens: tokens,
    answer: outputs[0],
    scoring: 'exact',
    source: null,
    meta: { outputs, length },
  };
}

function fromNeedle(reader: RowReader, options: ImportOptions, row: Row): Sample {
  const prompt = reader.string('prompt');
  const answerValue = row.answer;
  if (typeof answerValue !== 'string' && typeof answerValue !== 'number') reader.fail(`"answer" must be a string or number, found ${describe(answerValue)}`);
  const depth = reader.optionalNumber('depth');
  if (depth !== null && (depth < 0 || depth > 1)) reader.fail(`"depth" must be in [0, 1], found ${depth}`);
  const scoring = reader.optionalString('scoring') ?? 'exact';
  if (scoring !== 'exact' && scoring !== 'edit-similarity') reader.fail(`"scoring" must be "exact" or "edit-similarity", found ${describe(scoring)}`);
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
    meta: typeof row.meta === 'object' && row.meta !== null ? (row.meta as Record<string, unknown>) : {},
  };
}

export function parseJsonl(text: string, file: string, options: ImportOptions = {}): Sample[] {
  const format = options.format ?? 'auto';
  const samples: Sample[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    if (options.limit !== undefined && samples.length >= options.limit) break;
    const line = lines[i].trim();
    if (line === '') continue;
    const lineNumber = i + 1;
    let row: unknown;
    try {
      row = JSON.parse(line);
    } catch (error) {
      throw new KvlensError(`line ${lineNumber}: not valid JSON (${(error as Error).message})`, file);
    }
    if (typeof row !== 'object' || row === null || Array.isArray(row)) {
      throw new KvlensError(`line ${lineNumber}: each line must hold a JSON object`, file);
    }
    const reader = new RowReader(row as Row, file, lineNumber);
    const kind = format === 'auto' ? detect(row as Row) : format;
    if (kind === null) {
      reader.fail('unknown row shape: expected LongBench (context, input, answers), RULER (input, outputs) or needle (prompt, answer) fields');
    }
    if (kind === 'longbench') samples.push(fromLongBench(reader, options));
    else if (kind === 'ruler') samples.push(fromRuler(reader, options));
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
        meta: s.meta,
      }),
    )
    .map((line) => `${line}\n`)
    .join('');
}

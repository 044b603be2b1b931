// LCC-style next-line completion: other files of the repository fill the context, then the beginning of a
// real file; the answer is that file's next line of code, scored by edit similarity.
import { KvlensError } from '../errors';
import { isTargetLine } from './codelines';
import { fileBlock, fitFiller, fitToBudget, lineOffsetOf, preferFocusLines, rotation, segmentsOf, splitLines, type ContextLine, type Fit } from './context';
import { requireFiles, sampleId } from './haystack';
import { renderPrompt, type Query } from './prompt';
import { Rng } from './random';
import type { CodeFile, GeneratorOptions, PromptSegment, Sample } from './types';

/** At least this many lines of the file precede the target, so the model sees where it is. */
export const MIN_PREFIX_LINES = 3;

export function targetCandidates(file: CodeFile): number[] {
  const lines = splitLines(file.text);
  const out: number[] = [];
  for (let i = MIN_PREFIX_LINES; i < lines.length; i++) if (isTargetLine(lines[i], file.language)) out.push(i);
  return out;
}

export interface CodeContextSpec {
  task: string;
  /** Lines placed first (cross-file definitions), before any filler. */
  lead: ContextLine[];
  /** Files not to use as filler. */
  exclude: ReadonlySet<string>;
  target: CodeFile;
  targetLine: number;
}

export interface CodeContext {
  prompt: string;
  tokens: number;
  fillerLines: number;
  /** First line of the target file kept in the context (> 0 when its beginning had to be cut). */
  prefixStart: number;
  contextFiles: string[];
  segments: PromptSegment[];
}

function completionQuery(target: CodeFile): Query {
  return { cue: '', question: `Write the next line of code of ${target.path}, continuing exactly where it stops. Reply with that line only.` };
}

/**
 * lead + filler + the target file up to (not including) the target line, ending with a newline so the model's
 * first line is its prediction. When the file's beginning alone overflows the budget, its top is cut instead.
 */
export function fitCodeContext(files: readonly CodeFile[], options: GeneratorOptions, spec: CodeContextSpec): CodeContext {
  const query = completionQuery(spec.target);
  const contextLines = (filler: readonly ContextLine[], n: number, prefixStart: number): ContextLine[] => [
    ...spec.lead,
    ...filler.slice(0, n),
    ...fileBlock(spec.target, prefixStart, spec.targetLine),
  ];
  const render = (filler: readonly ContextLine[], n: number, prefixStart: number): string =>
    renderPrompt(contextLines(filler, n, prefixStart).map((l) => l.text).join('\n'), query, options.style);
  const finish = (filler: readonly ContextLine[], n: number, prefixStart: number, fit: Fit): CodeContext => {
    const lines = contextLines(filler, n, prefixStart);
    const offset = lineOffsetOf(fit.text, lines.map((l) => l.text).join('\n'));
    return {
      prompt: fit.text,
      tokens: fit.tokens,
      fillerLines: n,
      prefixStart,
      contextFiles: [...new Set(lines.map((l) => l.file))],
      segments: segmentsOf(lines, offset),
    };
  };
  const budget = options.targetLength;
  const whole = render([], 0, 0);
  const wholeFit: Fit = { n: 0, text: whole, tokens: options.counter.encode(whole).length };
  if (wholeFit.tokens > budget) {
    const fit = fitToBudget(spec.targetLine, (m) => render([], 0, spec.targetLine - m), options.counter, budget);
    if (!fit) throw new KvlensError(`target length ${budget} is too small for a ${spec.task} prompt`);
    return finish([], 0, spec.targetLine - fit.n, fit);
  }
  const rotationOptions = { ...options, exclude: spec.exclude };
  // A workspace of one file (or two, for cross-file) has nothing else to fill with: the prompt stays short.
  if (rotation(files, rotationOptions).length === 0) return finish([], 0, 0, wholeFit);
  const { filler, fit } = fitFiller(files, rotationOptions, budget, options.counter, (f, n) => render(f, n, 0), spec.task);
  return finish(filler, fit.n, 0, fit);
}

export function generateCompletion(files: readonly CodeFile[], options: GeneratorOptions): Sample {
  requireFiles(files, 'completion');
  // Not keyed by length: a sample index asks for the same line at every length, so only the context varies.
  const rng = Rng.derive(options.seed, 'completion', options.sampleIndex);
  const order = rotation(files, options);
  let target: CodeFile | null = null;
  let candidates: number[] = [];
  for (const file of order) {
    candidates = targetCandidates(file);
    if (candidates.length > 0) {
      target = file;
      break;
    }
  }
  if (!target) throw new KvlensError(`completion: no file in the workspace has a line of code after its first ${MIN_PREFIX_LINES} lines`);
  const targetLine = rng.pick(preferFocusLines(candidates, target.path, (line) => line, options.focusLines));
  const context = fitCodeContext(files, options, { task: 'completion', lead: [], exclude: new Set([target.path]), target, targetLine });
  return {
    id: sampleId('completion', { ...options, depth: null }),
    task: 'completion',
    targetLength: options.targetLength,
    depth: null,
    prompt: context.prompt,
    promptTokens: context.tokens,
    answer: splitLines(target.text)[targetLine].trim(),
    scoring: 'edit-similarity',
    source: { file: target.path, line: targetLine },
    segments: context.segments,
    meta: { fillerLines: context.fillerLines, prefixStart: context.prefixStart, contextFiles: context.contextFiles },
  };
}

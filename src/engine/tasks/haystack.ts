// The common shape of the synthetic-definition tasks (needle, multikey, vartrack): real code with a few
// lines inserted at relative depths, then a query line. One place builds, fits and locates them.
import { KvlensError } from '../errors';
import { composeWithInsertions, fitFiller, lineOffsetOf, segmentsOf, type ContextLine, type Insertion } from './context';
import { renderPrompt, type Query } from './prompt';
import type { CodeFile, GeneratorOptions, Sample, SampleSource } from './types';

export interface HaystackSpec {
  task: string;
  insertions: Insertion[];
  /** Which insertion is the probed site (its depth is the sample's depth and its neighbour the source). */
  probe: number;
  query: Query;
  answer: string;
  meta: Record<string, unknown>;
}

export function sampleId(task: string, options: GeneratorOptions): string {
  const depth = options.depth === null ? '' : `-d${options.depth.toFixed(2)}`;
  return `${task}-L${options.targetLength}${depth}-s${options.sampleIndex}`;
}

export function checkDepth(depth: number | null, task: string): number {
  if (depth === null || !Number.isFinite(depth) || depth < 0 || depth > 1) {
    throw new KvlensError(`${task}: depth must be a number in [0, 1], got ${depth}`);
  }
  return depth;
}

export function requireFiles(files: readonly CodeFile[], task: string): void {
  if (files.length === 0) throw new KvlensError(`${task}: the workspace has no usable code files to build a context from`);
}

/** True if any workspace file already contains `text` (so a synthetic name could be confused with real code). */
export function occursInWorkspace(files: readonly CodeFile[], text: string): boolean {
  return files.some((f) => f.text.includes(text));
}

/** The workspace line next to a boundary: the one after it, or the last one when the boundary is the end. */
function neighbour(context: readonly ContextLine[], boundary: number, n: number): SampleSource | null {
  if (n === 0) return null;
  const line = context[Math.min(boundary, n - 1)];
  return { file: line.file, line: line.line };
}

export function buildHaystackSample(files: readonly CodeFile[], options: GeneratorOptions, spec: HaystackSpec): Sample {
  requireFiles(files, spec.task);
  const { filler, fit } = fitFiller(
    files,
    options,
    options.targetLength,
    options.counter,
    (context, n) => renderPrompt(composeWithInsertions(context, n, spec.insertions).lines.join('\n'), spec.query, options.style),
    spec.task,
  );
  const composed = composeWithInsertions(filler, fit.n, spec.insertions);
  const contextFiles = [...new Set(filler.slice(0, fit.n).map((l) => l.file))];
  const segments = segmentsOf(composed.origins, lineOffsetOf(fit.text, composed.lines.join('\n')));
  return {
    id: sampleId(spec.task, options),
    task: spec.task,
    targetLength: options.targetLength,
    depth: spec.insertions[spec.probe].rel,
    prompt: fit.text,
    promptTokens: fit.tokens,
    answer: spec.answer,
    scoring: 'exact',
    source: neighbour(filler, composed.boundary[spec.probe], fit.n),
    segments,
    meta: {
      ...spec.meta,
      contextLines: fit.n,
      insertedAtLine: composed.insertedAt,
      contextFiles,
    },
  };
}

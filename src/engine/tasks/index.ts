// The one entry the bench and the CLI call: a grid of samples (task × length × depth × sample) from the
// scanned workspace, identical for the same files, options and seed.
import { KvlensError, describeError } from '../errors';
import { generateCompletion } from './completion';
import { generateCrossfile } from './crossfile';
import { generateMultikey } from './multikey';
import { generateNeedle } from './needle';
import type { PromptStyle } from './prompt';
import type { CodeFile, FocusLines, GeneratorOptions, Sample, ScoreRule, TokenCounter } from './types';
import { generateVartrack } from './vartrack';

export type { Sample, CodeFile, TokenCounter, GeneratorOptions } from './types';
export type { PromptStyle, FormatChat, ChatMessage } from './prompt';
export { scanWorkspace, type ScanResult, type ScannedFile, type ScanOptions } from './scan';
export { scoreContinuation, scoreBenchmark, scoreSample, type Score } from './scoring';
export { importJsonl, importSamples, parseJsonl, samplesToJsonl, type ImportOptions, type JsonlFormat } from './importJsonl';
export { benchmarkScores, type BenchmarkScore } from './benchmarkScores';
export { LONGBENCH_DATASETS, type LongBenchDataset, type LongBenchCategory } from './longbench';
export { RULER_TASKS } from './ruler';

export interface TaskInfo {
  id: string;
  description: string;
  scoring: ScoreRule;
  /** Whether the task has a depth axis (the grid then spans every requested depth). */
  usesDepth: boolean;
}

type Generator = (files: readonly CodeFile[], options: GeneratorOptions) => Sample;

const GENERATORS: Record<string, Generator> = {
  needle: generateNeedle,
  multikey: generateMultikey,
  vartrack: generateVartrack,
  completion: generateCompletion,
  crossfile: generateCrossfile,
};

export const TASKS: readonly TaskInfo[] = [
  {
    id: 'needle',
    description: 'Needle retrieval: one `const NAME = VALUE;` line hidden at a chosen depth in your code; the prompt ends with `// NAME =`.',
    scoring: 'exact',
    usesDepth: true,
  },
  {
    id: 'multikey',
    description: 'Multi-key retrieval: several definitions share one name stem and differ by suffix; one of them is asked.',
    scoring: 'exact',
    usesDepth: true,
  },
  {
    id: 'vartrack',
    description: 'Variable tracking: a value passed along a chain of assignments spread through the code; the last variable is asked.',
    scoring: 'exact',
    usesDepth: true,
  },
  {
    id: 'completion',
    description: 'Next-line completion of a real file after other files of the workspace (LCC-style), scored by edit similarity.',
    scoring: 'edit-similarity',
    usesDepth: false,
  },
  {
    id: 'crossfile',
    description: 'Cross-file completion: the next line uses a symbol defined in another file placed at the start of the context (RepoBench-style).',
    scoring: 'edit-similarity',
    usesDepth: false,
  },
];

export interface BuildOptions {
  tasks: readonly string[];
  lengths: readonly number[];
  depths: readonly number[];
  samplesPerCell: number;
  seed: number;
  counter: TokenCounter;
  style?: PromptStyle;
  /**
   * Workspace-relative paths to profile: they open every sample's context (before the rest of the workspace)
   * and completion/cross-file targets are taken from them when they have any.
   */
  focus?: readonly string[];
  /** Profile Selection: the selected lines of the first focus file; completion and cross-file targets come from them. */
  focusLines?: FocusLines;
  /** Told when a task cannot be built from this workspace and is left out. */
  onLog?: (message: string) => void;
}

function validate(options: BuildOptions): void {
  for (const task of options.tasks) {
    if (!GENERATORS[task]) throw new KvlensError(`unknown task "${task}" (known: ${Object.keys(GENERATORS).join(', ')})`);
  }
  for (const length of options.lengths) {
    if (!Number.isInteger(length) || length < 16) throw new KvlensError(`context length must be an integer >= 16, got ${length}`);
  }
  for (const depth of options.depths) {
    if (!Number.isFinite(depth) || depth < 0 || depth > 1) throw new KvlensError(`depth must be in [0, 1], got ${depth}`);
  }
  if (!Number.isInteger(options.samplesPerCell) || options.samplesPerCell < 1) {
    throw new KvlensError(`samples per cell must be an integer >= 1, got ${options.samplesPerCell}`);
  }
  if (!Number.isInteger(options.seed)) throw new KvlensError(`seed must be an integer, got ${options.seed}`);
}

export function buildSamples(files: readonly CodeFile[], options: BuildOptions): Sample[] {
  validate(options);
  if (files.length === 0) throw new KvlensError('the workspace has no usable code files (see the scan log for what was skipped)');
  if (options.focus && options.focus.length > 0) {
    const known = new Set(files.map((f) => f.path));
    const missing = options.focus.filter((path) => !known.has(path));
    if (missing.length === options.focus.length) {
      throw new KvlensError(`none of the focus files is a usable code file of the workspace: ${missing.join(', ')}`);
    }
    if (missing.length > 0) options.onLog?.(`focus files not usable, ignored: ${missing.join(', ')}`);
  }
  const samples: Sample[] = [];
  const failures: string[] = [];
  for (const task of options.tasks) {
    const info = TASKS.find((t) => t.id === task);
    const depths: Array<number | null> = info?.usesDepth ? [...options.depths] : [null];
    if (depths.length === 0) depths.push(null);
    const taskSamples: Sample[] = [];
    try {
      for (const targetLength of options.lengths) {
        for (const depth of depths) {
          for (let sampleIndex = 0; sampleIndex < options.samplesPerCell; sampleIndex++) {
            taskSamples.push(
              GENERATORS[task](files, {
                targetLength,
                depth: info?.usesDepth ? (depth ?? 0.5) : null,
                sampleIndex,
                samplesPerCell: options.samplesPerCell,
                seed: options.seed,
                counter: options.counter,
                style: options.style,
                focus: options.focus,
                focusLines: options.focusLines,
              }),
            );
          }
        }
      }
    } catch (error) {
      if (!(error instanceof KvlensError)) throw error;
      // One task this workspace cannot feed (e.g. no cross-file uses) should not sink the others.
      const message = `task ${task} left out: ${describeError(error)}`;
      failures.push(message);
      options.onLog?.(message);
      continue;
    }
    samples.push(...taskSamples);
  }
  if (samples.length === 0) throw new KvlensError(`no samples could be built: ${failures.join('; ')}`);
  return samples;
}

import type { ScoreRule, SampleSource } from '../bench/results';
import type { PromptStyle } from './prompt';

export type { ScoreRule, SampleSource };

/** Counts tokens exactly as the model will be fed them (special tokens such as BOS included). */
export interface TokenCounter {
  encode(text: string): number[];
  /** Text of token ids, special tokens skipped; needed to cut a prompt at token boundaries (LongBench). */
  decode?(ids: number[]): string;
}

/** One long-context query with its expected answer. */
export interface Sample {
  id: string;
  task: string;
  /** The context length (tokens) the sample was built for. */
  targetLength: number;
  /** Relative depth in [0, 1] of the probed line, or null for tasks without one. */
  depth: number | null;
  prompt: string;
  /** Token count of `prompt` as measured by the counter it was built with (0 when unknown). */
  promptTokens: number;
  answer: string;
  scoring: ScoreRule;
  /** Where in the workspace the profiled site is (0-based line), or null for imported samples. */
  source: SampleSource | null;
  /** Runs of workspace lines in the prompt (for mapping retained tokens back to code); absent for imports. */
  segments?: PromptSegment[];
  /** For benchmark metrics (LongBench, RULER): what the metric compares against and how. */
  benchmark?: BenchmarkScoring;
  /** Decoding as the benchmark prescribes; absent for kvlens' own tasks, which stop when the answer is complete. */
  generation?: Generation;
  meta: Record<string, unknown>;
}

/** What an imported row needs to become a sample: the model's token counter, the largest context, its chat template. */
export interface SampleOptions {
  /** Measures prompts (promptTokens) and, with maxTokens, cuts long ones. */
  counter?: TokenCounter;
  /** The largest context of the run: longer prompts are cut the way their benchmark cuts them, or refused. */
  maxTokens?: number;
  style?: PromptStyle;
}

export interface BenchmarkScoring {
  /** Every gold answer; the score is the max over them (LongBench) or taken over all of them (RULER). */
  references: string[];
  /** LongBench's all_classes, for classification_score. */
  classes?: string[];
  /** Score only the first line of the prediction (LongBench's trec, triviaqa, samsum, lsht). */
  firstLineOnly?: boolean;
  /** The group the benchmark reports the sample under (LongBench-E's length groups). */
  group?: string;
}

export interface Generation {
  maxNewTokens: number;
  /** Stop at the first newline after some text (LongBench's samsum, which adds "\n" to its EOS tokens). */
  stopAtNewline: boolean;
}

/** Prompt lines [promptLine, promptLine + lineCount) are lines [startLine, startLine + lineCount) of file (0-based). */
export interface PromptSegment {
  promptLine: number;
  file: string;
  startLine: number;
  lineCount: number;
}

/** A code file as the generators see it (a subset of what the scanner returns). */
export interface CodeFile {
  path: string;
  language: string;
  text: string;
}

export interface GeneratorOptions {
  targetLength: number;
  /** Null for tasks without a depth axis. */
  depth: number | null;
  sampleIndex: number;
  samplesPerCell: number;
  seed: number;
  counter: TokenCounter;
  style?: PromptStyle;
  /** Workspace paths that lead every context and hold the completion targets (see BuildOptions.focus). */
  focus?: readonly string[];
  /** A line range of one focus file (0-based, inclusive): completion and cross-file targets come from it when it has any. */
  focusLines?: FocusLines;
}

export interface FocusLines {
  file: string;
  startLine: number;
  endLine: number;
}

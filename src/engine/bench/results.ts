// The results file every consumer reads (CLI summaries, exports, the webview, CodeLens).
// Bump RESULTS_SCHEMA_VERSION on any incompatible change and keep schema/results.schema.json in step.
import type { KvDtype } from '../kv/kv-dtype';

export const RESULTS_SCHEMA_VERSION = 3;

/**
 * How a continuation is scored: kvlens' own rules (`exact`, `edit-similarity`), LongBench's metrics under the
 * names of its metrics.py functions, RULER's two string-match metrics and LongBench v2's multiple-choice
 * judgement (`choice_accuracy`: the letter pred.py's extract_answer finds equals the answer).
 */
export type ScoreRule =
  | 'exact'
  | 'edit-similarity'
  | 'qa_f1_score'
  | 'qa_f1_zh_score'
  | 'rouge_score'
  | 'rouge_zh_score'
  | 'classification_score'
  | 'retrieval_score'
  | 'retrieval_zh_score'
  | 'count_score'
  | 'code_sim_score'
  | 'string_match_all'
  | 'string_match_part'
  | 'choice_accuracy';

export const SCORE_RULES: readonly ScoreRule[] = [
  'exact',
  'edit-similarity',
  'qa_f1_score',
  'qa_f1_zh_score',
  'rouge_score',
  'rouge_zh_score',
  'classification_score',
  'retrieval_score',
  'retrieval_zh_score',
  'count_score',
  'code_sim_score',
  'string_match_all',
  'string_match_part',
  'choice_accuracy',
];

export interface ResultRow {
  /** Label of the model the row ran on (config.models[].label): a sweep may hold several models. */
  model: string;
  task: string;
  sampleId: string;
  /** Prompt length in tokens (after prompt compression for methods that change the prompt). */
  length: number;
  /** Target context length the sample was built for (e.g. 1024). */
  targetLength: number;
  /** Relative needle depth in [0, 1], or null for tasks without one. */
  depth: number | null;
  method: string;
  family: string;
  score: number;
  exact: boolean;
  /** The part of the prediction that was scored (e.g. its first line). */
  answer: string;
  expected: string;
  /** The raw generated text, special tokens removed (null only in rows migrated from schemaVersion 1). */
  prediction: string | null;
  /** The ScoreRule that produced `score` (null only in rows migrated from schemaVersion 1). */
  metric: ScoreRule | null;
  /** The group a benchmark reports the row under (LongBench-E's 0-4k / 4-8k / 8k+, LongBench v2's `hard/long`), else null. */
  group: string | null;
  /** Tokens held after compression, summed over layers and KV heads, and the per-head average. */
  tokensKept: number;
  tokensKeptPerHead: number;
  /** Tokens the full cache would hold for this prompt (per head). */
  tokensFull: number;
  /** Bytes the compressed cache holds, computed from its arrays, and what `full` holds for the same prompt. */
  bytesHeld: number;
  bytesFull: number;
  /** For methods with an off-device store (InfLLM): bytes attention reads per step; else equal to bytesHeld. */
  bytesActive: number;
  compressionRatio: number;
  /** True when the engine checked that the cache shrank to what the method promised. */
  verified: boolean;
  note: string | null;
  prefillMs: number;
  compressMs: number;
  decodeTokensPerSecond: number;
  peakRssBytes: number;
  /** Where the sample came from, for CodeLens and the retained-context map. */
  source: SampleSource | null;
  error: string | null;
  /**
   * Bytes a recurrent model (Mamba, Mamba-2, RWKV, RecurrentGemma) carries from one token to the next (conv and
   * scan state, RWKV's shift and time-mix state, RecurrentGemma's local-attention ring buffer, summed over
   * layers): the same at any context length. Such rows have family
   * `recurrent` and method `full`, and their bytesHeld is this state. Absent in rows of attention models,
   * whose carried memory is the KV cache (bytesHeld).
   */
  recurrentStateBytes?: number;
  /** Source lines the compressed cache still held right after compression (absent when the sample has no source map). */
  retained?: RetainedContext[];
}

/** Line ranges (0-based, inclusive) of one workspace file whose tokens a method kept. */
export interface RetainedContext {
  method: string;
  file: string;
  keptLines: [number, number][];
}

export interface SampleSource {
  /** Workspace-relative file path and 0-based line of the profiled site (needle insertion point or completion target). */
  file: string;
  line: number;
}

/** What a sweep runs: shared by a run request, a saved run's snapshot and the extension's settings. */
export interface SweepSpec {
  methods: string[];
  tasks: string[];
  lengths: number[];
  depths: number[];
  samples: number;
  seed: number;
}

export interface RunConfigSnapshot extends SweepSpec {
  kvlensVersion: string;
  /**
   * `weights`: how the engine held them; `kvDtype`: what full-precision caches held keys and values in
   * (both absent in files written before they existed; such caches were fp32).
   */
  model: ModelSnapshot;
  /**
   * Every model of the sweep, in the order they ran (the first is `model`), each with the label its rows carry
   * and the methods it ran: a recurrent model runs only `full`.
   */
  models: (ModelSnapshot & { label: string; methods: string[] })[];
  /** The first model's tokenizer: it built the samples' text, which every model then tokenizes itself. */
  tokenizer: string;
  executionProvider: string;
  shard: { index: number; count: number } | null;
  workspace: string;
  machine: { platform: string; arch: string; cpus: number; cpuModel: string; totalMemoryBytes: number; node: string };
}

export interface ModelSnapshot {
  path: string;
  contentHash: string;
  architecture: string;
  dtype: string;
  parameters: number;
  weights?: string;
  kvDtype?: KvDtype;
}

export type ResultsStatus = 'running' | 'complete' | 'cancelled' | 'failed';

export const RESULTS_STATUSES: readonly ResultsStatus[] = ['running', 'complete', 'cancelled', 'failed'];

export interface ResultsFile {
  schemaVersion: typeof RESULTS_SCHEMA_VERSION;
  createdAt: string;
  /**
   * `running` while the run goes on (saved after every sample), so a file left by a killed process never reads
   * as complete; `cancelled` after SIGINT, SIGTERM, SIGHUP or Cancel Run, with every completed row kept.
   */
  status: ResultsStatus;
  config: RunConfigSnapshot;
  rows: ResultRow[];
  /** Samples this run (shard) has and how many had finished when the file was written (absent in older files). */
  progress?: { samples: number; samplesDone: number };
  /** Files the workspace scan skipped, by reason. */
  scan: { filesUsed: number; skipped: Record<string, number> } | null;
  log: string[];
}

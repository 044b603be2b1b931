// How a model's continuation is scored against the expected answer: kvlens' own exact and edit-similarity
// rules, and the published benchmarks' metrics for imported LongBench (v1, -E, v2) and RULER samples.
import type { ScoreRule } from '../bench/results';
import type { Sample } from './types';
import { firstLine } from './longbench';
import {
  classificationScore,
  codeSimLine,
  codeSimScore,
  countScore,
  qaF1Score,
  qaF1ZhScore,
  retrievalScore,
  retrievalZhScore,
  rougeScore,
  rougeZhScore,
} from './longbenchMetrics';
import { rulerPostprocess, stringMatchAll, stringMatchPart } from './ruler';
import { extractLongBenchV2Answer } from './longbenchV2';

export interface Score {
  /** 1/0 for exact, [0, 1] for edit similarity. */
  score: number;
  exact: boolean;
  /** The part of the continuation that was compared. */
  answer: string;
}

/** Levenshtein distance over code points, two rows of memory. */
export function levenshtein(a: string, b: string): number {
  const x = Array.from(a);
  const y = Array.from(b);
  if (x.length === 0) return y.length;
  if (y.length === 0) return x.length;
  let previous = Array.from({ length: y.length + 1 }, (_, j) => j);
  let current = new Array<number>(y.length + 1);
  for (let i = 1; i <= x.length; i++) {
    current[0] = i;
    for (let j = 1; j <= y.length; j++) {
      const substitution = previous[j - 1] + (x[i - 1] === y[j - 1] ? 0 : 1);
      current[j] = Math.min(previous[j] + 1, current[j - 1] + 1, substitution);
    }
    [previous, current] = [current, previous];
  }
  return previous[y.length];
}

/** 1 − distance / longer length; two empty strings are identical. */
export function editSimilarity(a: string, b: string): number {
  const longer = Math.max(Array.from(a).length, Array.from(b).length);
  if (longer === 0) return 1;
  return 1 - levenshtein(a, b) / longer;
}

export function firstNonBlankLine(text: string): string {
  for (const line of text.split(/\r?\n/)) if (line.trim() !== '') return line.trim();
  return '';
}

/** Lower case, punctuation and articles dropped, whitespace collapsed (SQuAD-style normalisation). */
export function normalizeAnswer(text: string): string {
  return text
    .toLowerCase()
    .replace(/[\p{P}\p{S}]/gu, ' ')
    .replace(/\b(a|an|the)\b/g, ' ')
    .replace(/\s+/g, ' ')
    .trim();
}

const INTEGER = /^\d+$/;

function stripZeros(digits: string): string {
  return digits.replace(/^0+(?=\d)/, '');
}

/**
 * exact: an integer answer is compared, as a number, with the first integer in the continuation (a model
 * that writes ` 48213;` is right); a text answer with the normalised first non-blank line. `alternatives` are other
 * accepted answers (e.g. LongBench's answer lists).
 * edit-similarity: the first non-blank line of the continuation against the expected line, both trimmed.
 */
export function scoreContinuation(rule: ScoreRule, expected: string, continuation: string, alternatives: readonly string[] = []): Score {
  if (rule === 'edit-similarity') {
    const answer = firstNonBlankLine(continuation);
    const target = expected.trim();
    const candidates = [target, ...alternatives.map((a) => a.trim())];
    const score = Math.max(...candidates.map((c) => editSimilarity(answer, c)));
    return { score, exact: candidates.includes(answer), answer };
  }
  const accepted = [expected, ...alternatives].map((a) => a.trim());
  if (accepted.every((a) => INTEGER.test(a))) {
    const answer = /\d+/.exec(continuation)?.[0] ?? '';
    // Compared as numbers, like the default model's own probe evaluation: "007" answers 7.
    const exact = answer !== '' && accepted.some((a) => stripZeros(a) === stripZeros(answer));
    return { score: exact ? 1 : 0, exact, answer };
  }
  const answer = firstNonBlankLine(continuation);
  const normalized = normalizeAnswer(answer);
  const exact = accepted.some((a) => normalizeAnswer(a) === normalized);
  return { score: exact ? 1 : 0, exact, answer };
}

const LONGBENCH_METRICS: Partial<Record<ScoreRule, (prediction: string, truth: string, classes: readonly string[]) => number>> = {
  qa_f1_score: qaF1Score,
  qa_f1_zh_score: (p, t) => qaF1ZhScore(p, t),
  rouge_score: rougeScore,
  rouge_zh_score: (p, t) => rougeZhScore(p, t),
  classification_score: classificationScore,
  retrieval_score: retrievalScore,
  retrieval_zh_score: retrievalZhScore,
  count_score: countScore,
  code_sim_score: codeSimScore,
};

/**
 * A benchmark metric on one prediction, as the benchmark's own evaluation computes it per row:
 * LongBench: the first line only where eval.py says so, then the max over the gold answers (starting from 0);
 * RULER: evaluate.py's cleaning, then string_match_all / string_match_part over the outputs;
 * LongBench v2: the letter extract_answer finds, right when it is the reference letter.
 * `answer` is the text the metric looked at (for LongBench v2 the extracted letter, "" when none was found).
 */
export function scoreBenchmark(rule: ScoreRule, prediction: string, scoring: { references: readonly string[]; classes?: readonly string[]; firstLineOnly?: boolean }): Score {
  if (rule === 'string_match_all' || rule === 'string_match_part') {
    const answer = rulerPostprocess(prediction);
    const score = (rule === 'string_match_all' ? stringMatchAll : stringMatchPart)(answer, scoring.references);
    return { score, exact: score === 1, answer };
  }
  if (rule === 'choice_accuracy') {
    const letter = extractLongBenchV2Answer(prediction);
    const score = letter !== null && letter === scoring.references[0] ? 1 : 0;
    return { score, exact: score === 1, answer: letter ?? '' };
  }
  const metric = LONGBENCH_METRICS[rule];
  if (!metric) throw new Error(`${rule} is not a benchmark metric`);
  const compared = scoring.firstLineOnly ? firstLine(prediction) : prediction;
  let score = 0;
  for (const truth of scoring.references) score = Math.max(score, metric(compared, truth, scoring.classes ?? []));
  return { score, exact: score === 1, answer: rule === 'code_sim_score' ? codeSimLine(compared) : compared };
}

/** Scores a sample's prediction by its own rule: a benchmark metric when the sample carries one, else kvlens' rules. */
export function scoreSample(sample: Pick<Sample, 'scoring' | 'answer' | 'benchmark' | 'meta'>, prediction: string): Score {
  if (sample.benchmark && sample.scoring !== 'exact' && sample.scoring !== 'edit-similarity') {
    return scoreBenchmark(sample.scoring, prediction, sample.benchmark);
  }
  const alternatives = Array.isArray(sample.meta.alternatives) ? (sample.meta.alternatives as string[]) : [];
  return scoreContinuation(sample.scoring, sample.answer, prediction, alternatives);
}

// LongBench v1's metrics (its metrics.py), so an imported LongBench set is scored the way the LongBench
// leaderboard and the KV-cache papers score it: token F1, ROUGE-L, classification, retrieval, count and code
// similarity, each with the Python string semantics the originals have. Chinese words come from
// Intl.Segmenter (ICU's dictionary segmenter) where LongBench uses jieba, so the zh variants can differ from
// LongBench on the odd word boundary.
import { rougeL } from './rouge';
import { ASCII_PUNCTUATION, codePoints, pyFindDigitRuns, pyRoundHalfEven, pySplit } from './pyText';

/** Splits Chinese (or mixed) text into words; every piece of the text, spaces and punctuation too, in order. */
export type WordSegmenter = (text: string) => string[];

let zhSegmenter: Intl.Segmenter | null = null;

/** Word segmentation with ICU's Chinese dictionary, through Node's Intl.Segmenter. */
export const segmentChinese: WordSegmenter = (text) => {
  zhSegmenter ??= new Intl.Segmenter('zh', { granularity: 'word' });
  return Array.from(zhSegmenter.segment(text), (s) => s.segment);
};

const ASCII_PUNCTUATION_SET = new Set(ASCII_PUNCTUATION);
const ZH_PUNCTUATION_SET = new Set([
  ...ASCII_PUNCTUATION,
  ...'！？｡。＂＃＄％＆＇（）＊＋，－／：；＜＝＞＠［＼］＾＿｀｛｜｝～｟｠｢｣､、〃》「」『』【】〔〕〖〗〘〙〚〛〜〝〞〟〰〾〿–—‘’‛“”„‟…‧﹏.',
]);

/** Python's re \b(a|an|the)\b on a str: word characters are Unicode letters, digits and "_". */
const ARTICLES = /(?<![\p{L}\p{N}_])(?:a|an|the)(?![\p{L}\p{N}_])/gu;

/** normalize_answer: lower case, ASCII punctuation removed, articles removed, whitespace collapsed. */
export function normalizeAnswer(text: string): string {
  const lowered = text.toLowerCase();
  const noPunctuation = Array.from(lowered)
    .filter((ch) => !ASCII_PUNCTUATION_SET.has(ch))
    .join('');
  return pySplit(noPunctuation.replace(ARTICLES, ' ')).join(' ');
}

/** normalize_zh_answer: lower case, ASCII and Chinese punctuation removed, all whitespace removed. */
export function normalizeZhAnswer(text: string): string {
  const noPunctuation = Array.from(text.toLowerCase())
    .filter((ch) => !ZH_PUNCTUATION_SET.has(ch))
    .join('');
  return pySplit(noPunctuation).join('');
}

/** f1_score over token lists: multiset overlap, precision against the prediction, recall against the truth. */
export function tokenF1(prediction: readonly string[], truth: readonly string[]): number {
  const counts = new Map<string, number>();
  for (const token of truth) counts.set(token, (counts.get(token) ?? 0) + 1);
  let same = 0;
  for (const token of prediction) {
    const left = counts.get(token) ?? 0;
    if (left > 0) {
      same++;
      counts.set(token, left - 1);
    }
  }
  if (same === 0) return 0;
  const precision = (1.0 * same) / prediction.length;
  const recall = (1.0 * same) / truth.length;
  return (2 * precision * recall) / (precision + recall);
}

export function qaF1Score(prediction: string, truth: string): number {
  return tokenF1(pySplit(normalizeAnswer(prediction)), pySplit(normalizeAnswer(truth)));
}

export function qaF1ZhScore(prediction: string, truth: string, segment: WordSegmenter = segmentChinese): number {
  const tokens = (text: string) => segment(text).map(normalizeZhAnswer).filter((t) => t.length > 0);
  return tokenF1(tokens(prediction), tokens(truth));
}

/** rouge_score: ROUGE-L F of the `rouge` package; 0 where the package raises (an empty side). */
export function rougeScore(prediction: string, truth: string): number {
  return rougeL(prediction, truth)?.f ?? 0;
}

/** rouge_zh_score: both sides segmented into words joined by spaces, then rouge_score. */
export function rougeZhScore(prediction: string, truth: string, segment: WordSegmenter = segmentChinese): number {
  return rougeScore(segment(prediction).join(' '), segment(truth).join(' '));
}

/**
 * classification_score: the classes named in the prediction; a matched class that is part of the truth (but not
 * the truth) is dropped, with Python's skip-the-next-element quirk of removing from a list while iterating it;
 * the score is 1 / (classes left) when the truth is among them.
 */
export function classificationScore(prediction: string, truth: string, allClasses: readonly string[]): number {
  const matches = allClasses.filter((name) => prediction.includes(name));
  for (let i = 0; i < matches.length; i++) {
    const term = matches[i];
    if (truth.includes(term) && term !== truth) matches.splice(matches.indexOf(term), 1);
  }
  return matches.includes(truth) ? 1.0 / matches.length : 0.0;
}

/** The share of the prediction's digit runs that equal `target`; 0 when it has none. */
function shareOfNumbers(prediction: string, target: string): number {
  const numbers = pyFindDigitRuns(prediction);
  if (numbers.length === 0) return 0.0;
  return numbers.filter((n) => n === target).length / numbers.length;
}

export function countScore(prediction: string, truth: string): number {
  return shareOfNumbers(prediction, truth);
}

/** retrieval_score: the paragraph number of "Paragraph N" in the truth against the prediction's numbers. */
export function retrievalScore(prediction: string, truth: string): number {
  const id = /Paragraph (\p{Nd}+)/u.exec(truth)?.[1];
  return id === undefined ? 0 : shareOfNumbers(prediction, id);
}

/** retrieval_zh_score: as retrievalScore with "段落N". */
export function retrievalZhScore(prediction: string, truth: string): number {
  const id = /段落(\p{Nd}+)/u.exec(truth)?.[1];
  return id === undefined ? 0 : shareOfNumbers(prediction, id);
}

/** Longest common subsequence length over code points, two rows of memory. */
function lcsLength(a: readonly string[], b: readonly string[]): number {
  let previous = new Int32Array(b.length + 1);
  let current = new Int32Array(b.length + 1);
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      current[j] = a[i - 1] === b[j - 1] ? previous[j - 1] + 1 : Math.max(previous[j], current[j - 1]);
    }
    [previous, current] = [current, previous];
  }
  return previous[b.length];
}

/**
 * fuzz.ratio as thefuzz computes it over rapidfuzz: the normalised Indel similarity × 100 (Indel distance =
 * insertions + deletions = |a| + |b| − 2·LCS; two empty strings are identical), rounded half to even to an integer.
 */
export function fuzzRatio(a: string, b: string): number {
  const x = codePoints(a);
  const y = codePoints(b);
  const maximum = x.length + y.length;
  const distance = maximum - 2 * lcsLength(x, y);
  const normalizedDistance = maximum ? distance / maximum : 0;
  return pyRoundHalfEven((1.0 - normalizedDistance) * 100);
}

/** The line code_sim_score compares: the first line (leading newlines dropped) with none of ` # //, else "". */
export function codeSimLine(prediction: string): string {
  for (const line of prediction.replace(/^\n+/, '').split('\n')) {
    if (!line.includes('`') && !line.includes('#') && !line.includes('//')) return line;
  }
  return '';
}

export function codeSimScore(prediction: string, truth: string): number {
  return fuzzRatio(codeSimLine(prediction), truth) / 100;
}

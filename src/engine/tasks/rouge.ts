// ROUGE-L F as the Python `rouge` package (pltrdy/rouge 1.0.x, the one LongBench calls) computes it, so
// summarisation scores match LongBench's: sentences split on ".", words on single spaces, case kept, the
// summary-level union LCS counted over distinct words (the package's default `exclusive=True`), and its 1e-8
// in the F denominator.
import { pySplit } from './pyText';

/** The package's sentence split: on every ".", empty pieces dropped, whitespace inside each piece collapsed. */
export function rougeSentences(text: string): string[] {
  return text
    .split('.')
    .filter((piece) => piece.length > 0)
    .map((piece) => pySplit(piece).join(' '));
}

function words(sentence: string): string[] {
  return sentence.split(' ');
}

/** The LCS table of x and y, (n+1) × (m+1), row-major. */
function lcsTable(x: readonly string[], y: readonly string[]): Int32Array {
  const n = x.length;
  const m = y.length;
  const table = new Int32Array((n + 1) * (m + 1));
  for (let i = 1; i <= n; i++) {
    for (let j = 1; j <= m; j++) {
      table[i * (m + 1) + j] =
        x[i - 1] === y[j - 1] ? table[(i - 1) * (m + 1) + j - 1] + 1 : Math.max(table[(i - 1) * (m + 1) + j], table[i * (m + 1) + j - 1]);
    }
  }
  return table;
}

/**
 * The words of one longest common subsequence of x and y, walked back from the end the way the package does:
 * a match is taken, otherwise it moves up only when the cell above is strictly larger than the one to the left.
 */
export function reconstructLcs(x: readonly string[], y: readonly string[]): string[] {
  const m = y.length;
  const table = lcsTable(x, y);
  const out: string[] = [];
  let i = x.length;
  let j = m;
  while (i > 0 && j > 0) {
    if (x[i - 1] === y[j - 1]) {
      out.push(x[i - 1]);
      i--;
      j--;
    } else if (table[(i - 1) * (m + 1) + j] > table[i * (m + 1) + j - 1]) {
      i--;
    } else {
      j--;
    }
  }
  return out.reverse();
}

export interface RougeL {
  f: number;
  p: number;
  r: number;
}

/**
 * ROUGE-L (summary level) of a hypothesis against a reference, or null where the package raises (a hypothesis
 * or reference with no sentence: empty, or nothing but dots), which LongBench's rouge_score turns into 0.
 */
export function rougeL(hypothesis: string, reference: string): RougeL | null {
  const hyp = rougeSentences(hypothesis);
  const ref = rougeSentences(reference);
  if (hyp.length === 0 || ref.length === 0) return null;
  const m = new Set(ref.flatMap(words)).size;
  const n = new Set(hyp.flatMap(words)).size;
  const hypWords = hyp.map(words);
  // The union of LCS words over every (reference sentence, hypothesis sentence) pair; as a set, its size is the
  // sum of what each reference sentence adds.
  const union = new Set<string>();
  for (const refSentence of ref) {
    const refWords = words(refSentence);
    for (const evalWords of hypWords) for (const word of reconstructLcs(refWords, evalWords)) union.add(word);
  }
  const llcs = union.size;
  const r = llcs / m;
  const p = llcs / n;
  const f = 2.0 * ((p * r) / (p + r + 1e-8));
  return { f, p, r };
}

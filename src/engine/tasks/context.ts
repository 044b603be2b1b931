// Shared by every generator: real code lines with their origin, the rotation that picks which files a sample
// reads, and the search that cuts a context at a line boundary so the whole prompt fits a token budget.
import { KvlensError } from '../errors';
import { Rng } from './random';
import type { CodeFile, FocusLines, PromptSegment, TokenCounter } from './types';

export interface ContextLine {
  text: string;
  file: string;
  /** 0-based line in `file`; the `// file:` header carries the file's first line (0). */
  line: number;
  header: boolean;
}

export function fileHeader(file: CodeFile): string {
  return `// file: ${file.path}`;
}

/** Lines of a file without the empty piece after a final newline. */
export function splitLines(text: string): string[] {
  const lines = text.split('\n');
  if (lines.length > 1 && lines[lines.length - 1] === '') lines.pop();
  return lines;
}

/** A file as it appears in a context: its header line, then lines [from, to). */
export function fileBlock(file: CodeFile, from = 0, to?: number): ContextLine[] {
  const lines = splitLines(file.text);
  const end = Math.min(to ?? lines.length, lines.length);
  const out: ContextLine[] = [{ text: fileHeader(file), file: file.path, line: from, header: true }];
  for (let i = from; i < end; i++) out.push({ text: lines[i], file: file.path, line: i, header: false });
  return out;
}

export interface RotationOptions {
  seed: number;
  sampleIndex: number;
  samplesPerCell: number;
  /** Paths a sample must not take as filler (e.g. the file being completed). */
  exclude?: ReadonlySet<string>;
  /** Paths that lead every sample's reading order (the files a user asked to profile), in this order. */
  focus?: readonly string[];
}

function rotate<T>(items: readonly T[], sampleIndex: number, samplesPerCell: number): T[] {
  if (items.length === 0) return [];
  const per = Math.max(1, samplesPerCell);
  const start = Math.floor(((sampleIndex % per) * items.length) / per) + Math.floor(sampleIndex / per);
  const out: T[] = [];
  for (let i = 0; i < items.length; i++) out.push(items[(start + i) % items.length]);
  return out;
}

/**
 * The order in which a sample reads the workspace: a per-seed shuffle of the files, entered at a point that
 * moves with the sample index so the samples of one cell read different code. Lengths and depths share it, so
 * the same sample index at 1k and 4k starts with the same code. Focus files come first, rotated the same way.
 */
export function rotation(files: readonly CodeFile[], options: RotationOptions): CodeFile[] {
  const usable = files.filter((f) => !options.exclude?.has(f.path));
  const focusRank = new Map((options.focus ?? []).map((path, i) => [path, i]));
  const focused = usable.filter((f) => focusRank.has(f.path)).sort((a, b) => focusRank.get(a.path)! - focusRank.get(b.path)!);
  const rest = Rng.derive(options.seed, 'file-order').shuffle(usable.filter((f) => !focusRank.has(f.path)));
  return [
    ...rotate(focused, options.sampleIndex, options.samplesPerCell),
    ...rotate(rest, options.sampleIndex, options.samplesPerCell),
  ];
}

/**
 * Filler lines from the rotation until at least `minChars` characters are gathered. A workspace smaller than
 * the target is read again from its first file, so a small project still fills long contexts.
 */
export function fillerLines(files: readonly CodeFile[], options: RotationOptions, minChars: number): ContextLine[] {
  const order = rotation(files, options);
  const out: ContextLine[] = [];
  if (order.length === 0) return out;
  let chars = 0;
  for (let i = 0; chars < minChars; i++) {
    const block = fileBlock(order[i % order.length]);
    for (const line of block) {
      out.push(line);
      chars += line.text.length + 1;
    }
  }
  return out;
}

export interface Insertion {
  /** Relative position in [0, 1] among the context lines (0: before the first, 1: after the last). */
  rel: number;
  text: string;
}

export interface Composed {
  lines: string[];
  /** Index in `lines` of each insertion, in the order given. */
  insertedAt: number[];
  /** Index in the context (0..n) before which each insertion went. */
  boundary: number[];
  /** Where each line came from (null for inserted lines). */
  origins: Array<ContextLine | null>;
}

/**
 * Rounds halves to the even neighbour, as Python's round() does: the default model's probe builder places
 * the needle at round(depth * n), and both sides must agree on the line.
 */
export function roundHalfEven(x: number): number {
  const floor = Math.floor(x);
  const diff = x - floor;
  if (diff > 0.5) return floor + 1;
  if (diff < 0.5) return floor;
  return floor % 2 === 0 ? floor : floor + 1;
}

/** Puts each insertion at the line boundary nearest its relative position; ties keep the given order. */
export function composeWithInsertions(context: readonly ContextLine[], n: number, insertions: readonly Insertion[]): Composed {
  const boundary = insertions.map((ins) => roundHalfEven(ins.rel * n));
  const byBoundary = new Map<number, number[]>();
  boundary.forEach((b, j) => {
    const list = byBoundary.get(b) ?? [];
    list.push(j);
    byBoundary.set(b, list);
  });
  const lines: string[] = [];
  const origins: Array<ContextLine | null> = [];
  const insertedAt = new Array<number>(insertions.length).fill(-1);
  for (let i = 0; i <= n; i++) {
    for (const j of byBoundary.get(i) ?? []) {
      insertedAt[j] = lines.length;
      lines.push(insertions[j].text);
      origins.push(null);
    }
    if (i < n) {
      lines.push(context[i].text);
      origins.push(context[i]);
    }
  }
  return { lines, insertedAt, boundary, origins };
}

export interface Fit {
  n: number;
  text: string;
  tokens: number;
}

/**
 * The largest n in [0, maxN] whose prompt `build(n)` encodes to at most `budget` tokens, assuming token count
 * grows with n. Encoding a long prompt is the cost, so n is guessed from the measured tokens-per-character and
 * refined; a final bisection guarantees the bound. Returns null when even n = 0 does not fit.
 */
export function fitToBudget(maxN: number, build: (n: number) => string, counter: TokenCounter, budget: number): Fit | null {
  const measured = new Map<number, Fit>();
  const measure = (n: number): Fit => {
    let fit = measured.get(n);
    if (!fit) {
      const text = build(n);
      fit = { n, text, tokens: counter.encode(text).length };
      measured.set(n, fit);
    }
    return fit;
  };
  const base = measure(0);
  if (base.tokens > budget) return null;
  if (maxN === 0) return base;
  const baseChars = base.text.length;
  // Smallest n whose prompt has at least `chars` characters (prompt length grows with n).
  const nForChars = (chars: number, lo: number, hi: number): number => {
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (build(mid).length < chars) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
  let lo = base; // fits
  let hi: Fit | null = null; // known not to fit
  let tokensPerChar = 0.3;
  // A short probe calibrates characters per token for this code and tokenizer before the first long encode.
  const probe = measure(nForChars(baseChars + Math.min(4000, budget), 1, maxN));
  if (probe.text.length > baseChars && probe.tokens > base.tokens) tokensPerChar = (probe.tokens - base.tokens) / (probe.text.length - baseChars);
  if (probe.tokens <= budget) lo = probe;
  else hi = probe;
  for (let round = 0; round < 8; round++) {
    const upper = hi ? hi.n - 1 : maxN;
    if (upper <= lo.n) break;
    if (lo.tokens >= budget * 0.97) break;
    // Aim a little under the budget: a guess that fits narrows the search as well as one that overshoots.
    const targetChars = baseChars + (budget * 0.985 - base.tokens) / tokensPerChar;
    let guess = nForChars(targetChars, lo.n + 1, upper);
    if (guess <= lo.n) guess = lo.n + 1;
    const fit = measure(guess);
    const grown = fit.text.length - baseChars;
    if (grown > 0 && fit.tokens > base.tokens) tokensPerChar = (fit.tokens - base.tokens) / grown;
    if (fit.tokens <= budget) lo = fit;
    else hi = fit;
  }
  if (lo.tokens < budget * 0.97) {
    let high = hi ? hi.n : maxN + 1;
    while (high - lo.n > 1) {
      const mid = (lo.n + high) >> 1;
      const fit = measure(mid);
      if (fit.tokens <= budget) lo = fit;
      else high = mid;
    }
  }
  return lo;
}

/**
 * Fits a context read from the rotation: gathers filler generously, fits, and gathers more when the filler
 * ran out before the budget did.
 */
export function fitFiller(
  files: readonly CodeFile[],
  rotationOptions: RotationOptions,
  budget: number,
  counter: TokenCounter,
  build: (filler: readonly ContextLine[], n: number) => string,
  what: string,
): { filler: ContextLine[]; fit: Fit } {
  let minChars = budget * 8;
  for (let attempt = 0; attempt < 6; attempt++) {
    const filler = fillerLines(files, rotationOptions, minChars);
    const fit = fitToBudget(filler.length, (n) => build(filler, n), counter, budget);
    if (!fit) {
      const needed = counter.encode(build(filler, 0)).length;
      throw new KvlensError(`target length ${budget} is too small for a ${what} prompt (its fixed part alone is ${needed} tokens)`);
    }
    if (fit.n < filler.length || filler.length === 0) return { filler, fit };
    minChars *= 4;
  }
  throw new KvlensError(`could not fill ${budget} tokens for a ${what} prompt: the code encodes to unusually many tokens`);
}

/**
 * Runs of consecutive workspace lines in a prompt, so a position in the prompt maps back to a file line.
 * `origins` lists the context's lines in order (null for synthetic ones); the context starts at prompt line
 * `lineOffset` (non-zero when a chat template puts text before it).
 */
export function segmentsOf(origins: ReadonlyArray<ContextLine | null>, lineOffset = 0): PromptSegment[] {
  const out: PromptSegment[] = [];
  origins.forEach((origin, i) => {
    if (!origin || origin.header) return;
    const last = out[out.length - 1];
    const promptLine = i + lineOffset;
    if (last && last.file === origin.file && last.startLine + last.lineCount === origin.line && last.promptLine + last.lineCount === promptLine) {
      last.lineCount++;
    } else {
      out.push({ promptLine, file: origin.file, startLine: origin.line, lineCount: 1 });
    }
  });
  return out;
}

/** The prompt line at which `context` starts inside `prompt` (0 for base prompts, which start with it). */
export function lineOffsetOf(prompt: string, context: string): number {
  const at = prompt.indexOf(context);
  if (at <= 0) return 0;
  let count = 0;
  for (let i = 0; i < at; i++) if (prompt.charCodeAt(i) === 10) count++;
  return count;
}

/** The candidate target lines inside `focusLines` when `file` is its file and any fall inside; otherwise all of them. */
export function preferFocusLines<T>(candidates: T[], file: string, lineOf: (candidate: T) => number, focusLines: FocusLines | undefined): T[] {
  if (!focusLines || focusLines.file !== file) return candidates;
  const inside = candidates.filter((c) => lineOf(c) >= focusLines.startLine && lineOf(c) <= focusLines.endLine);
  return inside.length > 0 ? inside : candidates;
}

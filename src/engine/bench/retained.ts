// The retained-context map: which source lines of the workspace a compressed cache still holds, so the editor can
// show what StreamingLLM or SnapKV threw away in the user's own code.
import type { LayerKV } from '../kv/cache';
import type { PromptSegment } from '../tasks/types';
import type { RetainedContext } from './results';

/** 0-based prompt line of every prompt token, from the newlines in each token's own text. */
export function tokenLines(tokenTexts: readonly string[]): Int32Array {
  const lines = new Int32Array(tokenTexts.length);
  let line = 0;
  tokenTexts.forEach((text, i) => {
    // A token belongs to the line it starts on; the newlines inside it move the following tokens down.
    lines[i] = line;
    for (const ch of text) if (ch === '\n') line++;
  });
  return lines;
}

/** Fraction of (layer, KV head) pairs that still hold each prompt position. */
export function keptFractions(views: readonly LayerKV[], promptLength: number): Float32Array {
  const counts = new Float32Array(promptLength);
  let pairs = 0;
  for (const view of views) {
    pairs += view.numKvHeads;
    for (let i = 0; i < view.positions.length; i++) {
      const position = view.positions[i];
      if (position >= 0 && position < promptLength && (!view.valid || view.valid[i])) counts[position]++;
    }
  }
  return pairs === 0 ? counts : counts.map((c) => c / pairs);
}

/**
 * Source line ranges (inclusive, 0-based, per file) whose prompt tokens are mostly still held (≥ half of the
 * layer/head pairs, averaged over the line's tokens).
 */
export function retainedContext(
  method: string,
  segments: readonly PromptSegment[],
  lineOfToken: Int32Array,
  fractions: Float32Array,
): RetainedContext[] {
  const sums = new Map<number, { kept: number; tokens: number }>();
  for (let t = 0; t < lineOfToken.length && t < fractions.length; t++) {
    const entry = sums.get(lineOfToken[t]) ?? { kept: 0, tokens: 0 };
    entry.kept += fractions[t];
    entry.tokens++;
    sums.set(lineOfToken[t], entry);
  }
  const byFile = new Map<string, [number, number][]>();
  for (const segment of segments) {
    const ranges = byFile.get(segment.file) ?? [];
    for (let i = 0; i < segment.lineCount; i++) {
      const entry = sums.get(segment.promptLine + i);
      if (!entry || entry.kept / entry.tokens < 0.5) continue;
      const line = segment.startLine + i;
      const last = ranges[ranges.length - 1];
      if (last && last[1] === line - 1) last[1] = line;
      else ranges.push([line, line]);
    }
    byFile.set(segment.file, ranges);
  }
  return [...byFile].map(([file, keptLines]) => ({ method, file, keptLines }));
}

// Keeps whole chunks of consecutive tokens (source lines grouped up to `chunk` tokens when the prompt is code, else fixed 20-token chunks)
// ranked by their mean SnapKV score over all KV heads, the same chunks in every head. Liu et al. 2025, "ChunkKV: Semantic-Preserving KV Cache Compression for Efficient Long-Context LLM Inference" (arXiv 2502.00299).
import { SIZE_PARAMS, type MethodDefinition } from '../definition';
import { keptTokens, range, topK, uniformSize } from '../scores';
import { SNAP_PARAMS, checkKernel, observationWindow, snapScores } from '../snap';

// The size promise is exact: chunks are taken best first while they fit, and the first one that does not fit is cut to
// its best tokens to fill the budget.

/** [start, end) chunks covering 0..length: whole lines packed up to `size` tokens (a longer line split), or fixed `size`-token chunks. */
export function chunkBounds(length: number, size: number, lineStarts?: readonly number[]): [number, number][] {
  const chunks: [number, number][] = [];
  const starts = lineStarts?.length ? [...new Set([0, ...lineStarts.filter((s) => s > 0 && s < length)])].sort((a, b) => a - b) : null;
  if (!starts) {
    for (let s = 0; s < length; s += size) chunks.push([s, Math.min(length, s + size)]);
    return chunks;
  }
  const lines = starts.map((s, i) => [s, starts[i + 1] ?? length] as [number, number]);
  let open: [number, number] | null = null;
  for (const [from, to] of lines) {
    if (open && to - open[0] <= size) {
      open[1] = to;
      continue;
    }
    if (open) chunks.push(open);
    // A line longer than a chunk becomes several chunks of its own.
    let at = from;
    while (to - at > size) {
      chunks.push([at, at + size]);
      at += size;
    }
    open = [at, to];
  }
  if (open) chunks.push(open);
  return chunks;
}

/** Per slot, the SnapKV score summed over KV heads, and per chunk the mean of those sums. */
export function chunkScores(tokenScores: Float32Array, heads: number, length: number, chunks: [number, number][]): { token: Float64Array; chunk: Float64Array } {
  const token = new Float64Array(length);
  for (let h = 0; h < heads; h++) for (let s = 0; s < length; s++) token[s] += tokenScores[h * length + s];
  const chunk = Float64Array.from(chunks, ([from, to]) => {
    let sum = 0;
    for (let s = from; s < to; s++) sum += token[s];
    return sum / (to - from);
  });
  return { token, chunk };
}

export const chunkkv: MethodDefinition = {
  name: 'chunkkv',
  family: 'token-dropping',
  phases: ['after-prefill'],
  summary: 'keeps whole chunks (source lines for code) ranked by their mean SnapKV score, the same in every KV head',
  params: [
    ...SIZE_PARAMS,
    ...SNAP_PARAMS,
    { name: 'chunk', default: 20, min: 1, max: 4096, integer: true, description: 'tokens per chunk (the most lines of a chunk when line starts are known)' },
  ],
  paper: {
    authors: 'Liu et al.',
    year: 2025,
    title: 'ChunkKV: Semantic-Preserving KV Cache Compression for Efficient Long-Context LLM Inference',
    arxiv: '2502.00299',
  },
  build(params) {
    checkKernel(params, 'chunkkv');
    return {
      kind: 'selector',
      selector: {
        needs: (promptLength) => ({ windowSums: [observationWindow(promptLength, params)] }),
        size: (promptLength, config) => uniformSize(config, keptTokens(promptLength, params, 'chunkkv')),
        select({ layers, stats, config, lineStarts }) {
          const length = layers[0].length;
          const kept = keptTokens(length, params, 'chunkkv');
          const chunks = chunkBounds(length, params.chunk!, lineStarts);
          return layers.map((_, l) => {
            const { token, chunk } = chunkScores(snapScores(stats?.[l], length, config, params, 'chunkkv'), config.numKvHeads, length, chunks);
            const order = range(0, chunks.length).sort((a, b) => chunk[b] - chunk[a] || b - a);
            const keep: number[] = [];
            for (const c of order) {
              const [from, to] = chunks[c];
              const room = kept - keep.length;
              if (to - from <= room) keep.push(...range(from, to));
              else {
                keep.push(...topK((s) => token[s], range(from, to), room));
                break;
              }
              if (keep.length === kept) break;
            }
            const sorted = keep.sort((a, b) => a - b);
            return range(0, config.numKvHeads).map(() => sorted);
          });
        },
      },
    };
  },
};

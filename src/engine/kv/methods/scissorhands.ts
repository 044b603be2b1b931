// Keeps the tokens that stayed important (attention at least the uniform 1/visible-keys) most often over a history window of recent queries,
// plus the recent tokens, and keeps evicting that way while decoding. Liu et al. 2023, "Scissorhands: Exploiting the Persistence of Importance Hypothesis for LLM KV Cache Compression at Test Time" (arXiv 2305.17118).
import { KvlensError } from '../../errors';
import type { LayerAttention } from '../../model/types';
import { SIZE_PARAMS, type MethodDefinition } from '../definition';
import { keptTokens, missingStats, range, topK, uniformSize } from '../scores';
import { observationWindow } from '../snap';

/**
 * Per KV head, the keys each history query found important: row r of `attention.window` is the query at key index
 * keys − w + r, which sees the keys up to itself; a key is important to it when the query heads of the KV head give it,
 * on average, at least 1 / (keys it sees). Returns [query][kvHead] lists of key indices.
 */
export function importantKeys(attention: LayerAttention, keys: number, numHeads: number, numKvHeads: number): number[][][] {
  const w = attention.windowQueries;
  const probs = attention.window;
  if (!probs || w < 1) throw missingStats('scissorhands', 'attention probabilities of the history window');
  const group = numHeads / numKvHeads;
  return range(0, w).map((r) => {
    const visible = keys - w + r + 1;
    return range(0, numKvHeads).map((g) => {
      const important: number[] = [];
      for (let k = 0; k < visible; k++) {
        let mean = 0;
        for (let h = g * group; h < (g + 1) * group; h++) mean += probs[(h * w + r) * keys + k] / group;
        if (mean >= 1 / visible) important.push(k);
      }
      return important;
    });
  });
}

export const scissorhands: MethodDefinition = {
  name: 'scissorhands',
  family: 'token-dropping',
  phases: ['after-prefill', 'decode'],
  summary: 'keeps the tokens most often important over a history window of queries, plus the recent ones, during prefill and decode',
  params: [
    ...SIZE_PARAMS,
    { name: 'window', default: 32, min: 1, max: 1024, integer: true, description: 'history window: the last queries whose importance is counted (16 or fewer for short prompts); their tokens are kept as the recent ones' },
  ],
  paper: {
    authors: 'Liu, Desai, Liao, Wang, Xie, Xu, Kyrillidis, Shrivastava',
    year: 2023,
    title: 'Scissorhands: Exploiting the Persistence of Importance Hypothesis for LLM KV Cache Compression at Test Time',
    arxiv: '2305.17118',
  },
  build(params) {
    const sizes = (promptLength: number) => {
      const kept = keptTokens(promptLength, params, 'scissorhands');
      const window = observationWindow(promptLength, params);
      if (window >= kept) throw new KvlensError(`scissorhands: keeping ${kept} tokens leaves no room beside the ${window}-token history window`);
      return { kept, window };
    };
    return {
      kind: 'selector',
      selector: {
        needs: (promptLength) => ({ window: observationWindow(promptLength, params) }),
        size: (promptLength, config) => uniformSize(config, sizes(promptLength).kept),
        select({ layers, stats, config }) {
          const length = layers[0].length;
          const { kept, window } = sizes(length);
          return layers.map((_, l) => {
            const attention = stats?.[l];
            if (!attention) throw missingStats('scissorhands', 'attention probabilities of the history window');
            const history = importantKeys({ ...attention, windowQueries: window, window: lastRows(attention, window, length) }, length, config.numHeads, config.numKvHeads);
            return range(0, config.numKvHeads).map((g) => {
              const counts = new Float64Array(length);
              for (const query of history) for (const k of query[g]) counts[k]++;
              return [...topK((s) => counts[s], range(0, length - window), kept - window), ...range(length - window, length)];
            });
          });
        },
        decode: {
          needs: { window: 1 },
          start(l, selected, { layers, stats, config }) {
            const length = layers[0].length;
            const { window } = sizes(length);
            const budget = selected[0].length;
            // Per KV head, the original slot index of every kept token in slot order, and the history as sets of those ids.
            const ids = selected.map((slots) => slots.slice());
            const prefill = stats?.[l] ? importantKeys({ ...stats[l], windowQueries: window, window: lastRows(stats[l], window, length) }, length, config.numHeads, config.numKvHeads) : [];
            const history: Set<number>[][] = prefill.map((query) => query.map((keys) => new Set(keys)));
            let nextId = length;
            return {
              afterStep(cache, attention) {
                if (!attention) throw missingStats('scissorhands', 'attention probabilities of each decode step');
                const keys = cache.length;
                ids.forEach((row) => row.push(nextId));
                nextId++;
                const step = importantKeys(attention, keys, config.numHeads, config.numKvHeads);
                history.push(step[0].map((important, g) => new Set(important.map((k) => ids[g][k]))));
                if (history.length > window) history.shift();
                if (keys <= budget) return null;
                const victims = ids.map((row, g) => {
                  const count = (slot: number) => history.reduce((n, query) => n + (query[g].has(row[slot]) ? 1 : 0), 0);
                  // The least often important token outside the recent ones; ties go to the oldest.
                  let best = 0;
                  let bestCount = Infinity;
                  for (let s = 0; s < keys - window; s++) {
                    const c = count(s);
                    if (c < bestCount) {
                      best = s;
                      bestCount = c;
                    }
                  }
                  return best;
                });
                victims.forEach((slot, g) => ids[g].splice(slot, 1));
                return victims;
              },
            };
          },
        },
      },
    };
  },
};

/** The last `rows` query rows of a window of attention probabilities ([numHeads, rows, keys]). */
function lastRows(attention: LayerAttention, rows: number, keys: number): Float32Array {
  const w = attention.windowQueries;
  if (!attention.window || w < rows) throw missingStats('scissorhands', `attention probabilities of the last ${rows} queries`);
  if (w === rows) return attention.window;
  const heads = attention.window.length / (w * keys);
  const out = new Float32Array(heads * rows * keys);
  for (let h = 0; h < heads; h++) out.set(attention.window.subarray((h * w + w - rows) * keys, (h * w + w) * keys), h * rows * keys);
  return out;
}

// Prunes the key channels the recent queries use least (per KV head, mean squared window query × mean squared key), keeping the rest of
// every key and all values in the cache's dtype. Xu et al. 2024, "ThinK: Thinner Key Cache by Query-Driven Pruning" (arXiv 2407.21118).
import { KvlensError } from '../../errors';
import { missingStats, range, topK } from '../scores';
import type { MethodDefinition } from '../definition';
import { channelCodec } from '../quant/channel-rows';

// ThinK thins each key row, as a quantizer does, so a spec puts it in the quantization slot: it follows a token-dropping
// stage (`snapkv:ratio=0.5+think:ratio=0.5`) and cannot join a quantizer. Channels are scored as kvpress scores them, on the
// keys the layer keeps; keys appended while decoding are thinned to the same channels.

/** [numKvHeads, headDim] channel scores from the last `window` rotated queries ([n, numHeads, d]) and the keys ([slots, kvHeads, d]). */
export function thinkScores(
  queries: Float32Array,
  keys: Float32Array,
  valid: Uint8Array | null,
  shape: { numHeads: number; numKvHeads: number; headDim: number; window: number },
): Float64Array {
  const { numHeads: H, numKvHeads: heads, headDim: d, window } = shape;
  const n = queries.length / (H * d);
  const group = H / heads;
  const rows = Math.min(window, n);
  const scores = new Float64Array(heads * d);
  const slots = keys.length / (heads * d);
  for (let g = 0; g < heads; g++) {
    for (let c = 0; c < d; c++) {
      let q = 0;
      for (let t = n - rows; t < n; t++) for (let h = g * group; h < (g + 1) * group; h++) q += queries[(t * H + h) * d + c] ** 2;
      let k = 0;
      let count = 0;
      for (let s = 0; s < slots; s++) {
        if (valid && !valid[s * heads + g]) continue;
        k += keys[(s * heads + g) * d + c] ** 2;
        count++;
      }
      scores[g * d + c] = (q / (rows * group)) * (k / Math.max(count, 1));
    }
  }
  return scores;
}

export const think: MethodDefinition = {
  name: 'think',
  family: 'quantization',
  tokenwise: true,
  phases: ['after-prefill', 'decode'],
  summary: 'prunes the key channels the recent queries use least (per KV head), keeping the rest of each key and every value',
  params: [
    { name: 'ratio', default: 0.5, min: 0, max: 1, minExclusive: true, maxExclusive: true, integer: false, canonical: true, description: 'fraction of key channels pruned' },
    { name: 'window', default: 32, min: 1, max: 1024, integer: true, description: 'recent prompt queries that score the channels' },
  ],
  paper: { authors: 'Xu et al.', year: 2024, title: 'ThinK: Thinner Key Cache by Query-Driven Pruning', arxiv: '2407.21118' },
  build(params) {
    return {
      kind: 'row-quantizer',
      quantizer: {
        name: `think:ratio=${params.ratio}`,
        bits: null,
        shrinks: true,
        needs: () => ({ queries: true, queryRows: params.window! }),
        codecs(layer, _index, config, stats) {
          const d = config.headDim;
          const pruned = Math.floor(d * params.ratio! + 1e-9);
          if (pruned < 1) throw new KvlensError(`think: ratio ${params.ratio} prunes no channel of a ${d}-channel head`);
          if (!stats?.queries) throw missingStats('think', 'the rotated queries of the prompt');
          const kv = layer.view();
          const scores = thinkScores(stats.queries, kv.keys, kv.valid, { numHeads: config.numHeads, numKvHeads: config.numKvHeads, headDim: d, window: params.window! });
          return {
            keys: range(0, config.numKvHeads).map((g) => channelCodec(layer.dtype, topK((c) => scores[g * d + c], range(0, d), d - pruned), d)),
            values: channelCodec(layer.dtype, range(0, d), d),
          };
        },
      },
    };
  },
};

// Holds keys and values in llama.cpp's cache types (--cache-type-k / --cache-type-v, Ollama's OLLAMA_KV_CACHE_TYPE), set independently,
// as the ggml blocks the server stores: 32 elements along the head dimension of each token. No paper: the formats of ggml (Gerganov et al., github.com/ggml-org/llama.cpp).
import { KvlensError } from '../../errors';
import type { MethodDefinition } from '../definition';
import { LLAMACPP_CACHE_TYPES, llamaCppCodec, type LlamaCppCacheType } from '../quant/ggml-rows';
import { meanBits } from '../quant/row-codec';

const BITS: Record<LlamaCppCacheType, number | null> = { f16: null, bf16: null, q8_0: 8, q4_0: 4, q4_1: 4, q5_0: 5, q5_1: 5, iq4_nl: 4 };
const Q8_0 = LLAMACPP_CACHE_TYPES.indexOf('q8_0');

export const llamacpp: MethodDefinition = {
  name: 'llamacpp',
  family: 'quantization',
  tokenwise: true,
  phases: ['after-prefill', 'decode'],
  summary: "llama.cpp's K and V cache types (f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, iq4_nl) in ggml's own 32-element blocks",
  params: [
    { name: 'k', default: Q8_0, min: 0, max: LLAMACPP_CACHE_TYPES.length - 1, integer: true, names: LLAMACPP_CACHE_TYPES, canonical: true, description: 'K cache type (--cache-type-k)' },
    { name: 'v', default: Q8_0, min: 0, max: LLAMACPP_CACHE_TYPES.length - 1, integer: true, names: LLAMACPP_CACHE_TYPES, canonical: true, description: 'V cache type (--cache-type-v)' },
  ],
  paper: null,
  build(params) {
    const k = LLAMACPP_CACHE_TYPES[params.k!];
    const v = LLAMACPP_CACHE_TYPES[params.v!];
    if (k === 'f16' && v === 'f16') {
      throw new KvlensError("llamacpp: k=f16,v=f16 is llama.cpp's default cache, the fp16 cache `full` holds; use full");
    }
    const where = `llamacpp:k=${k},v=${v}`;
    return {
      kind: 'row-quantizer',
      quantizer: {
        name: where,
        bits: meanBits(BITS[k], BITS[v]),
        shrinks: BITS[k] !== null || BITS[v] !== null,
        codecs: (_layer, _index, config) => ({ keys: llamaCppCodec(k, config.headDim, where), values: llamaCppCodec(v, config.headDim, where) }),
      },
    };
  },
};

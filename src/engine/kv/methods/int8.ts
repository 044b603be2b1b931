// Quantizes keys and values to symmetric int8 with one fp16 scale (absmax/127) per block of 32 channels of each token and head.
// The block layout of llama.cpp's q8_0 cache type (Gerganov et al., llama.cpp); the per-token absmax scheme of Dettmers et al. 2022, LLM.int8() (arXiv 2208.07339).
import type { MethodDefinition } from '../definition';

export const int8: MethodDefinition = {
  name: 'int8',
  family: 'quantization',
  tokenwise: true,
  phases: ['after-prefill', 'decode'],
  summary: 'symmetric int8 with an fp16 absmax scale per block of 32 channels (q8_0 layout)',
  params: [{ name: 'group', default: 32, min: 1, max: 1024, integer: true, description: 'channels per scale block' }],
  paper: { authors: 'Dettmers, Lewis, Belkada, Zettlemoyer', year: 2022, title: 'LLM.int8(): 8-bit Matrix Multiplication for Transformers at Scale', arxiv: '2208.07339' },
  build: (params) => ({
    kind: 'quantizer',
    scheme: {
      name: 'int8',
      bits: 8,
      codec: 'absmax-int8',
      keyAxis: 'channels',
      keyGroup: params.group!,
      valueGroup: params.group!,
      residual: 0,
      scaleStorage: 'fp16',
    },
  }),
};

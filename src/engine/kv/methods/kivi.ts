// Quantizes keys per channel (groups of `group` tokens) and values per token (groups of `group` channels) to 2 or 4 bits,
// keeping the most recent `residual` tokens in the cache's full precision (fp16 by default). Liu et al. 2024, "KIVI: A Tuning-Free Asymmetric 2bit Quantization for KV Cache" (arXiv 2402.02750).
import type { MethodDefinition } from '../definition';

// Scales and zero-points are fp16 (2 bytes each), as in the paper's fp16 models. Tokens leave the residual a whole key group at a time,
// so between `residual` and `residual + group − 1` recent tokens per head are in full precision.
export const kivi: MethodDefinition = {
  name: 'kivi',
  family: 'quantization',
  phases: ['after-prefill', 'decode'],
  summary: 'asymmetric 2/4-bit: keys per channel, values per token, recent tokens in full precision',
  params: [
    { name: 'bits', default: 2, min: 2, max: 4, choices: [2, 4], integer: true, canonical: true, description: 'bits per quantized element' },
    { name: 'group', default: 32, min: 1, max: 1024, integer: true, description: 'key group length in tokens and value group width in channels' },
    { name: 'residual', default: 128, min: 0, max: 1_000_000, integer: true, description: 'most recent tokens per head kept in full precision' },
  ],
  paper: { authors: 'Liu, Yuan, Jin, Zhong, Xu, Braverman, Chen, Hu', year: 2024, title: 'KIVI: A Tuning-Free Asymmetric 2bit Quantization for KV Cache', arxiv: '2402.02750' },
  build: (params) => ({
    kind: 'quantizer',
    scheme: {
      name: 'kivi',
      bits: params.bits!,
      codec: 'uniform',
      keyAxis: 'tokens',
      keyGroup: params.group!,
      valueGroup: params.group!,
      residual: params.residual!,
      scaleStorage: 'fp16',
    },
  }),
};

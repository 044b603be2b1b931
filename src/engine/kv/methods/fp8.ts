// Stores keys and values as 1-byte FP8 E4M3 after scaling each token's head row by its absmax/448 (one fp32 scale per token and head).
// As vLLM's fp8 KV cache (Kwon et al. 2023, "Efficient Memory Management for Large Language Model Serving with PagedAttention", arXiv 2309.06180), with per-token scales.
import type { MethodDefinition } from '../definition';

export const fp8: MethodDefinition = {
  name: 'fp8',
  family: 'quantization',
  tokenwise: true,
  phases: ['after-prefill', 'decode'],
  summary: 'FP8 E4M3 codes with a per-token, per-head absmax scale',
  params: [],
  paper: {
    authors: 'Kwon, Li, Zhuang, Sheng, Zheng, Yu, Gonzalez, Zhang, Stoica',
    year: 2023,
    title: 'Efficient Memory Management for Large Language Model Serving with PagedAttention',
    arxiv: '2309.06180',
  },
  build: () => ({
    kind: 'quantizer',
    scheme: {
      name: 'fp8',
      bits: 8,
      codec: 'e4m3',
      keyAxis: 'channels',
      keyGroup: Number.POSITIVE_INFINITY,
      valueGroup: Number.POSITIVE_INFINITY,
      residual: 0,
      scaleStorage: 'fp32',
    },
  }),
};

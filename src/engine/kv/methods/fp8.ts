// Stores keys and values as 1-byte FP8 E4M3 after scaling each token's head row by its absmax/448 (one fp32 scale per token and head).
// The E4M3 format of Micikevicius et al. 2022, "FP8 Formats for Deep Learning" (arXiv 2209.05433); the per-token scale is kvlens' own (vLLM's per-tensor one is `vllm`).
import type { MethodDefinition } from '../definition';

export const fp8: MethodDefinition = {
  name: 'fp8',
  family: 'quantization',
  tokenwise: true,
  phases: ['after-prefill', 'decode'],
  summary: "FP8 E4M3 codes with a per-token, per-head absmax scale (not vLLM's per-tensor scale: see vllm)",
  params: [],
  paper: { authors: 'Micikevicius et al.', year: 2022, title: 'FP8 Formats for Deep Learning', arxiv: '2209.05433' },
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

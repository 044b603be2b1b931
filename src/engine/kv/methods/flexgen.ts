// Quantizes keys and values group-wise asymmetrically (min/max per group of `group` channels of each token and head), 4 bits by default.
// Sheng et al. 2023, "FlexGen: High-Throughput Generative Inference of Large Language Models with a Single GPU" (arXiv 2303.06865).
import type { MethodDefinition } from '../definition';

// Groups run along the head dimension, capped at headDim (a group never spans two heads); scales and zero-points are fp16.
export const flexgen: MethodDefinition = {
  name: 'flexgen',
  family: 'quantization',
  tokenwise: true,
  phases: ['after-prefill', 'decode'],
  summary: 'group-wise asymmetric quantization of keys and values along the hidden dimension',
  params: [
    { name: 'bits', default: 4, min: 2, max: 8, choices: [2, 3, 4, 8], integer: true, canonical: true, description: 'bits per quantized element' },
    { name: 'group', default: 64, min: 1, max: 1024, integer: true, description: 'channels per quantization group' },
  ],
  paper: {
    authors: 'Sheng, Zheng, Yuan, Li, Ryabinin, Fu, Xie, Chen, Barrett, Gonzalez, Liang, Ré, Stoica, Zhang',
    year: 2023,
    title: 'FlexGen: High-Throughput Generative Inference of Large Language Models with a Single GPU',
    arxiv: '2303.06865',
  },
  build: (params) => ({
    kind: 'quantizer',
    scheme: {
      name: 'flexgen',
      bits: params.bits!,
      codec: 'uniform',
      keyAxis: 'channels',
      keyGroup: params.group!,
      valueGroup: params.group!,
      residual: 0,
      scaleStorage: 'fp16',
    },
  }),
};

// Stores keys and values as vLLM's kv_cache_dtype fp8_e4m3 / fp8_e5m2: the FP8 code of x / scale with one fp32 scale per layer for keys and one for
// values (1.0, vLLM's default without checkpoint scales, or calculated from the prompt as --calculate-kv-scales does). Kwon et al. 2023, "Efficient Memory Management for Large Language Model Serving with PagedAttention" (arXiv 2309.06180).
import type { MethodDefinition } from '../definition';
import { absMax, fp8TensorCodec, type Fp8Format } from '../quant/fp8-rows';

const DTYPES = ['fp8_e4m3', 'fp8_e5m2'] as const;
const SCALES = ['one', 'calculated'] as const;
// vLLM's K_SCALE_CONSTANT and V_SCALE_CONSTANT: a calculated scale maps the prompt's largest |key| to 200 and |value| to 100.
const KEY_RANGE = 200;
const VALUE_RANGE = 100;

export const vllm: MethodDefinition = {
  name: 'vllm',
  family: 'quantization',
  tokenwise: true,
  phases: ['after-prefill', 'decode'],
  summary: "vLLM's fp8 KV cache: FP8 E4M3 or E5M2 codes with one scale per layer for keys and one for values",
  params: [
    { name: 'dtype', default: 0, min: 0, max: DTYPES.length - 1, integer: true, names: DTYPES, canonical: true, description: 'kv_cache_dtype' },
    {
      name: 'scale',
      default: 0,
      min: 0,
      max: SCALES.length - 1,
      integer: true,
      names: SCALES,
      description: 'per-tensor scales: one (vLLM without checkpoint scales) or calculated from the prompt (|k|max/200, |v|max/100)',
    },
  ],
  paper: {
    authors: 'Kwon, Li, Zhuang, Sheng, Zheng, Yu, Gonzalez, Zhang, Stoica',
    year: 2023,
    title: 'Efficient Memory Management for Large Language Model Serving with PagedAttention',
    arxiv: '2309.06180',
  },
  build(params) {
    const format: Fp8Format = DTYPES[params.dtype!] === 'fp8_e4m3' ? 'e4m3' : 'e5m2';
    const calculated = SCALES[params.scale!] === 'calculated';
    // A layer whose keys (or values) are all zero keeps scale 1: x / 0 would make every code NaN.
    const scaleOf = (data: Float32Array, range: number) => (calculated && absMax(data) > 0 ? Math.fround(absMax(data) / range) : 1);
    return {
      kind: 'row-quantizer',
      quantizer: {
        name: `vllm:dtype=${DTYPES[params.dtype!]}`,
        bits: 8,
        shrinks: true,
        codecs(layer, _index, config) {
          const kv = layer.view();
          return {
            keys: fp8TensorCodec(format, scaleOf(kv.keys, KEY_RANGE), config.headDim),
            values: fp8TensorCodec(format, scaleOf(kv.values, VALUE_RANGE), config.headDim),
          };
        },
      },
    };
  },
};

// How a model's weights are held: `--weights auto|fp32|int8|int4` for float-stored matrices (ggml blocks
// always keep their own format), and the bytes that choice costs, known before a weight is read.
import { freemem } from 'node:os';
import { KvlensError } from '../errors';
import { graphWeightBytes, type WeightQuantization } from './onnx/graph';
import { requireInfo, type WeightSource } from './weightSource';

export const WEIGHT_CHOICES = ['auto', 'fp32', 'int8', 'int4'] as const;
export type WeightsChoice = (typeof WEIGHT_CHOICES)[number];

export function parseWeightsChoice(value: unknown, where = '--weights'): WeightsChoice {
  if (value === undefined) return 'auto';
  if (typeof value === 'string' && (WEIGHT_CHOICES as readonly string[]).includes(value)) return value as WeightsChoice;
  throw new KvlensError(`${where} must be one of ${WEIGHT_CHOICES.join(', ')}, got ${JSON.stringify(value)}`);
}

export interface WeightFormatPlan {
  requested: WeightsChoice;
  /** What float-stored matrices become in the graph. */
  quantization: WeightQuantization;
  /** Bytes of the graph's weight initializers. */
  graphBytes: number;
  /** Bytes of the embedding table as stored in the file (read per lookup, not resident). */
  embeddingBytes: number;
  /** Expected resident weight memory: the graph as onnxruntime holds it once loaded (see RESIDENT_FACTOR; the embedding table stays in the file). */
  weightBytes: number;
  /** One line saying what was chosen and why. */
  reason: string;
  /** True when the file has float-stored matrices the choice applies to. */
  hasFloatMatrices: boolean;
}

/** Share of free memory fp32 weights plus the KV cache may take before `auto` switches to int8. */
const AUTO_FP32_SHARE = 0.5;

function formatPlan(source: WeightSource, requested: WeightsChoice, quantization: WeightQuantization, reason: string): WeightFormatPlan {
  const graphBytes = graphWeightBytes(source, { quantization });
  const embedding = requireInfo(source, 'model.embed_tokens.weight');
  const embeddingBytes = embedding.rowBytes * embedding.shape[0];
  // The embedding table is a graph matrix only as a tied lm_head.
  const tiedHead = !source.info('lm_head.weight');
  const hasFloatMatrices = source.names.some((name) => {
    const info = requireInfo(source, name);
    return info.shape.length === 2 && info.block === null && (tiedHead || name !== 'model.embed_tokens.weight');
  });
  return {
    requested,
    quantization,
    graphBytes,
    embeddingBytes,
    // The embedding table is read from the file per lookup (see embedding.ts), so it is not resident.
    weightBytes: graphWeightBytes(source, { quantization }, true),
    reason,
    hasFloatMatrices,
  };
}

/** Resolves `auto`: fp32 (the parity path) when it fits comfortably next to the KV cache, int8 otherwise. */
export function planWeightFormat(source: WeightSource, requested: WeightsChoice, kvBytes: number, freeBytes = freemem()): WeightFormatPlan {
  if (requested !== 'auto') return formatPlan(source, requested, requested, `${requested} as requested`);
  const fp32 = formatPlan(source, 'auto', 'fp32', '');
  if (!fp32.hasFloatMatrices) return { ...fp32, reason: 'the file\'s own quantized blocks (no float matrices to convert)' };
  if (fp32.weightBytes + kvBytes <= freeBytes * AUTO_FP32_SHARE) return { ...fp32, reason: 'fp32: fits comfortably in free memory' };
  const int8 = formatPlan(source, 'auto', 'int8', '');
  return { ...int8, reason: `int8: fp32 weights (${(fp32.weightBytes / 1024 ** 3).toFixed(2)} GiB) would take more than half of the free memory` };
}

/** The label results and `kvlens info` show, e.g. "int8 (auto)" or "Q4_0 blocks + fp32". */
export function describeWeightFormat(plan: WeightFormatPlan): string {
  const chosen = plan.hasFloatMatrices ? plan.quantization : 'native blocks';
  return plan.requested === 'auto' ? `${chosen} (auto)` : chosen;
}

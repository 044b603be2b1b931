// The format of a cache that stores every head's key and value row of each token on its own, in a fixed number of
// bytes (llama.cpp's cache types, vLLM's fp8 cache): what a row holds, and how it is written and read back.
import type { ModelConfig } from '../../model/config';
import type { AttentionRequest, LayerAttention } from '../../model/types';
import type { DenseLayerCache } from '../cache';

/** How the bytes of one row split by kind (they sum to `rowBytes`), for CacheBytes. */
export interface RowParts {
  packed: number;
  scales: number;
  zeroPoints: number;
  /** Elements kept as 16-bit floats (llama.cpp's f16 and bf16 types). */
  fullPrecision: number;
}

export interface RowCodec {
  /** The type as the server spells it (q8_0, fp8_e4m3, ...). */
  readonly name: string;
  /** Bits of each element's code, or null when elements are stored as 16-bit floats rather than quantized. */
  readonly bits: number | null;
  /** Bytes one head's row of headDim elements takes. */
  readonly rowBytes: number;
  readonly parts: RowParts;
  /** Bytes held once per layer (and head, for per-head codecs) besides the rows: a per-tensor scale, ThinK's channel list; counted as scales. */
  readonly tensorBytes: number;
  /** Writes `row` (headDim fp32 values) as rowBytes bytes at byte `at` of the buffer `view` covers. */
  encode(row: Float32Array, view: DataView, at: number): void;
  /** Writes the headDim values of the row at byte `at` to target[to..]. */
  decode(bytes: Uint8Array, view: DataView, at: number, target: Float32Array, to: number): void;
  /**
   * Writes the fp16 patterns of those values (each decoded value rounded to fp16, ties to even), for an fp16 cache whose
   * forward pass reads 16-bit patterns; a format with few distinct values per row does it by table. Absent: decode, then round.
   */
  decodeHalf?(bytes: Uint8Array, view: DataView, at: number, target: Uint16Array, to: number): void;
  /** Present when a forward pass can read the rows as held (the graph dequantizes linear or table codes itself). */
  packing?: RowPacking;
}

/** A row as packed codes with group parameters: element = level · scale + zero, level = the code or its table entry. */
export interface RowPacking {
  bits: 4 | 8;
  /** Elements per group (one scale and one zero-point each); divides headDim. */
  group: number;
  /** [256 · 8/bits] the level of each code of each byte value (lowest bits first) for table formats; null when a code is its own level. */
  table: Float32Array | null;
  /**
   * Writes the row at byte `at` as headDim codes, `bits` wide in element order (lowest bits first), at codes[codeAt..],
   * and its groups' scales and zero-points at scales/zeros[paramAt..].
   */
  write(bytes: Uint8Array, view: DataView, at: number, codes: Uint8Array, codeAt: number, scales: Float32Array, zeros: Float32Array, paramAt: number): void;
}

/** A stage that stores rows: per layer, the codecs of its key rows and of its value rows (one for every head, or one per head). */
export interface RowQuantizer {
  /** For messages. */
  name: string;
  /** Code bits per quantized element over keys and values together (the mean when they differ), or null if neither is quantized. */
  bits: number | null;
  /** Whether rows take fewer bytes than the cache's full-precision ones (false for llama.cpp's bf16: other rounding, same size). */
  shrinks: boolean;
  /** Prefill statistics the codecs are calibrated on, if any. */
  needs?(promptLength: number): AttentionRequest;
  /**
   * `layer` is what the layer will store (already reduced to a selection), for codecs calibrated on it; `stats` are the
   * layer's prefill statistics (indexed by prefill slots).
   */
  codecs(layer: DenseLayerCache, index: number, config: ModelConfig, stats: LayerAttention | undefined): { keys: RowCodec | RowCodec[]; values: RowCodec | RowCodec[] };
}

/** Mean code bits of a key codec and a value codec, counting only the quantized one when the other is not. */
export function meanBits(keys: number | null, values: number | null): number | null {
  if (keys === null) return values;
  if (values === null) return keys;
  return (keys + values) / 2;
}

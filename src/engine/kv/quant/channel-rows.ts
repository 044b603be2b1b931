// Rows that keep only some channels of a head, in the cache's own dtype (ThinK's thinned keys): the kept channels'
// values in order, the pruned ones read back as 0, and the list of kept channels held once per head (no list when all are kept).
import { decodeKvElement, encodeKv, kvElementBytes, allocateKv, type KvDtype } from '../kv-dtype';
import type { RowCodec } from './row-codec';

export function channelCodec(dtype: KvDtype, channels: readonly number[], headDim: number): RowCodec {
  const width = kvElementBytes(dtype);
  const kept = Int32Array.from(channels);
  const scratch = new Float32Array(kept.length);
  const stored = allocateKv(dtype, kept.length);
  return {
    name: `${dtype} channels`,
    bits: null,
    rowBytes: width * kept.length,
    parts: { packed: 0, scales: 0, zeroPoints: 0, fullPrecision: width * kept.length },
    // One byte per kept channel number (two past 256 channels); a row of every channel needs no list.
    tensorBytes: kept.length === headDim ? 0 : kept.length * (headDim > 256 ? 2 : 1),
    encode(row, view, at) {
      for (let i = 0; i < kept.length; i++) scratch[i] = row[kept[i]];
      encodeKv(dtype, scratch, stored, 0);
      for (let i = 0; i < kept.length; i++) {
        if (width === 4) view.setFloat32(at + 4 * i, stored[i], true);
        else view.setUint16(at + 2 * i, stored[i], true);
      }
    },
    decode(_bytes, view, at, target, to) {
      target.fill(0, to, to + headDim);
      for (let i = 0; i < kept.length; i++) {
        if (width === 4) stored[i] = view.getFloat32(at + 4 * i, true);
        else stored[i] = view.getUint16(at + 2 * i, true);
        target[to + kept[i]] = decodeKvElement(dtype, stored, i);
      }
    },
  };
}

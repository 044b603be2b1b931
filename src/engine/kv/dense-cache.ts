// The full-precision cache behind `full` and the token-dropping methods: one DenseLayerCache per layer,
// optionally with a per-layer eviction that keeps the size fixed while decoding.
import type { LayerAttention } from '../model/types';
import { storedKvBytes, type DenseLayerCache, type LayerKV } from './cache';
import type { LayerDecodeEviction } from './definition';
import { type CacheBytes, type MethodCache, ZERO_BYTES } from './method';

export function denseBytes(views: LayerKV[]): CacheBytes {
  const b = { ...ZERO_BYTES };
  for (const kv of views) {
    b.fullPrecision += storedKvBytes(kv);
    b.positions += kv.positions.byteLength + (kv.valid ? kv.valid.byteLength : 0);
  }
  b.held = b.fullPrecision + b.positions;
  b.active = b.held;
  return b;
}

export class DenseMethodCache implements MethodCache {
  readonly bits = null;

  /** Takes ownership of `layers`: they must be clones, never the runner's prefill cache. */
  constructor(
    private readonly layers: DenseLayerCache[],
    private readonly evictions: (LayerDecodeEviction | null)[] = [],
  ) {}

  views(): LayerKV[] {
    return this.layers.map((layer) => layer.view());
  }

  append(layer: number, keys: Float32Array, values: Float32Array, positions: ArrayLike<number>): void {
    this.layers[layer].append(keys, values, positions);
  }

  afterStep(attention: LayerAttention[] | null): void {
    this.evictions.forEach((eviction, l) => {
      if (!eviction) return;
      const victims = eviction.afterStep(this.layers[l], attention?.[l] ?? null);
      if (victims) this.layers[l].removePerHead(victims);
    });
  }

  tokensPerHead(): number[][] {
    return this.layers.map((layer) => layer.tokensPerHead());
  }

  bytes(): CacheBytes {
    return denseBytes(this.views());
  }

  quantizedElements(): number {
    return 0;
  }
}

// The engine's check that a compressed cache is what its method promised: exact token counts, declared bit width,
// and a real reduction. A method that silently kept everything is an error, not a result.
import { KvlensError } from '../errors';
import type { ModelConfig } from '../model/config';
import type { DenseLayerCache } from './cache';
import { denseBytes } from './dense-cache';
import type { CompressionPromise, KvMethod, MethodCache } from './method';

export interface Verification {
  verified: true;
  /** "no compression" for `full`; otherwise null. */
  note: string | null;
  promise: CompressionPromise;
}

function sum(values: number[]): number {
  return values.reduce((a, b) => a + b, 0);
}

function checkTokens(spec: string, promise: CompressionPromise, tokens: number[][], slack: number): void {
  const total = sum(tokens.map(sum));
  const fail = (what: string) => {
    throw new KvlensError(`the cache does not keep the promised size: ${what}`, `method ${spec}`);
  };
  if (slack === 0 && total !== promise.totalTokens) fail(`holds ${total} tokens in all, promised ${promise.totalTokens}`);
  tokens.forEach((heads, l) => {
    heads.forEach((n, h) => {
      if (promise.tokensPerHead !== null && (n < promise.tokensPerHead || n > promise.tokensPerHead + slack)) {
        fail(`layer ${l} head ${h} holds ${n} tokens, promised ${promise.tokensPerHead}${slack ? ` to ${promise.tokensPerHead + slack}` : ''}`);
      }
    });
    const layerTotal = sum(heads);
    const promised = promise.tokensPerLayer?.[l];
    if (promised !== undefined && (layerTotal < promised || layerTotal > promised + slack * heads.length)) {
      fail(`layer ${l} holds ${layerTotal} tokens over its heads, promised ${promised}`);
    }
  });
}

/** What attention reads must hold exactly the reported tokens per head, each original position at most once. */
function checkViews(cache: MethodCache, tokens: number[][], where: string): void {
  cache.views().forEach((view, l) => {
    for (let h = 0; h < view.numKvHeads; h++) {
      const seen = new Set<number>();
      for (let s = 0; s < view.length; s++) {
        if (view.valid && !view.valid[s * view.numKvHeads + h]) continue;
        const position = view.positions[s * view.numKvHeads + h];
        if (position < 0 || seen.has(position)) throw new KvlensError(`layer ${l} head ${h} holds position ${position} twice or invalid`, where);
        seen.add(position);
      }
      if (seen.size !== tokens[l][h]) throw new KvlensError(`layer ${l} head ${h}: attention reads ${seen.size} tokens, tokensPerHead() says ${tokens[l][h]}`, where);
    }
  });
}

/** Checks a freshly compressed cache against the method's promise for the prefilled prompt; throws a KvlensError on any gap. */
export function verifyCompression(method: KvMethod, cache: MethodCache, prefill: DenseLayerCache[], config: ModelConfig): Verification {
  const promptLength = prefill[0].length;
  const promise = method.promise(promptLength, config);
  const where = `method ${method.spec}`;
  const tokens = cache.tokensPerHead();
  if (tokens.length !== config.numLayers || tokens.some((heads) => heads.length !== config.numKvHeads)) {
    throw new KvlensError(`tokensPerHead() reports ${tokens.length} layers, expected ${config.numLayers} x ${config.numKvHeads} heads`, where);
  }
  checkTokens(method.spec, promise, tokens, 0);
  checkViews(cache, tokens, where);
  if (cache.bits !== promise.bits) throw new KvlensError(`cache stores ${cache.bits ?? 'fp32'} bits, the method declares ${promise.bits ?? 'fp32'}`, where);
  const bytes = cache.bytes();
  const parts = bytes.packed + bytes.scales + bytes.zeroPoints + bytes.fullPrecision + bytes.positions + bytes.blockStore + bytes.blockIndex;
  if (parts !== bytes.held || bytes.active > bytes.held) {
    throw new KvlensError(`bytes() is inconsistent: held ${bytes.held}, parts sum to ${parts}, active ${bytes.active}`, where);
  }
  if (promise.bits !== null) {
    const elements = cache.quantizedElements();
    if (elements === 0) {
      throw new KvlensError(`quantized nothing: the ${promptLength}-token prompt stayed entirely in the full-precision residual`, where);
    }
    const minimum = Math.ceil((promise.bits * elements) / 8);
    // Each key or value stream of a head may end in one partly filled byte.
    const streams = 2 * config.numLayers * config.numKvHeads;
    if (bytes.packed < minimum || bytes.packed > minimum + streams) {
      throw new KvlensError(`packed codes take ${bytes.packed} bytes for ${elements} elements, not ${promise.bits} bits each`, where);
    }
  }
  if (promise.cacheShrinks) {
    const full = denseBytes(prefill.map((layer) => layer.view())).held;
    if (bytes.active >= full) {
      throw new KvlensError(`did nothing: attention reads ${bytes.active} bytes, a full cache of the ${promptLength}-token prompt holds ${full}`, where);
    }
  }
  return { verified: true, note: promise.compresses ? null : 'no compression (full cache)', promise };
}

/** Checks the size after `steps` decode steps (each appending one token) against the promise. */
export function verifyDecode(method: KvMethod, cache: MethodCache, promptLength: number, steps: number, config: ModelConfig): void {
  const promise = method.promise(promptLength, config);
  const growth = promise.decode === 'grows' ? steps : 0;
  const grown: CompressionPromise = {
    ...promise,
    totalTokens: promise.totalTokens + growth * config.numLayers * config.numKvHeads,
    tokensPerHead: promise.tokensPerHead === null ? null : promise.tokensPerHead + growth,
    tokensPerLayer: promise.tokensPerLayer?.map((n) => n + growth * config.numKvHeads) ?? null,
  };
  checkTokens(method.spec, grown, cache.tokensPerHead(), promise.decode === 'bounded' ? promise.decodeSlack : 0);
}

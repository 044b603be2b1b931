// Builds a runnable method from a spec: prompt compression, then a token selection (or a custom cache), then quantization of what is kept.
import { KvlensError } from '../errors';
import type { ModelConfig } from '../model/config';
import type { AttentionRequest } from '../model/types';
import type { DenseLayerCache } from './cache';
import { DenseMethodCache } from './dense-cache';
import { RaggedMethodCache } from './ragged-cache';
import type { CustomCacheStage, LayerDecodeEviction, Selection, SizePromise, Stage, TokenSelector } from './definition';
import type { CompressInput, CompressionPromise, KvMethod, MethodCache, PromptCompressionContext } from './method';
import { mergeNeeds } from './method';
import { QuantizedCache } from './quant/quantized-cache';
import { RowQuantizedCache } from './quant/row-cache';
import type { RowQuantizer } from './quant/row-codec';
import type { QuantScheme } from './quant/scheme';
import { findMethod } from './registry';
import { uniformSize } from './scores';
import { type ParsedSpec, formatSpec, parseSpec } from './spec';

function checkInput(input: CompressInput, spec: string): void {
  const { layers, config } = input;
  const where = `compress(${spec})`;
  if (layers.length !== config.numLayers) throw new KvlensError(`expected ${config.numLayers} layers, got ${layers.length}`, where);
  const length = layers[0]?.length ?? 0;
  if (length === 0) throw new KvlensError('the prefill cache is empty', where);
  layers.forEach((layer, l) => {
    if (layer.numKvHeads !== config.numKvHeads || layer.headDim !== config.headDim) {
      throw new KvlensError(`layer ${l} has ${layer.numKvHeads}x${layer.headDim} KV heads, the model ${config.numKvHeads}x${config.headDim}`, where);
    }
    if (layer.length !== length) throw new KvlensError(`layer ${l} holds ${layer.length} tokens, layer 0 ${length}`, where);
  });
  if (input.stats && input.stats.length !== config.numLayers) {
    throw new KvlensError(`expected attention statistics for ${config.numLayers} layers, got ${input.stats.length}`, where);
  }
}

function checkSelection(selection: Selection, layers: DenseLayerCache[], name: string): void {
  if (selection.length !== layers.length) throw new KvlensError(`${name} selected tokens for ${selection.length} of ${layers.length} layers`);
  selection.forEach((heads, l) => {
    if (heads.length !== layers[l].numKvHeads) throw new KvlensError(`${name} selected tokens for ${heads.length} of ${layers[l].numKvHeads} heads in layer ${l}`);
    for (const slots of heads) {
      if (new Set(slots).size !== slots.length) throw new KvlensError(`${name} selected a slot twice in layer ${l}`);
    }
  });
}

export function createMethod(spec: string | ParsedSpec): KvMethod {
  const parsed = typeof spec === 'string' ? parseSpec(spec) : spec;
  const canonical = formatSpec(parsed);
  const stages: Stage[] = [];
  const families: string[] = [];
  for (const stage of parsed.stages) {
    const def = findMethod(stage.name);
    if (!def) throw new KvlensError(`unknown method "${stage.name}"`, `method spec "${canonical}"`);
    stages.push(def.build(stage.params));
    families.push(def.family);
  }
  const selector: TokenSelector | undefined = stages.flatMap((s) => (s.kind === 'selector' ? [s.selector] : []))[0];
  const custom: CustomCacheStage | undefined = stages.flatMap((s) => (s.kind === 'custom' ? [s.custom] : []))[0];
  const scheme: QuantScheme | undefined = stages.flatMap((s) => (s.kind === 'quantizer' ? [s.scheme] : []))[0];
  const rows: RowQuantizer | undefined = stages.flatMap((s) => (s.kind === 'row-quantizer' ? [s.quantizer] : []))[0];
  const prompt = stages.find((s) => s.kind === 'prompt');
  const baseline = stages.some((s) => s.kind === 'baseline');

  const method: KvMethod = {
    spec: canonical,
    family: families.join('+'),
    needs: (promptLength: number): AttentionRequest => mergeNeeds(selector?.needs(promptLength), custom?.needs(promptLength), rows?.needs?.(promptLength)),
    decodeNeeds: selector?.decode?.needs ?? custom?.decodeNeeds,
    compress(input: CompressInput): MethodCache {
      checkInput(input, canonical);
      if (custom) return custom.compress(input);
      let evictions: (LayerDecodeEviction | null)[] = [];
      let kept: number[][][] | null = null;
      if (selector) {
        const selection = selector.select(input);
        checkSelection(selection, input.layers, canonical);
        kept = selection.map((heads) => heads.map((slots) => slots.slice().sort((a, b) => a - b)));
        const ragged = kept.some((heads) => heads.some((slots) => slots.length !== heads[0].length));
        // Heads of different lengths in one padded layout would each pay for the longest head.
        if (ragged && !scheme && !rows && !selector.decode) return new RaggedMethodCache(input.layers.map((layer) => layer.view()), kept);
      }
      const layers = input.layers.map((layer) => layer.clone());
      if (kept) {
        const selected = kept;
        layers.forEach((layer, l) => layer.retain(selected[l]));
        const decode = selector?.decode;
        if (decode) evictions = selected.map((heads, l) => decode.start(l, heads, input));
      }
      if (scheme) return new QuantizedCache(layers, scheme, evictions);
      if (rows) return new RowQuantizedCache(layers, rows, input.config, evictions, input.stats);
      return new DenseMethodCache(layers, evictions);
    },
    promise(promptLength: number, config: ModelConfig): CompressionPromise {
      const size: SizePromise = selector?.size(promptLength, config) ?? custom?.size(promptLength, config) ?? uniformSize(config, promptLength);
      return {
        ...size,
        bits: scheme?.bits ?? rows?.bits ?? null,
        decode: size.decodeSlack !== undefined ? 'bounded' : selector?.decode ? 'fixed' : 'grows',
        decodeSlack: size.decodeSlack ?? 0,
        compresses: !baseline,
        // Row formats say whether they shrink: llama.cpp's bf16 changes the rounding of an fp16 cache, not its size.
        cacheShrinks: Boolean(selector || custom || scheme || rows?.shrinks),
      };
    },
  };
  if (prompt && prompt.kind === 'prompt') {
    method.compressPrompt = (tokens: number[], context: PromptCompressionContext) => prompt.compressPrompt(tokens, context);
  }
  return method;
}

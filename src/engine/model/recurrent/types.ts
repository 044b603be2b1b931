// The seam between the engine and models that carry a fixed-size recurrent state instead of a KV cache
// (Mamba, Mamba-2, RWKV, RecurrentGemma): what a run needs from such a model, whatever its architecture.

/** The facts of a recurrent checkpoint's config.json that the engine reads outside the forward pass. */
export interface RecurrentConfig {
  architecture: 'mamba' | 'mamba2' | 'rwkv' | 'recurrent_gemma';
  /** e.g. "MambaForCausalLM", as config.json names it. */
  hfArchitecture: string;
  hiddenSize: number;
  /** The width of the expanded inner stream (Mamba) or of the channel-mix (RWKV). */
  intermediateSize: number;
  numLayers: number;
  vocabSize: number;
  tieWordEmbeddings: boolean;
  /** The context the model was trained on, when its config names one (RWKV's context_length); else null. */
  trainedContext: number | null;
  bosTokenId: number | null;
  eosTokenIds: number[];
  torchDtype: string | null;
}

/** One named array of a layer's state, e.g. Mamba's `conv` [kernel-1, inner] or `ssm` [inner, stateSize]. */
export interface StateArray {
  name: string;
  /** Dimensions, outermost first. */
  shape: number[];
  data: Float32Array;
}

/**
 * Everything the model carries from one token to the next, per layer: its size is fixed by the config and
 * does not grow with the context (the point of comparing these models with a KV cache).
 */
export class RecurrentState {
  /** Tokens run through so far: the next token's position (RoPE and RecurrentGemma's reset read it). */
  tokensSeen = 0;

  constructor(readonly layers: StateArray[][]) {}

  /** Bytes held between steps, summed over every layer's arrays. */
  bytes(): number {
    let total = 0;
    for (const layer of this.layers) for (const array of layer) total += array.data.byteLength;
    return total;
  }

  /** An independent copy (a state is advanced in place). */
  clone(): RecurrentState {
    const copy = new RecurrentState(this.layers.map((layer) => layer.map((a) => ({ name: a.name, shape: [...a.shape], data: a.data.slice() }))));
    copy.tokensSeen = this.tokensSeen;
    return copy;
  }

  /** The array `name` of layer `layer`. */
  get(layer: number, name: string): Float32Array {
    const array = this.layers[layer]?.find((a) => a.name === name);
    if (!array) throw new Error(`recurrent state has no "${name}" in layer ${layer}`);
    return array.data;
  }
}

/**
 * A recurrent model's forward pass. `forward` runs tokens through the model starting from `state`, which it
 * advances in place: prefill is one call over the prompt, decode one call per token, each costing the same
 * whatever the context before it.
 */
export interface RecurrentForward {
  readonly config: RecurrentConfig;
  /** The state before any token (zeros, or what the architecture starts from). */
  initialState(): RecurrentState;
  /** [rows, vocab] logits, rows = tokens.length ('all') or 1 ('last'). */
  forward(tokens: ArrayLike<number>, state: RecurrentState, logits: 'all' | 'last'): Float32Array;
}

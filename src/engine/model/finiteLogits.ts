// Every forward's logits are checked for NaN and infinities: a broken checkpoint or an overflowing layer must
// stop with an error naming the model file and where it happened, never become an argmax over garbage.
import { KvlensError } from '../errors';
import type { DecoderForward, ForwardInput, ForwardOutput } from './types';
import type { RecurrentForward } from './recurrent/types';

/** Thrown when a forward pass produced NaN or infinite logits; `file` is the model file. */
export class NonFiniteLogitsError extends KvlensError {
  constructor(problem: string, file: string) {
    super(problem, file);
    this.name = 'NonFiniteLogitsError';
  }
}

interface NonFiniteCount {
  nan: number;
  posInf: number;
  negInf: number;
  /** Index of the first non-finite element. */
  first: number;
}

/** Counts NaN and ±Infinity in `values`, or null when every element is finite (the common case costs one pass). */
export function countNonFinite(values: Float32Array): NonFiniteCount | null {
  let first = -1;
  for (let i = 0; i < values.length; i++) {
    // x - x is NaN exactly for NaN and ±Infinity, and one subtraction is cheaper than Number.isFinite.
    const value = values[i];
    if (value - value !== 0) {
      first = i;
      break;
    }
  }
  if (first < 0) return null;
  const count: NonFiniteCount = { nan: 0, posInf: 0, negInf: 0, first };
  for (let i = first; i < values.length; i++) {
    const value = values[i];
    if (Number.isNaN(value)) count.nan++;
    else if (value === Infinity) count.posInf++;
    else if (value === -Infinity) count.negInf++;
  }
  return count;
}

function describeCount(count: NonFiniteCount, total: number): string {
  const parts = [count.nan > 0 ? `${count.nan} NaN` : '', count.posInf > 0 ? `${count.posInf} +Infinity` : '', count.negInf > 0 ? `${count.negInf} -Infinity` : ''];
  return `${parts.filter(Boolean).join(', ')} of ${total}`;
}

/** "position 17" or "positions 0..511": where the call's tokens sit in the sequence. */
function describePositions(input: ForwardInput): string {
  const positions = input.positions;
  if (positions.length === 0) return 'no positions';
  if (positions.length === 1) return `position ${positions[0]}`;
  return `positions ${positions[0]}..${positions[positions.length - 1]}`;
}

/**
 * The first layer whose new keys or values are non-finite: those are computed from the hidden state entering
 * the layer, so the fault lies in an earlier layer (or the embedding, or this layer's input norm). Null when
 * every layer's keys and values are finite, i.e. the fault is after the last layer's attention input.
 */
function firstNonFiniteLayer(output: ForwardOutput): number | null {
  for (let layer = 0; layer < output.newKeys.length; layer++) {
    if (countNonFinite(output.newKeys[layer]) || countNonFinite(output.newValues[layer] ?? new Float32Array(0))) return layer;
  }
  return null;
}

function checkOutput(input: ForwardInput, output: ForwardOutput, modelFile: string): void {
  const count = countNonFinite(output.logits);
  if (!count) return;
  const layers = output.newKeys.length;
  const cached = input.past[0]?.length ?? 0;
  const phase = cached > 0 ? `a forward over ${input.tokens.length} token(s) at ${describePositions(input)} with ${cached} cached slots` : `a forward over ${input.tokens.length} token(s) at ${describePositions(input)}`;
  let where = '';
  if (layers > 0) {
    const layer = firstNonFiniteLayer(output);
    where =
      layer === null
        ? `; every layer's keys and values are finite, so they arise after the last layer's attention input (its attention or MLP, the final norm or the output projection)`
        : layer === 0
          ? `; layer 0's keys/values are already non-finite (the embedding or the first norm)`
          : `; keys/values first non-finite at layer ${layer} of ${layers} (the fault is in layer ${layer - 1} or earlier)`;
  }
  throw new NonFiniteLogitsError(`non-finite logits (${describeCount(count, output.logits.length)}) in ${phase}${where}: a broken checkpoint or a numerical overflow`, modelFile);
}

/** `forward` with every call's logits checked; the error names `modelFile`, the positions and the first bad layer. */
export function withFiniteLogits(forward: DecoderForward, modelFile: string): DecoderForward {
  return {
    config: forward.config,
    kvDtype: forward.kvDtype,
    async forward(input) {
      const output = await forward.forward(input);
      checkOutput(input, output, modelFile);
      return output;
    },
    dispose: () => forward.dispose?.(),
  };
}

/** A recurrent forward with every call's logits checked, counting the tokens run since each initial state. */
export function withFiniteRecurrentLogits(forward: RecurrentForward, modelFile: string): RecurrentForward {
  return {
    config: forward.config,
    initialState: () => forward.initialState(),
    forward(tokens, state, logits) {
      const output = forward.forward(tokens, state, logits);
      const count = countNonFinite(output);
      if (count) {
        throw new NonFiniteLogitsError(
          `non-finite logits (${describeCount(count, output.length)}) from the recurrent forward over ${tokens.length} token(s): a broken checkpoint or a numerical overflow in the carried state`,
          modelFile,
        );
      }
      return output;
    },
  };
}

// What prompt compression asks of the model: how surprising each token is, over the whole prompt or over a
// compressed prefix that grows as compression decides what to keep.
import type { ModelSession } from '../session';
import { DenseLayerCache } from '../kv/cache';
import type { ConditionalScorer } from '../kv/method';

/** Tokens per forward call while prefilling (bounds the attention matrix a call builds). */
export const DEFAULT_PREFILL_CHUNK = 512;

/** −log p(token_i | tokens_<i) under the model, for prompt compression; the first token gets 0. */
export async function selfInformation(session: ModelSession, ids: number[]): Promise<Float32Array> {
  return conditionalScorer(session).score(ids);
}

/** Token indices where a new line begins (the first token of the prompt included). */
export function lineStarts(lineOfToken: Int32Array): number[] {
  const starts: number[] = [];
  for (let i = 0; i < lineOfToken.length; i++) if (i === 0 || lineOfToken[i] !== lineOfToken[i - 1]) starts.push(i);
  return starts;
}

/** Scores segments on top of a cache of the tokens committed so far (LLMLingua's iterative compression). */
export function conditionalScorer(session: ModelSession): ConditionalScorer {
  const { forward } = session;
  const { vocabSize, numLayers, numKvHeads, headDim } = forward.config;
  const committed = Array.from({ length: numLayers }, () => new DenseLayerCache(numKvHeads, headDim));
  let committedLength = 0;
  // Logits after the last committed token: they predict the first token of the next segment.
  let nextLogits: Float32Array | null = null;

  /** Runs `ids` after the committed prefix, growing `layers`; calls `row` with each input's logits. */
  const run = async (ids: number[], layers: DenseLayerCache[], logits: 'all' | 'last', row: (i: number, out: Float32Array, offset: number) => void) => {
    for (let start = 0; start < ids.length; start += DEFAULT_PREFILL_CHUNK) {
      const inputs = ids.slice(start, start + DEFAULT_PREFILL_CHUNK);
      const positions = inputs.map((_, i) => committedLength + start + i);
      const result = await forward.forward({ tokens: inputs, positions, past: layers.map((l) => l.view()), logits });
      for (let l = 0; l < numLayers; l++) layers[l].append(result.newKeys[l], result.newValues[l], positions);
      if (logits === 'all') for (let i = 0; i < inputs.length; i++) row(start + i, result.logits, i * vocabSize);
      else row(start + inputs.length - 1, result.logits, 0);
    }
  };

  return {
    async score(ids) {
      const surprise = new Float32Array(ids.length);
      if (ids.length === 0) return surprise;
      if (nextLogits) surprise[0] = negativeLogProb(nextLogits, 0, vocabSize, ids[0]);
      // A throwaway copy of the prefix: scoring must not commit.
      const scratch = committed.map((layer) => layer.clone());
      await run(ids, scratch, 'all', (i, logits, offset) => {
        if (i + 1 < ids.length) surprise[i + 1] = negativeLogProb(logits, offset, vocabSize, ids[i + 1]);
      });
      return surprise;
    },
    async commit(ids) {
      if (ids.length === 0) return;
      await run(ids, committed, 'last', (_, logits) => {
        nextLogits = logits.slice(0, vocabSize);
      });
      committedLength += ids.length;
    },
  };
}

function negativeLogProb(logits: Float32Array, offset: number, vocab: number, token: number): number {
  let max = -Infinity;
  for (let i = 0; i < vocab; i++) max = Math.max(max, logits[offset + i]);
  let sum = 0;
  for (let i = 0; i < vocab; i++) sum += Math.exp(logits[offset + i] - max);
  return -(logits[offset + token] - max - Math.log(sum));
}

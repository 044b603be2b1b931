// Shortens the prompt before prefill, coarse to fine: drops whole low-perplexity source lines, then the lowest self-information tokens segment by segment, each scored given the compressed text before it.
// Jiang et al. 2023, "LLMLingua: Compressing Prompts for Accelerated Inference of Large Language Models" (arXiv 2310.05736); lines stand in for its demonstrations, no distribution alignment.
import { KvlensError } from '../../errors';
import { SIZE_PARAMS, type MethodDefinition } from '../definition';
import type { ConditionalScorer } from '../method';
import { range, topK } from '../scores';

// The same ratio as token dropping (fraction removed), applied to prompt tokens instead of cache entries.
const RATIO_PARAM = SIZE_PARAMS.find((p) => p.name === 'ratio')!;

/** Contiguous runs of middle-token indices, one per source line (or one per token when line starts are unknown). */
function lineUnits(from: number, to: number, lineStarts: readonly number[] | undefined): number[][] {
  if (!lineStarts) return range(from, to).map((i) => [i]);
  const starts = new Set(lineStarts);
  const units: number[][] = [];
  for (let i = from; i < to; i++) {
    if (units.length === 0 || starts.has(i)) units.push([]);
    units[units.length - 1].push(i);
  }
  return units;
}

/**
 * The budget controller: the lines with the highest mean self-information (perplexity) are kept whole, most surprising
 * first, as long as they fit in `budget` tokens. Returns the kept token indices in prompt order.
 */
function keepSurprisingLines(units: number[][], information: Float32Array, budget: number): number[] {
  const mean = (unit: number[]) => unit.reduce((sum, i) => sum + information[i], 0) / unit.length;
  const ranked = units.map((unit, order) => ({ unit, order, score: mean(unit) })).sort((a, b) => b.score - a.score || a.order - b.order);
  const kept: { unit: number[]; order: number }[] = [];
  let used = 0;
  for (const candidate of ranked) {
    if (used + candidate.unit.length > budget) continue;
    kept.push(candidate);
    used += candidate.unit.length;
  }
  return kept.sort((a, b) => a.order - b.order).flatMap((k) => k.unit);
}

/**
 * Iterative token-level compression: `candidates` in segments of `segment` tokens; each segment is scored given the prefix
 * and the tokens already kept, keeps its share of `keep` by self-information, and its kept tokens become context for the next.
 */
async function keepInformativeTokens(
  tokens: number[],
  prefix: number,
  candidates: number[],
  keep: number,
  segment: number,
  scorer: ConditionalScorer,
): Promise<number[]> {
  await scorer.commit(tokens.slice(0, prefix));
  const kept: number[] = [];
  for (let start = 0; start < candidates.length; start += segment) {
    const part = candidates.slice(start, start + segment);
    // Cumulative rounding: the shares add up to exactly `keep`.
    const quota = Math.round((keep * (start + part.length)) / candidates.length) - kept.length;
    const scores = await scorer.score(part.map((i) => tokens[i]));
    if (scores.length !== part.length) throw new KvlensError(`llmlingua: the scorer returned ${scores.length} values for ${part.length} tokens`);
    const chosen = topK((j) => scores[j], range(0, part.length), quota).map((j) => part[j]);
    kept.push(...chosen);
    await scorer.commit(chosen.map((i) => tokens[i]));
  }
  return kept;
}

export const llmlingua: MethodDefinition = {
  name: 'llmlingua',
  family: 'prompt-compression',
  phases: ['before-prefill'],
  summary: 'drops low-perplexity lines, then low-information tokens segment by segment, before prefill; keeps the start and the question',
  params: [
    { ...RATIO_PARAM, description: 'fraction of the compressible tokens (between the kept start and the question) removed' },
    { name: 'prefix', default: 4, min: 0, max: 1024, integer: true, description: 'first tokens always kept (BOS, system preamble)' },
    {
      name: 'coarse',
      default: 2,
      min: 1,
      max: 100,
      integer: false,
      description: 'the line stage keeps whole lines up to this many times the final budget; the token stage trims the rest (1: lines only)',
    },
    { name: 'segment', default: 200, min: 1, max: 65536, integer: true, description: 'tokens scored per step of the iterative token stage' },
  ],
  paper: {
    authors: 'Jiang, Wu, Lin, Yang, Qiu',
    year: 2023,
    title: 'LLMLingua: Compressing Prompts for Accelerated Inference of Large Language Models',
    arxiv: '2310.05736',
  },
  build: (params) => ({
    kind: 'prompt',
    async compressPrompt(tokens, context) {
      const length = tokens.length;
      const suffix = context.protectedSuffix;
      if (!Number.isInteger(suffix) || suffix < 0 || suffix > length) {
        throw new KvlensError(`llmlingua: protected suffix ${suffix} is not within the ${length}-token prompt`);
      }
      const prefix = Math.min(params.prefix!, length - suffix);
      const middle = length - prefix - suffix;
      const keep = Math.floor(middle * (1 - params.ratio!) + 1e-9);
      if (keep >= middle) {
        throw new KvlensError(`llmlingua: nothing to drop: ${middle} compressible tokens between the first ${prefix} and the ${suffix}-token question`);
      }
      const information = await context.selfInformation(tokens);
      if (information.length !== length) {
        throw new KvlensError(`llmlingua: selfInformation returned ${information.length} values for ${length} tokens`);
      }
      const units = lineUnits(prefix, prefix + middle, context.lineStarts);
      const coarseBudget = Math.floor(keep * params.coarse!);
      const lines = coarseBudget >= middle ? range(prefix, prefix + middle) : keepSurprisingLines(units, information, coarseBudget);
      // Without a conditional scorer the token stage ranks by the unconditional self-information already computed.
      const kept = context.conditionalScorer
        ? await keepInformativeTokens(tokens, prefix, lines, Math.min(keep, lines.length), params.segment!, context.conditionalScorer())
        : topK((i) => information[i], lines, Math.min(keep, lines.length));
      return [...range(0, prefix), ...kept, ...range(length - suffix, length)].map((i) => tokens[i]);
    },
  }),
};

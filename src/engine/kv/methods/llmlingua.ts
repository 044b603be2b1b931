// Drops the prompt tokens with the lowest self-information (−log p under the model) before prefill, keeping the first tokens and the question.
// Jiang et al. 2023, "LLMLingua: Compressing Prompts for Accelerated Inference of Large Language Models" (arXiv 2310.05736); token-level, without its segment budget controller.
import { KvlensError } from '../../errors';
import { SIZE_PARAMS, type MethodDefinition } from '../definition';
import { range, topK } from '../scores';

// The same ratio as token dropping (fraction removed), applied to prompt tokens instead of cache entries.
const RATIO_PARAM = SIZE_PARAMS.find((p) => p.name === 'ratio')!;

export const llmlingua: MethodDefinition = {
  name: 'llmlingua',
  family: 'prompt-compression',
  phases: ['before-prefill'],
  summary: 'drops the least informative prompt tokens before prefill, keeping the start and the question',
  params: [
    { ...RATIO_PARAM, description: 'fraction of the compressible tokens (between the kept start and the question) removed' },
    { name: 'prefix', default: 4, min: 0, max: 1024, integer: true, description: 'first tokens always kept (BOS, system preamble)' },
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
      const prefix = Math.min(params.prefix ?? 4, length - suffix);
      const middle = length - prefix - suffix;
      const keep = Math.floor(middle * (1 - (params.ratio ?? 0.5)) + 1e-9);
      if (keep >= middle) {
        throw new KvlensError(`llmlingua: nothing to drop: ${middle} compressible tokens between the first ${prefix} and the ${suffix}-token question`);
      }
      const information = await context.selfInformation(tokens);
      if (information.length !== length) {
        throw new KvlensError(`llmlingua: selfInformation returned ${information.length} values for ${length} tokens`);
      }
      const kept = topK((i) => information[i], range(prefix, prefix + middle), keep);
      return [...range(0, prefix), ...kept, ...range(length - suffix, length)].map((i) => tokens[i]);
    },
  }),
};

// RULER-style variable tracking: a value assigned once and passed along a chain of variables spread through
// real code; the query asks the last variable, so every link must survive compression.
import { buildHaystackSample, checkDepth, occursInWorkspace } from './haystack';
import { needleValue } from './names';
import { Rng } from './random';
import type { CodeFile, GeneratorOptions, Sample } from './types';

/** Assignments after the first: the chain has VARTRACK_HOPS + 1 variables. */
export const VARTRACK_HOPS = 4;

export function generateVartrack(files: readonly CodeFile[], options: GeneratorOptions): Sample {
  const depth = checkDepth(options.depth, 'vartrack');
  const rng = Rng.derive(options.seed, 'vartrack', options.targetLength, depth, options.sampleIndex);
  const names: string[] = [];
  while (names.length <= VARTRACK_HOPS) {
    const name = `v_${rng.hex(4)}`;
    if (!names.includes(name) && !occursInWorkspace(files, name)) names.push(name);
  }
  const value = needleValue(rng);
  // The first assignment sits at the requested depth and the hops after it, in reading order.
  const hopDepths = Array.from({ length: VARTRACK_HOPS }, () => depth + (1 - depth) * rng.float()).sort((a, b) => a - b);
  const insertions = [
    { rel: depth, text: `const ${names[0]} = ${value};` },
    ...hopDepths.map((rel, i) => ({ rel, text: `const ${names[i + 1]} = ${names[i]};` })),
  ];
  const last = names[names.length - 1];
  return buildHaystackSample(files, options, {
    task: 'vartrack',
    insertions,
    probe: 0,
    query: {
      cue: `// ${last} =`,
      question: `Following the assignments in the code above, what is the value of ${last}? Answer with the number only.`,
    },
    answer: String(value),
    meta: { chain: names, value },
  });
}

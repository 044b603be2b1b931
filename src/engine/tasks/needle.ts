// The needle probe shared with the embedded default model: real files, each under a `// file: <path>` line,
// one `const NAME = VALUE;` line at relative depth d, and a last line `// NAME =` for the model to complete.
import { buildHaystackSample, checkDepth, occursInWorkspace } from './haystack';
import { needleValue, uniqueSuffixedName, wordPair } from './names';
import { Rng } from './random';
import type { CodeFile, GeneratorOptions, Sample } from './types';

export function needleLine(name: string, value: number): string {
  return `const ${name} = ${value};`;
}

export function queryCue(name: string): string {
  return `// ${name} =`;
}

export function generateNeedle(files: readonly CodeFile[], options: GeneratorOptions): Sample {
  const depth = checkDepth(options.depth, 'needle');
  const rng = Rng.derive(options.seed, 'needle', options.targetLength, depth, options.sampleIndex);
  const taken = new Set<string>();
  let name = uniqueSuffixedName(rng, wordPair(rng), '', taken);
  for (let attempt = 0; attempt < 16 && occursInWorkspace(files, name); attempt++) name = uniqueSuffixedName(rng, wordPair(rng), '', taken);
  const value = needleValue(rng);
  return buildHaystackSample(files, options, {
    task: 'needle',
    insertions: [{ rel: depth, text: needleLine(name, value) }],
    probe: 0,
    query: {
      cue: queryCue(name),
      question: `What is the value of ${name} in the code above? Answer with the number only.`,
    },
    answer: String(value),
    meta: { name, value },
  });
}

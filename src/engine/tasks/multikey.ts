// RULER-style multi-key retrieval: several definitions share one word and differ only in their hex suffix
// and value; exactly one is asked, so a method must keep the right one, not just the word.
import { buildHaystackSample, checkDepth, occursInWorkspace } from './haystack';
import { needleLine, queryCue } from './needle';
import { distinctValues, uniqueSuffixedName, wordPair } from './names';
import { Rng } from './random';
import type { CodeFile, GeneratorOptions, Sample } from './types';

export const MULTIKEY_KEYS = 4;

export function generateMultikey(files: readonly CodeFile[], options: GeneratorOptions): Sample {
  const depth = checkDepth(options.depth, 'multikey');
  const rng = Rng.derive(options.seed, 'multikey', options.targetLength, depth, options.sampleIndex);
  let stem = wordPair(rng);
  for (let attempt = 0; attempt < 16 && occursInWorkspace(files, `${stem}_`); attempt++) stem = wordPair(rng);
  const taken = new Set<string>();
  const names = Array.from({ length: MULTIKEY_KEYS }, () => uniqueSuffixedName(rng, stem, '', taken));
  const values = distinctValues(rng, MULTIKEY_KEYS);
  // The asked key sits at the requested depth; the decoys anywhere else.
  const insertions = names.map((name, i) => ({ rel: i === 0 ? depth : rng.float(), text: needleLine(name, values[i]) }));
  return buildHaystackSample(files, options, {
    task: 'multikey',
    insertions,
    probe: 0,
    query: {
      cue: queryCue(names[0]),
      question: `What is the value of ${names[0]} in the code above? Answer with the number only.`,
    },
    answer: String(values[0]),
    meta: { name: names[0], value: values[0], decoys: names.slice(1).map((name, i) => ({ name, value: values[i + 1] })) },
  });
}

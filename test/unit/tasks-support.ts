// Test helpers for the task generators: a real tokenizer (Mistral's sentencepiece BPE shipped by an npm
// package) and small in-memory workspaces.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import type { CodeFile, TokenCounter } from '../../src/engine/tasks/types';

let cached: TokenCounter | null = null;

/** Counts tokens with BOS added, as the model is fed. */
export function realCounter(): TokenCounter {
  if (cached) return cached;
  const dir = join(__dirname, '..', '..', 'node_modules', '@lenml', 'tokenizer-llama2', 'models');
  const tokenizer = new Tokenizer(
    JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8')),
    JSON.parse(readFileSync(join(dir, 'tokenizer_config.json'), 'utf8')),
  );
  cached = { encode: (text: string) => tokenizer.encode(text).ids };
  return cached;
}

/** One token per whitespace-separated word plus one for BOS: predictable, for pure-logic tests. */
export const wordCounter: TokenCounter = {
  encode: (text: string) => [1, ...text.split(/\s+/).filter(Boolean).map((_, i) => i + 2)],
};

/** Real files of this repository as a workspace (source only, sorted). */
export function repoFiles(): CodeFile[] {
  const root = join(__dirname, '..', '..');
  const paths = [
    'src/engine/model/config.ts',
    'src/engine/kv/cache.ts',
    'src/engine/bench/results.ts',
    'src/engine/errors.ts',
    'src/engine/model/types.ts',
    'scripts/build.mjs',
    'scripts/run-tests.mjs',
  ];
  return paths.map((path) => ({ path, language: path.endsWith('.ts') ? 'typescript' : 'javascript', text: readFileSync(join(root, path), 'utf8') }));
}

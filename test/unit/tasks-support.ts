// Test helpers for the task generators: a real tokenizer (Mistral's sentencepiece BPE shipped by an npm
// package) and small in-memory workspaces.
import { readdirSync, readFileSync } from 'node:fs';
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
  cached = { encode: (text: string) => tokenizer.encode(text).ids, decode: (ids: number[]) => tokenizer.decode(ids, { skip_special_tokens: true }) };
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

let fixtureCached: TokenCounter | null = null;

/** The byte-level BPE of the repository's fixture checkpoint (Llama-3 style, BOS added). */
export function fixtureModelCounter(): TokenCounter {
  if (fixtureCached) return fixtureCached;
  const dir = join(__dirname, '..', 'fixtures', 'models', 'llama-gqa-tied-rope3-f32');
  const tokenizer = new Tokenizer(
    JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8')),
    JSON.parse(readFileSync(join(dir, 'tokenizer_config.json'), 'utf8')),
  );
  fixtureCached = { encode: (text: string) => tokenizer.encode(text).ids };
  return fixtureCached;
}

const LANGUAGES: Record<string, string> = { ts: 'typescript', py: 'python', go: 'go', rs: 'rust', js: 'javascript' };

/** The files of a fixture folder under test/fixtures, sorted, read without the scanner. */
export function fixtureFiles(name = 'workspace-shop'): CodeFile[] {
  const root = join(__dirname, '..', 'fixtures', name);
  const out: CodeFile[] = [];
  const walk = (rel: string): void => {
    for (const entry of readdirSync(join(root, rel), { withFileTypes: true })) {
      const path = rel ? `${rel}/${entry.name}` : entry.name;
      if (entry.isDirectory()) walk(path);
      else {
        const language = LANGUAGES[path.split('.').pop() ?? ''];
        if (language) out.push({ path, language, text: readFileSync(join(root, path), 'utf8') });
      }
    }
  };
  walk('');
  return out.sort((a, b) => (a.path < b.path ? -1 : 1));
}

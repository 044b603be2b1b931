import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createMethod } from '../../src/engine/kv';

const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);

test('llmlingua: drops the least informative middle tokens, keeps the start and the question, in order', async () => {
  const tokens = range(0, 30).map((i) => 500 + i);
  // Information rises with the index except for a few surprising early tokens.
  const info = (t: number[]) => Promise.resolve(new Float32Array(t.length).map((_, i) => ([6, 9].includes(i) ? 50 : i / 10)));
  const method = createMethod('llmlingua:ratio=0.5');
  assert.ok(method.compressPrompt);
  const out = await method.compressPrompt(tokens, { selfInformation: info, protectedSuffix: 5 });
  // 30 tokens: first 4 and last 5 kept; the 21 in between keep floor(10.5) = 10: tokens 6 and 9, then the 8 highest (17..24).
  const kept = [...range(0, 4), 6, 9, ...range(17, 25), ...range(25, 30)];
  assert.deepEqual(out, kept.map((i) => 500 + i));
});

test('llmlingua: prefix and ratio parameters', async () => {
  const tokens = range(0, 100);
  const info = (t: number[]) => Promise.resolve(new Float32Array(t.length).map((_, i) => 100 - i)); // earlier = more informative
  const out = await createMethod('llmlingua:ratio=0.75,prefix=0').compressPrompt!(tokens, { selfInformation: info, protectedSuffix: 20 });
  assert.deepEqual(out, [...range(0, 20), ...range(80, 100)]);
});

test('llmlingua: bad inputs are errors', async () => {
  const method = createMethod('llmlingua');
  const info = (t: number[]) => Promise.resolve(new Float32Array(t.length));
  await assert.rejects(method.compressPrompt!(range(0, 10), { selfInformation: info, protectedSuffix: 11 }), /protected suffix 11/);
  await assert.rejects(method.compressPrompt!(range(0, 10), { selfInformation: info, protectedSuffix: 6 }), /nothing to drop/);
  await assert.rejects(
    method.compressPrompt!(range(0, 40), { selfInformation: () => Promise.resolve(new Float32Array(3)), protectedSuffix: 5 }),
    /returned 3 values for 40 tokens/,
  );
});

test('llmlingua composes with cache compression: prompt first, then the cache method', () => {
  const method = createMethod('llmlingua:ratio=0.3+snapkv:ratio=0.5+int8');
  assert.ok(method.compressPrompt);
  assert.equal(method.family, 'prompt-compression+token-dropping+quantization');
  assert.deepEqual(method.needs(512), { window: 32 });
});

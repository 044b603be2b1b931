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
  assert.deepEqual(method.needs(512), { windowSums: [32] });
});

test('llmlingua coarse stage: whole lines with the lowest mean self-information go first', async () => {
  // 40 tokens: prefix 0, question 4; the middle is 6 lines of 6 tokens with mean information 5, 1, 9, 2, 7, 3.
  const tokens = range(0, 40);
  const lineMeans = [5, 1, 9, 2, 7, 3];
  const info = (t: number[]) => Promise.resolve(new Float32Array(t.length).map((_, i) => (i < 36 ? lineMeans[Math.floor(i / 6)] + (i % 6) * 0.01 : 0)));
  const lineStarts = range(0, 7).map((l) => l * 6);
  // ratio 0.5 keeps 18 tokens; coarse=1 gives the line stage exactly that budget: lines 2, 4 and 0, whole.
  const linesOnly = await createMethod('llmlingua:ratio=0.5,prefix=0,coarse=1').compressPrompt!(tokens, { selfInformation: info, protectedSuffix: 4, lineStarts });
  assert.deepEqual(linesOnly, [...range(0, 6), ...range(12, 18), ...range(24, 30), ...range(36, 40)]);
  // Without line starts every token is its own unit: the 18 most informative tokens, whatever their line.
  const tokensOnly = await createMethod('llmlingua:ratio=0.5,prefix=0,coarse=1').compressPrompt!(tokens, { selfInformation: info, protectedSuffix: 4 });
  assert.deepEqual(tokensOnly, linesOnly, 'here the top tokens are the top lines');
  // coarse=1.5: lines 2, 4, 0, 5 fit in 27; then the token stage keeps the 18 highest of those 24 tokens.
  const both = await createMethod('llmlingua:ratio=0.5,prefix=0,coarse=1.5').compressPrompt!(tokens, { selfInformation: info, protectedSuffix: 4, lineStarts });
  assert.deepEqual(both, [...range(0, 6), ...range(12, 18), ...range(24, 30), ...range(36, 40)]);
  const uneven = [0, 5, 1, 9, 2, 7, 3].slice(1);
  const infoUneven = (t: number[]) => Promise.resolve(new Float32Array(t.length).map((_, i) => (i < 36 ? uneven[Math.floor(i / 6)] - (i % 6) : 0)));
  // Line 3 (mean 2 - 2.5) is dropped whole at coarse=1.5 even though its first token (2) beats the last tokens of line 0 (0).
  const lines = await createMethod('llmlingua:ratio=0.5,prefix=0,coarse=1.5').compressPrompt!(tokens, { selfInformation: infoUneven, protectedSuffix: 4, lineStarts });
  assert.ok(!lines.includes(18), 'line 3 dropped with its most informative token');
});

test('llmlingua token stage: each segment is scored given the tokens kept before it', async () => {
  // A scorer for which a token is predictable (0) when the same id was committed earlier, and surprising otherwise
  // (5, a little more for earlier tokens of the segment): repeated content is worth keeping once.
  const committedLog: number[][] = [];
  const scorer = () => {
    const seen = new Set<number>();
    return {
      score: (ids: number[]) => Promise.resolve(Float32Array.from(ids, (id, i) => (seen.has(id) ? 0 : 5 - i / 100))),
      commit: (ids: number[]) => {
        committedLog.push(ids);
        ids.forEach((id) => seen.add(id));
        return Promise.resolve();
      },
    };
  };
  // Prefix 2 tokens, question 2; the middle is 2 segments of 10, the second repeating ids 100..104 before 200..204.
  const tokens = [1, 2, ...range(100, 110), ...range(100, 105), ...range(200, 205), 8, 9];
  const flat = (t: number[]) => Promise.resolve(new Float32Array(t.length).fill(1));
  const out = await createMethod('llmlingua:ratio=0.5,prefix=2,coarse=100,segment=10').compressPrompt!(tokens, {
    selfInformation: flat,
    protectedSuffix: 2,
    conditionalScorer: scorer,
  });
  // Segment 1 keeps its first 5 (100..104). In segment 2 those ids are already in the kept text, so the fresh
  // 200..204 win although 100..104 come first; scored without that context the repeats would have been kept.
  assert.deepEqual(out, [1, 2, ...range(100, 105), ...range(200, 205), 8, 9]);
  assert.deepEqual(committedLog, [[1, 2], range(100, 105), range(200, 205)]);
});

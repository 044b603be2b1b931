// Mamba, Mamba-2 and RWKV-4 against transformers: fixtures written by tools/make_recurrent_fixtures.py hold its fp32
// logits for a whole sequence, for a prefix, for each later token fed one at a time on the prefix's state,
// and 24 tokens of its cached greedy `generate`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { loadRecurrentModel, recurrentArchitectureOf } from '../../src/engine/model/recurrent/load';
import { argmax } from '../../src/engine/model/reference';

const TOLERANCE = 1e-4;
const FIXTURES = join(__dirname, '..', 'fixtures', 'models');

interface RecurrentReference {
  format: string;
  architecture: string;
  vocabSize: number;
  ids: number[];
  logits: number[];
  decode: { prefixLength: number; prefixLastLogits: number[]; steps: { token: number; position: number; logits: number[] }[] };
  greedy: { promptLength: number; tokens: number[] };
}

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  let diff = 0;
  for (let i = 0; i < actual.length; i++) diff = Math.max(diff, Math.abs(actual[i] - expected[i]));
  assert.ok(diff <= TOLERANCE, `${what}: max abs diff ${diff} > ${TOLERANCE}`);
}

const fixtures = readdirSync(FIXTURES).filter((name) => existsSync(join(FIXTURES, name, 'recurrent-reference.json'))).sort();

test('recurrent fixtures are present (Mamba and RWKV parity below must not silently vanish)', () => {
  assert.deepEqual(fixtures, ['mamba-tied-f32', 'mamba2-groups-untied-f32', 'recurrentgemma-window8-f32', 'rwkv4-rescaled-f32']);
});

for (const name of fixtures) {
  test(`transformers parity: ${name} (every position, prefix, decode on the carried state, 24 greedy tokens)`, () => {
    const dir = join(FIXTURES, name);
    const expected = JSON.parse(readFileSync(join(dir, 'recurrent-reference.json'), 'utf8')) as RecurrentReference;
    assert.equal(expected.format, 'kvlens-recurrent-reference-v1');
    assert.equal(recurrentArchitectureOf(dir), expected.architecture);
    const { forward } = loadRecurrentModel(dir);
    assert.equal(forward.config.vocabSize, expected.vocabSize);

    assertClose(forward.forward(expected.ids, forward.initialState(), 'all'), expected.logits, `${name} logits of every position`);

    const state = forward.initialState();
    const before = state.bytes();
    const prefix = expected.ids.slice(0, expected.decode.prefixLength);
    assertClose(forward.forward(prefix, state, 'last'), expected.decode.prefixLastLogits, `${name} prefix last logits`);
    const afterPrefill = state.clone();
    for (const step of expected.decode.steps) {
      assertClose(forward.forward([step.token], state, 'last'), step.logits, `${name} decode at ${step.position}`);
    }
    // The state is what the model carries: the same bytes after 40 tokens as after 48, as before any.
    assert.equal(state.bytes(), before);
    assert.equal(afterPrefill.bytes(), before);

    // Prefill in two calls equals prefill in one (the state really carries everything between calls).
    const split = forward.initialState();
    forward.forward(prefix.slice(0, 17), split, 'last');
    assertClose(forward.forward(prefix.slice(17), split, 'last'), expected.decode.prefixLastLogits, `${name} prefix in two calls`);

    // transformers' greedy generate on its cache, asked for min_new_tokens = 24: it masks the EOS logits until then.
    const greedy = afterPrefill.clone();
    let logits = forward.forward(prefix, forward.initialState(), 'last');
    const tokens: number[] = [];
    while (tokens.length < expected.greedy.tokens.length) {
      for (const eos of forward.config.eosTokenIds) logits[eos] = -Infinity;
      const token = argmax(logits);
      tokens.push(token);
      logits = forward.forward([token], greedy, 'last');
    }
    assert.deepEqual(tokens, expected.greedy.tokens);
  });
}

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { editSimilarity, levenshtein, normalizeAnswer, scoreContinuation } from '../../src/engine/tasks/scoring';

const close = (a: number, b: number) => assert.ok(Math.abs(a - b) < 1e-12, `${a} != ${b}`);

test('levenshtein on pairs worked out by hand', () => {
  assert.equal(levenshtein('kitten', 'sitting'), 3); // k→s, e→i, +g
  assert.equal(levenshtein('flaw', 'lawn'), 2); // -f, +n
  assert.equal(levenshtein('', 'abc'), 3);
  assert.equal(levenshtein('abc', 'abc'), 0);
  assert.equal(levenshtein('héllo', 'hello'), 1);
  assert.equal(levenshtein('a😀b', 'ab'), 1, 'an emoji is one character, not two UTF-16 units');
});

test('edit similarity is 1 − distance / longer length', () => {
  close(editSimilarity('kitten', 'sitting'), 1 - 3 / 7);
  close(editSimilarity('flaw', 'lawn'), 0.5);
  close(editSimilarity('', ''), 1);
  close(editSimilarity('abc', ''), 0);
});

test('edit-similarity scoring takes the first non-blank line of the continuation, trimmed', () => {
  const s = scoreContinuation('edit-similarity', '  return total;', '\n\n    return total;\n}\n');
  assert.equal(s.answer, 'return total;');
  close(s.score, 1);
  assert.equal(s.exact, true);
  const t = scoreContinuation('edit-similarity', 'return total;', 'return totals;\n');
  close(t.score, 1 - 1 / 14);
  assert.equal(t.exact, false);
  const empty = scoreContinuation('edit-similarity', 'x = 1', '   \n');
  close(empty.score, 0);
});

test('exact scoring of an integer answer uses the first integer of the continuation', () => {
  assert.deepEqual(scoreContinuation('exact', '48213', ' 48213;\nconst next = 2;'), { score: 1, exact: true, answer: '48213' });
  assert.equal(scoreContinuation('exact', '48213', ' 4821;').exact, false);
  assert.equal(scoreContinuation('exact', '48213', ' 482130;').exact, false);
  assert.equal(scoreContinuation('exact', '7', ' 07;').exact, true, 'compared as numbers');
  assert.equal(scoreContinuation('exact', '70', ' 7;').exact, false);
  assert.deepEqual(scoreContinuation('exact', '7', ' none'), { score: 0, exact: false, answer: '' });
  assert.equal(scoreContinuation('exact', '12', 'value is 12 (twelve)').exact, true);
});

test('exact scoring of a text answer is a normalised match, with alternatives', () => {
  assert.equal(normalizeAnswer('  The  Quick, brown-fox! '), 'quick brown fox');
  assert.equal(scoreContinuation('exact', 'Paris', ' paris.\nIt is the capital.').exact, true);
  assert.equal(scoreContinuation('exact', 'Paris', ' Lyon').exact, false);
  assert.equal(scoreContinuation('exact', 'New York City', 'NYC', ['nyc']).exact, true);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hashString, Rng } from '../../src/engine/tasks/random';
import { needleValue, wordPair } from '../../src/engine/tasks/names';

test('FNV-1a hash matches the published 32-bit test vectors', () => {
  assert.equal(hashString(''), 0x811c9dc5);
  assert.equal(hashString('a'), 0xe40c292c);
  assert.equal(hashString('foobar'), 0xbf9cf968);
});

test('a seeded stream repeats exactly and differs between seeds', () => {
  const draw = (seed: number) => Array.from({ length: 20 }, ((rng) => () => rng.float())(new Rng(seed)));
  assert.deepEqual(draw(42), draw(42));
  assert.notDeepEqual(draw(42), draw(43));
  assert.notDeepEqual(Rng.derive(1, 'needle', 0).float(), Rng.derive(1, 'needle', 1).float());
});

test('draws stay in range and spread over it', () => {
  const rng = new Rng(7);
  const counts = new Array(10).fill(0);
  for (let i = 0; i < 10_000; i++) {
    const x = rng.float();
    assert.ok(x >= 0 && x < 1);
    counts[rng.int(0, 9)]++;
  }
  // Each bucket expects 1000; 6 standard deviations is ~180.
  for (const c of counts) assert.ok(Math.abs(c - 1000) < 180, `${counts}`);
  const shuffled = rng.shuffle([...Array(50).keys()]);
  assert.deepEqual([...shuffled].sort((a, b) => a - b), [...Array(50).keys()]);
  assert.match(rng.hex(4), /^[0-9a-f]{4}$/);
});

test('needle names and values have the probe format', () => {
  const rng = new Rng(3);
  const digits = new Set<number>();
  for (let i = 0; i < 500; i++) {
    assert.match(wordPair(rng), /^[A-Z]+_[A-Z]+$/);
    const value = needleValue(rng);
    assert.match(String(value), /^[1-9]\d{0,5}$/);
    digits.add(String(value).length);
  }
  assert.deepEqual([...digits].sort(), [1, 2, 3, 4, 5, 6]);
});

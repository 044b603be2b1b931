import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tokenLines, keptFractions, retainedContext } from '../../src/engine/bench/retained';
import type { LayerKV } from '../../src/engine/kv/cache';

test('tokenLines puts each token on the line it starts on', () => {
  // "ab\ncd\n\nef" split as: "a" "b\n" "cd" "\n" "\n" "ef"
  assert.deepEqual(Array.from(tokenLines(['a', 'b\n', 'cd', '\n', '\n', 'ef'])), [0, 0, 1, 1, 2, 3]);
});

function layer(positions: number[][], valid: number[][] | null = null): LayerKV {
  const heads = positions[0].length;
  return {
    numKvHeads: heads,
    headDim: 1,
    length: positions.length,
    keys: new Float32Array(positions.length * heads),
    values: new Float32Array(positions.length * heads),
    valid: valid ? Uint8Array.from(valid.flat()) : null,
    positions: Int32Array.from(positions.flat()),
  };
}

test('keptFractions counts the layer/head pairs holding each position, ignoring invalid slots', () => {
  // 2 layers × 2 heads; prompt of 4 tokens.
  const l0 = layer([[0, 0], [3, 1]]);
  const l1 = layer([[0, 2], [3, -1]], [[1, 1], [1, 0]]);
  assert.deepEqual(Array.from(keptFractions([l0, l1], 4)), [3 / 4, 1 / 4, 1 / 4, 2 / 4]);
});

test('retainedContext maps kept prompt lines to source line ranges per file', () => {
  // Prompt lines: 0 header, 1-3 = a.ts lines 10-12, 4 header, 5-6 = b.py lines 0-1.
  const segments = [
    { promptLine: 1, file: 'a.ts', startLine: 10, lineCount: 3 },
    { promptLine: 5, file: 'b.py', startLine: 0, lineCount: 2 },
  ];
  // Two tokens per prompt line.
  const lineOfToken = Int32Array.from([0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6]);
  const fractions = Float32Array.from([1, 1, 1, 1, 0, 0, 1, 0.5, 1, 1, 0.2, 0.2, 1, 0]);
  assert.deepEqual(retainedContext('snapkv', segments, lineOfToken, fractions), [
    { method: 'snapkv', file: 'a.ts', keptLines: [[10, 10], [12, 12]] },
    { method: 'snapkv', file: 'b.py', keptLines: [[1, 1]] },
  ]);
});

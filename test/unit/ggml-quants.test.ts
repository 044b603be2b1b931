import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ggmlReferences } from '../helpers/ggml-reference';
import { GGML_BLOCK_FORMATS, dequantizeBlocks } from '../../src/engine/model/ggmlQuants';

// Random blocks and gguf-py's dequantization of them.
const references = ggmlReferences();

test('every block format kvlens reads has a gguf-py reference', () => {
  const covered = new Set(Object.values(references).map((r) => r.typeId));
  for (const [id, format] of Object.entries(GGML_BLOCK_FORMATS)) assert.ok(covered.has(Number(id)), `${format.dtype} has no reference blocks`);
});

for (const [name, ref] of Object.entries(references)) {
  test(`${name} dequantizes like gguf-py`, () => {
    const format = GGML_BLOCK_FORMATS[ref.typeId];
    assert.ok(format, `type id ${ref.typeId} (${name}) is not readable`);
    assert.equal(format.dtype, name);
    assert.equal(format.blockElements, ref.blockElements);
    assert.equal(format.blockBytes, ref.blockBytes);
    const bytes = new Uint8Array(Buffer.from(ref.bytes, 'base64'));
    const expectedBuffer = Buffer.from(ref.values, 'base64');
    const expected = new Float32Array(expectedBuffer.buffer, expectedBuffer.byteOffset, expectedBuffer.byteLength / 4);
    const actual = new Float32Array(expected.length);
    // a byte view that does not start at offset 0 of its buffer, as tensors read from a file are
    const padded = new Uint8Array(bytes.length + 3);
    padded.set(bytes, 3);
    dequantizeBlocks(format, padded.subarray(3), actual);
    let worst = 0;
    let worstAt = -1;
    for (let i = 0; i < expected.length; i++) {
      const err = Math.abs(actual[i] - expected[i]) / Math.max(1e-3, Math.abs(expected[i]));
      if (err > worst) {
        worst = err;
        worstAt = i;
      }
    }
    assert.ok(worst < 1e-5, `${name}: element ${worstAt} is ${actual[worstAt]}, gguf-py gives ${expected[worstAt]}`);
    assert.ok(expected.some((v) => v !== 0), 'reference is not all zeros');
  });
}

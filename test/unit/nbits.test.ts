import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';
import { ggmlReferences, type GgmlReference } from '../helpers/ggml-reference';
import { GGML_BLOCK_FORMATS } from '../../src/engine/model/ggmlQuants';
import { decodeRows, type StoredTensorInfo, type WeightSource } from '../../src/engine/model/weightSource';
import { dequantizeNBits, nbitsBytes, nbitsLayout, toNBits, type NBitsMatrix } from '../../src/engine/model/onnx/nbits';
import { modelProto, nodeProto, tensorProto, valueInfo, OnnxDataType } from '../../src/engine/model/onnx/protobuf';
import { seededRandom } from '../helpers/random-model';

// Random blocks and gguf-py's dequantization of them (tools/make_ggml_quant_fixture.py): five blocks per
// type, seen here as a [5, blockElements] matrix.
const references = ggmlReferences();

function blockSource(ref: GgmlReference): { source: WeightSource; ggufValues: Float32Array; rows: number; columns: number } {
  const format = GGML_BLOCK_FORMATS[ref.typeId];
  const raw = new Uint8Array(Buffer.from(ref.bytes, 'base64'));
  const valuesBuffer = Buffer.from(ref.values, 'base64');
  const ggufValues = new Float32Array(valuesBuffer.buffer.slice(valuesBuffer.byteOffset, valuesBuffer.byteOffset + valuesBuffer.byteLength));
  const rows = raw.length / ref.blockBytes;
  const columns = ref.blockElements;
  const info: StoredTensorInfo = { shape: [rows, columns], dtype: format.dtype, rowBytes: ref.blockBytes, block: format };
  const rawRows = (_: string, start: number, end: number) => raw.subarray(start * ref.blockBytes, end * ref.blockBytes);
  const source: WeightSource = {
    origin: 'fixture',
    names: ['w'],
    info: (name) => (name === 'w' ? info : undefined),
    rawRows,
    rows: (name, start, end) => decodeRows(info, rawRows(name, start, end), end - start),
  };
  return { source, ggufValues, rows, columns };
}

/** y = x · Wᵀ through onnxruntime's MatMulNBits with fp32 activations (accuracy_level 0). */
async function matMulNBits(m: NBitsMatrix, x: Float32Array, tokens: number): Promise<Float32Array> {
  const blocks = Math.ceil(m.k / m.blockSize);
  const initializers = [
    tensorProto('b', OnnxDataType.UINT8, [m.n, blocks, (m.blockSize * m.bits) / 8], m.packed),
    tensorProto('scales', OnnxDataType.FLOAT, [m.n * blocks], new Uint8Array(m.scales.buffer)),
  ];
  const inputs = ['x', 'b', 'scales'];
  if (m.zeroPoints) {
    initializers.push(tensorProto('zeros', OnnxDataType.FLOAT, [m.n * blocks], new Uint8Array(m.zeroPoints.buffer)));
    inputs.push('zeros');
  }
  const attributes = {
    K: { kind: 'int' as const, value: m.k },
    N: { kind: 'int' as const, value: m.n },
    bits: { kind: 'int' as const, value: m.bits },
    block_size: { kind: 'int' as const, value: m.blockSize },
    accuracy_level: { kind: 'int' as const, value: 0 },
  };
  const bytes = modelProto(
    {
      name: 'nbits',
      nodes: [nodeProto('MatMulNBits', inputs, ['y'], 'mm', attributes, 'com.microsoft')],
      initializers,
      inputs: [valueInfo('x', OnnxDataType.FLOAT, [tokens, m.k])],
      outputs: [valueInfo('y', OnnxDataType.FLOAT, [tokens, m.n])],
    },
    [
      { domain: '', version: 17 },
      { domain: 'com.microsoft', version: 1 },
    ],
  );
  const session = await ort.InferenceSession.create(bytes, { executionProviders: ['cpu'], intraOpNumThreads: 1 });
  try {
    const out = await session.run({ x: new ort.Tensor('float32', x, [tokens, m.k]) });
    return out.y.data as Float32Array;
  } finally {
    await session.release();
  }
}

function referenceMatmul(x: Float32Array, w: Float32Array, tokens: number, n: number, k: number): Float64Array {
  const y = new Float64Array(tokens * n);
  for (let t = 0; t < tokens; t++) for (let o = 0; o < n; o++) {
    let acc = 0;
    for (let i = 0; i < k; i++) acc += x[t * k + i] * w[o * k + i];
    y[t * n + o] = acc;
  }
  return y;
}

for (const [name, ref] of Object.entries(references)) {
  test(`${name} blocks through MatMulNBits equal gguf-py's dequantized matmul`, async () => {
    const { source, ggufValues, rows, columns } = blockSource(ref);
    const m = toNBits(source, 'w', 'int8');
    const layout = nbitsLayout(GGML_BLOCK_FORMATS[ref.typeId].dtype, null)!;
    assert.equal(m.packed.length + m.scales.byteLength + (m.zeroPoints?.byteLength ?? 0), nbitsBytes(layout, rows, columns));
    const held = dequantizeNBits(m);
    let worst = 0;
    for (let i = 0; i < held.length; i++) {
      const error = Math.abs(held[i] - ggufValues[i]);
      if (m.exact) worst = Math.max(worst, error / Math.max(1e-3, Math.abs(ggufValues[i])));
      else {
        // Requantized to symmetric 8 bits: at most half a step of its block.
        const start = i - (i % m.blockSize);
        let absMax = 0;
        for (let j = start; j < start + m.blockSize; j++) absMax = Math.max(absMax, Math.abs(ggufValues[j]));
        worst = Math.max(worst, error / (absMax / 254 + 1e-9));
      }
    }
    assert.ok(m.exact ? worst < 1e-5 : worst <= 1.0001, `${name}: worst ${m.exact ? 'relative error' : 'error in half-steps'} ${worst}`);

    const tokens = 3;
    const random = seededRandom(ref.typeId);
    const x = Float32Array.from({ length: tokens * columns }, () => random() * 2 - 1);
    const y = await matMulNBits(m, x, tokens);
    // Exact formats against gguf-py's own values; requantized ones against what they hold.
    const expected = referenceMatmul(x, m.exact ? ggufValues : held, tokens, rows, columns);
    const scale = Math.max(...Array.from(expected, Math.abs));
    assert.ok(scale > 0);
    for (let i = 0; i < y.length; i++) assert.ok(Math.abs(y[i] - expected[i]) <= 1e-4 * scale, `${name}: y[${i}] = ${y[i]}, reference ${expected[i]}`);
  });
}

test('float matrices: int8 (symmetric) and int4 (block min and max are codes 0 and 15) stay within half a step; codes pack low nibble first; under 1/3.5 and 1/5 of fp32', () => {
  const random = seededRandom(11);
  const n = 7;
  const k = 80; // not a multiple of the block: the last block is padded
  const weight = Float32Array.from({ length: n * k }, () => random() * 2 - 1);
  weight.fill(0.25, 32, 64); // a constant block
  const info: StoredTensorInfo = { shape: [n, k], dtype: 'F32', rowBytes: 4 * k, block: null };
  const source: WeightSource = {
    origin: 'test',
    names: ['w'],
    info: () => info,
    rows: (_, start, end) => weight.subarray(start * k, end * k),
    rawRows: (_, start, end) => new Uint8Array(weight.buffer, start * 4 * k, (end - start) * 4 * k),
  };
  const blocksPerRow = Math.ceil(k / 32);
  const blockOf = (i: number): { from: number; to: number; index: number } => {
    const row = Math.floor(i / k);
    const b = Math.floor((i % k) / 32);
    return { from: row * k + b * 32, to: Math.min(row * k + b * 32 + 32, (row + 1) * k), index: row * blocksPerRow + b };
  };
  for (const scheme of ['int8', 'int4'] as const) {
    const m = toNBits(source, 'w', scheme);
    assert.equal(m.scales.length, n * blocksPerRow);
    const back = dequantizeNBits(m);
    for (let i = 0; i < weight.length; i++) {
      const { from, to } = blockOf(i);
      const block = Array.from(weight.subarray(from, to));
      const step = scheme === 'int8' ? Math.max(...block.map(Math.abs)) / 127 : (Math.max(...block) - Math.min(...block)) / 15;
      assert.ok(Math.abs(back[i] - weight[i]) <= step / 2 + 1e-6, `${scheme} element ${i}: ${back[i]} for ${weight[i]}`);
    }
    const bytes = m.packed.length + m.scales.byteLength + (m.zeroPoints?.byteLength ?? 0);
    assert.equal(bytes, nbitsBytes(nbitsLayout('F32', scheme)!, n, k));
    assert.ok(bytes < (n * blocksPerRow * 32 * 4) / (scheme === 'int8' ? 3.5 : 5), `${scheme}: ${bytes} bytes`); // against fp32 of the padded blocks
  }
  const int4 = toNBits(source, 'w', 'int4');
  const code = (i: number): number => Math.round(weight[i] / int4.scales[0] + int4.zeroPoints![0]);
  assert.equal(int4.packed[0], code(0) | (code(1) << 4)); // element 0 in the low nibble of byte 0, element 1 in its high nibble
  for (let b = 0; b < n * blocksPerRow; b++) {
    const row = Math.floor(b / blocksPerRow);
    const from = row * k + (b % blocksPerRow) * 32;
    const block = Array.from(weight.subarray(from, Math.min(from + 32, (row + 1) * k)));
    const min = Math.min(...block);
    const max = Math.max(...block);
    // the block's minimum is code 0 and (unless constant) its maximum code 15, both exact
    assert.ok(Math.abs((0 - int4.zeroPoints![b]) * int4.scales[b] - min) < 1e-6, `block ${b} min`);
    if (max > min) assert.ok(Math.abs((15 - int4.zeroPoints![b]) * int4.scales[b] - max) < 1e-6, `block ${b} max`);
  }
});

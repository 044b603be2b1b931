import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';
import { MessageWriter, modelProto, nodeProto, tensorProto, valueInfo, OnnxDataType } from '../../src/engine/model/onnx/protobuf';
import { buildDecoderGraph } from '../../src/engine/model/onnx/graph';
import { ExternalFileSink } from '../../src/engine/model/onnx/initializers';
import { weightMapSource, type WeightSource } from '../../src/engine/model/weightSource';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chunkBoundaries, defaultChunkSize } from '../../src/engine/model/prefill';
import { testConfig, randomWeights } from '../helpers/random-model';

test('protobuf: varints, negative int64s and nested lengths are encoded as the wire format specifies', () => {
  // field 1 varint 300 -> tag 0x08, then 0xac 0x02 (protobuf documentation example)
  assert.deepEqual(Array.from(new MessageWriter().int(1, 300).finish()), [0x08, 0xac, 0x02]);
  // negative int64: ten bytes of two's complement
  assert.deepEqual(Array.from(new MessageWriter().int(1, -1).finish()), [0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
  // field 2 string "hi" -> 0x12 0x02 'h' 'i'; nested in field 3 -> 0x1a 0x04 ...
  const inner = new MessageWriter().string(2, 'hi');
  assert.deepEqual(Array.from(new MessageWriter().message(3, inner).finish()), [0x1a, 0x04, 0x12, 0x02, 0x68, 0x69]);
  // packed [1, 150] in field 4 -> 0x22 len=3, 0x01, 0x96 0x01
  assert.deepEqual(Array.from(new MessageWriter().packedInts(4, [1, 150]).finish()), [0x22, 0x03, 0x01, 0x96, 0x01]);
});

test('protobuf: a hand-built model (initializer, negative attribute, dynamic dims) runs in onnxruntime', async () => {
  const weight = Float32Array.of(1, 2, 3, 4, 5, 6);
  const bytes = modelProto(
    {
      name: 'tiny',
      nodes: [
        nodeProto('Gather', ['table', 'ids'], ['rows'], 'gather', { axis: { kind: 'int', value: 0 } }),
        nodeProto('Softmax', ['rows'], ['probs'], 'softmax', { axis: { kind: 'int', value: -1 } }),
      ],
      initializers: [tensorProto('table', OnnxDataType.FLOAT, [3, 2], new Uint8Array(weight.buffer))],
      inputs: [valueInfo('ids', OnnxDataType.INT64, ['n'])],
      outputs: [valueInfo('probs', OnnxDataType.FLOAT, ['n', 2])],
    },
    [{ domain: '', version: 17 }],
  );
  const session = await ort.InferenceSession.create(bytes);
  const out = await session.run({ ids: new ort.Tensor('int64', BigInt64Array.of(2n, 0n), [2]) });
  const probs = out.probs.data as Float32Array;
  assert.deepEqual(out.probs.dims, [2, 2]);
  const softmax = (a: number, b: number): number[] => [Math.exp(a) / (Math.exp(a) + Math.exp(b)), Math.exp(b) / (Math.exp(a) + Math.exp(b))];
  const expected = [...softmax(5, 6), ...softmax(1, 2)];
  for (let i = 0; i < 4; i++) assert.ok(Math.abs(probs[i] - expected[i]) < 1e-6);
  await session.release();
});

test('decoder graph: documented inputs and outputs; one graph serves generation and statistics', async () => {
  const config = testConfig({ numLayers: 2 });
  const weights = randomWeights(config, 2);
  const graph = buildDecoderGraph(config, weights, { quantization: 'fp32' });
  assert.deepEqual(graph.inputNames.slice(0, 7), ['inputs_embeds', 'position_ids', 'logits_rows', 'causal_bias', 'stats_rows', 'sum_rows', 'sum_span']);
  assert.deepEqual(graph.inputNames.slice(7), ['past_key_0', 'past_value_0', 'past_bias_0', 'past_key_1', 'past_value_1', 'past_bias_1']);
  assert.deepEqual(graph.outputNames, [
    'new_key_0', 'new_value_0', 'new_key_1', 'new_value_1', 'logits',
    'window_0', 'key_sums_0', 'window_sums_0', 'queries_0', 'window_1', 'key_sums_1', 'window_sums_1', 'queries_1',
  ]);
  const session = await ort.InferenceSession.create(graph.bytes);
  assert.deepEqual([...session.inputNames].sort(), [...graph.inputNames].sort());
  assert.deepEqual([...session.outputNames].sort(), [...graph.outputNames].sort());
  await session.release();
});

test('decoder graph: weights are stored once (the embedding table stays outside; a tied lm_head is the one vocabulary matrix)', () => {
  const tied = testConfig({ tieWordEmbeddings: true, vocabSize: 2000, hiddenSize: 64 });
  const untied = testConfig({ tieWordEmbeddings: false, vocabSize: 2000, hiddenSize: 64 });
  const tiedWeights = randomWeights(tied, 1);
  const untiedWeights = randomWeights(untied, 1);
  const bytesOf = (weights: typeof tiedWeights, skip: string): number =>
    [...weights].filter(([name]) => name !== skip).reduce((sum, [, t]) => sum + t.data.byteLength, 0);
  // Tied: every tensor once (the embedding as the lm_head). Untied: every tensor but the embedding table.
  assert.equal(buildDecoderGraph(tied, tiedWeights, { quantization: 'fp32' }).weightBytes, bytesOf(tiedWeights, ''));
  assert.equal(buildDecoderGraph(untied, untiedWeights, { quantization: 'fp32' }).weightBytes, bytesOf(untiedWeights, 'model.embed_tokens.weight'));
});

test('decoder graph: external data streams the weights into a page-aligned file that a second build reuses without reading a weight', () => {
  const config = testConfig({ vocabSize: 500, hiddenSize: 64 });
  const weights = randomWeights(config, 3);
  const dir = mkdtempSync(join(tmpdir(), 'kvlens-graph-test-'));
  try {
    const inline = buildDecoderGraph(config, weights, { quantization: 'fp32' });
    const external = buildDecoderGraph(config, weights, { quantization: 'fp32', sink: new ExternalFileSink(dir) });
    assert.ok(external.bytes.length < inline.bytes.length - inline.weightBytes * 0.9, `${external.bytes.length} vs ${inline.bytes.length}`);
    // finish() publishes the file: the index lists aligned (large ones page-aligned), non-overlapping slots inside it
    const first = new ExternalFileSink(dir);
    assert.equal(first.reusing, false);
    buildDecoderGraph(config, weights, { quantization: 'fp32', sink: first });
    first.finish();
    const index = JSON.parse(readFileSync(join(dir, 'weights.json'), 'utf8')) as { tensors: { offset: number; length: number }[] };
    const fileSize = statSync(join(dir, 'weights.bin')).size;
    let end = 0;
    for (const entry of index.tensors) {
      assert.equal(entry.offset % (entry.length >= 65536 ? 4096 : 64), 0);
      assert.ok(entry.offset >= end);
      end = entry.offset + entry.length;
    }
    assert.equal(end, fileSize);
    const again = new ExternalFileSink(dir);
    assert.equal(again.reusing, true);
    const unreadable: WeightSource = {
      ...weightMapSource(weights),
      rows: () => {
        throw new Error('a weight was read');
      },
      rawRows: () => {
        throw new Error('a weight was read');
      },
    };
    const second = buildDecoderGraph(config, unreadable, { quantization: 'fp32', sink: again });
    assert.deepEqual(second.bytes, external.bytes);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('prefill chunking: covers every token once, final chunk holds the attention window', () => {
  const check = (n: number, size: number, minLast: number): void => {
    const chunks = chunkBoundaries(n, size, minLast);
    let expectStart = 0;
    for (const [from, to] of chunks) {
      assert.equal(from, expectStart);
      assert.ok(to > from);
      expectStart = to;
    }
    assert.equal(expectStart, n);
    const [lastFrom, lastTo] = chunks[chunks.length - 1];
    assert.ok(lastTo - lastFrom >= Math.min(minLast, n));
    for (const [from, to] of chunks.slice(0, -1)) assert.ok(to - from <= size);
  };
  for (const n of [1, 5, 16, 17, 100]) for (const size of [1, 4, 16, 512]) for (const w of [0, 1, 7, 32, 200]) check(n, size, w);
  assert.deepEqual(chunkBoundaries(10, 4), [[0, 4], [4, 8], [8, 10]]);
  assert.deepEqual(chunkBoundaries(10, 4, 3), [[0, 4], [4, 7], [7, 10]]);
  assert.throws(() => chunkBoundaries(10, 0), /chunkSize/);
  assert.equal(defaultChunkSize(6, 8192), 512);
  const longChunk = defaultChunkSize(14, 32768);
  assert.ok(longChunk < 512 && longChunk >= 64 && 14 * longChunk * 32768 * 4 <= 256 * 1024 * 1024);
});

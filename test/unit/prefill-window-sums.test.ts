// Window sums are the observation window's rows added up: they must equal the rows a prefill returns when asked for
// them, through both forwards and across chunk boundaries, and a method must choose the same tokens from either.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { createMethod, mergeNeeds } from '../../src/engine/kv';
import { loadModel } from '../../src/engine/model/loader';
import { prefill } from '../../src/engine/model/prefill';
import { createReferenceForward } from '../../src/engine/model/reference';
import { createOnnxForward } from '../../src/engine/model/onnx/onnxForward';

const model = loadModel(join(__dirname, '../fixtures/models/llama-gqa-tied-rope3-f32'));
const reference = createReferenceForward(model);
const onnx = createOnnxForward(model);
const { config } = model;
const n = 150;
const tokens = Array.from({ length: n }, (_, i) => 2 + ((i * 7919) % (config.vocabSize - 2)));
const H = config.numHeads;

/** The last c rows of [H, w, n] window probabilities summed: [H, n]. */
function sumRows(window: Float32Array, w: number, c: number): Float64Array {
  const out = new Float64Array(H * n);
  for (let h = 0; h < H; h++) for (let r = w - c; r < w; r++) for (let k = 0; k < n; k++) out[h * n + k] += window[(h * w + r) * n + k];
  return out;
}

for (const forwardName of ['reference', 'onnx'] as const) {
  test(`window sums (${forwardName}): equal the summed window rows, for each count, in a chunked prefill`, async () => {
    const forward = forwardName === 'reference' ? reference : await onnx;
    const counts = [1, 5, 16];
    const rows = await prefill(forward, tokens, { chunkSize: 48, attention: { window: 16 } });
    const sums = await prefill(forward, tokens, { chunkSize: 48, attention: { windowSums: counts } });
    for (let l = 0; l < config.numLayers; l++) {
      assert.equal(sums.stats?.[l].window, null, 'no rows are returned when only sums are asked for');
      const window = rows.stats?.[l].window as Float32Array;
      for (const c of counts) {
        const got: Float32Array | undefined = sums.stats?.[l].windowSums?.get(c);
        assert.ok(got, `layer ${l} count ${c}`);
        assert.equal(got.length, H * n);
        const expected = sumRows(window, 16, c);
        let worst = 0;
        for (let i = 0; i < expected.length; i++) worst = Math.max(worst, Math.abs(got[i] - expected[i]));
        assert.ok(worst < 1e-5, `layer ${l} count ${c}: ${worst}`);
        // Each query's probabilities add up to one, so c rows add up to c per head.
        let total = 0;
        for (let k = 0; k < n; k++) total += got[k];
        assert.ok(Math.abs(total - c) < 1e-4, `head 0 sums to ${total}, not ${c}`);
      }
    }
  });
}

test('window sums: a count beyond the prompt is clipped to it, and mergeNeeds keeps every distinct count', async () => {
  const short = tokens.slice(0, 6);
  const result = await prefill(reference, short, { attention: { windowSums: [4, 50] } });
  assert.deepEqual([...(result.stats?.[0].windowSums?.keys() ?? [])].sort((a, b) => a - b), [4, 6]);
  assert.deepEqual(mergeNeeds({ windowSums: [8, 1] }, { windowSums: [8, 32] }, { keySums: true }).windowSums, [1, 8, 32]);
});

for (const spec of ['snapkv:ratio=0.5', 'pyramidkv:ratio=0.5', 'adakv:ratio=0.5', 'tova:ratio=0.5', 'chunkkv:ratio=0.5']) {
  test(`${spec} keeps the same tokens from window sums as from window rows`, async () => {
    const method = createMethod(spec);
    const asked = method.needs(n);
    assert.ok(asked.windowSums?.length && !asked.window, `${spec} asks for sums, not rows`);
    const fromSums = await prefill(reference, tokens, { chunkSize: 64, attention: asked });
    const fromRows = await prefill(reference, tokens, { chunkSize: 64, attention: { window: Math.max(...asked.windowSums) } });
    const a = method.compress({ layers: fromSums.layers, stats: fromSums.stats, config }).views();
    const b = method.compress({ layers: fromRows.layers, stats: fromRows.stats, config }).views();
    a.forEach((view, l) => {
      assert.ok(view.length < n, `${spec} evicted tokens in layer ${l}`);
      assert.deepEqual(Array.from(view.positions), Array.from(b[l].positions), `layer ${l}`);
    });
  });
}

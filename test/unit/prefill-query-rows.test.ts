// A prefill asked for the recent queries alone keeps exactly the last rows of what it keeps when asked for all.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { createMethod, mergeNeeds } from '../../src/engine/kv';
import { loadModel } from '../../src/engine/model/loader';
import { prefill } from '../../src/engine/model/prefill';
import { createReferenceForward } from '../../src/engine/model/reference';

const model = loadModel(join(__dirname, '../fixtures/models/llama-gqa-tied-rope3-f32'));
const forward = createReferenceForward(model);
const { config } = model;
const tokens = Array.from({ length: 150 }, (_, i) => 2 + ((i * 7919) % (config.vocabSize - 2)));
const row = config.numHeads * config.headDim;

test('prefill queryRows: the last rows of every query, across chunk boundaries', async () => {
  const every = await prefill(forward, tokens, { chunkSize: 64, attention: { queries: true } });
  for (const rows of [1, 20, 86, 150, 400]) {
    const recent = await prefill(forward, tokens, { chunkSize: 64, attention: { queries: true, queryRows: rows } });
    const kept = Math.min(rows, tokens.length);
    recent.stats?.forEach((layer, l) => {
      const all = every.stats?.[l].queries as Float32Array;
      assert.equal(layer.queries?.length, kept * row, `rows ${rows}`);
      assert.deepEqual(Array.from(layer.queries as Float32Array), Array.from(all.subarray((tokens.length - kept) * row)), `rows ${rows} layer ${l}`);
    });
  }
});

test('mergeNeeds: any request for every query wins; otherwise the most recent rows asked for', () => {
  assert.equal(mergeNeeds({ queries: true, queryRows: 32 }, { queries: true, queryRows: 8 }).queryRows, 32);
  assert.equal(mergeNeeds({ queries: true, queryRows: 32 }, { queries: true }).queryRows, undefined);
  assert.equal(mergeNeeds({ queries: true }, { queries: true, queryRows: 32 }).queryRows, undefined);
  assert.equal(mergeNeeds({ keySums: true }, { queries: true, queryRows: 4 }).queryRows, 4);
});

test('think keeps the same channels from its recent queries as from every query', async () => {
  const think = createMethod('think');
  const every = await prefill(forward, tokens, { chunkSize: 64, attention: mergeNeeds(think.needs(tokens.length), { queries: true }) });
  const recent = await prefill(forward, tokens, { chunkSize: 64, attention: think.needs(tokens.length) });
  assert.ok((recent.stats?.[0].queries?.length ?? 0) < (every.stats?.[0].queries?.length ?? 0), 'fewer rows kept');
  const fromEvery = think.compress({ layers: every.layers, stats: every.stats, config }).views();
  const fromRecent = think.compress({ layers: recent.layers, stats: recent.stats, config }).views();
  fromEvery.forEach((view, l) => assert.deepEqual(Array.from(fromRecent[l].keys), Array.from(view.keys), `layer ${l}`));
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { KvlensError } from '../../src/engine/errors';
import { canonicalSpec, createMethod, listMethods, METHODS, parseSpec, verifyCompression } from '../../src/engine/kv';
import { makePrefill } from './kv-fixture';

test('spec: canonical forms', () => {
  const expected: [string, string][] = [
    ['h2o', 'h2o:ratio=0.5'],
    ['h2o:budget=512', 'h2o:budget=512'],
    ['streamingllm:ratio=0.75', 'streamingllm:ratio=0.75'],
    ['snapkv:window=32,ratio=0.5', 'snapkv:ratio=0.5'],
    ['snapkv:ratio=0.5,window=16', 'snapkv:ratio=0.5,window=16'],
    ['snapkv:kernel=5,ratio=.25,window=16', 'snapkv:ratio=0.25,window=16,kernel=5'],
    ['kivi', 'kivi:bits=2'],
    ['kivi:bits=4,residual=128', 'kivi:bits=4'],
    ['flexgen:bits=4', 'flexgen:bits=4'],
    ['int8', 'int8'],
    ['fp8', 'fp8'],
    ['full', 'full'],
    [' snapkv : ratio = 0.5 + kivi:bits=4 ', 'snapkv:ratio=0.5+kivi:bits=4'],
    ['llmlingua:ratio=0.3+snapkv:budget=64+kivi:bits=4', 'llmlingua:ratio=0.3+snapkv:budget=64+kivi:bits=4'],
    ['random:seed=7', 'random:ratio=0.5,seed=7'],
    ['SnapKV:Ratio=0.25', 'snapkv:ratio=0.25'],
  ];
  for (const [input, canonical] of expected) {
    assert.equal(canonicalSpec(input), canonical, input);
    assert.equal(canonicalSpec(canonical), canonical, `${canonical} is not a fixed point`);
    assert.deepEqual(parseSpec(canonical).stages.map((s) => s.params), parseSpec(input).stages.map((s) => s.params));
  }
});

test('spec: every registered method parses with its defaults and round-trips', () => {
  for (const m of METHODS) {
    const canonical = canonicalSpec(m.name);
    assert.ok(canonical.startsWith(m.name), canonical);
    assert.equal(canonicalSpec(canonical), canonical);
    assert.equal(createMethod(m.name).spec, canonical);
  }
});

test('spec: budget replaces ratio', () => {
  const [stage] = parseSpec('h2o:budget=64').stages;
  assert.equal(stage.params.budget, 64);
  assert.equal(stage.params.ratio, null);
});

function rejects(spec: string, ...fragments: string[]): void {
  assert.throws(
    () => createMethod(spec),
    (error: unknown) => {
      assert.ok(error instanceof KvlensError, `${spec}: not a KvlensError`);
      for (const f of fragments) assert.ok(error.message.includes(f), `${spec}: "${error.message}" lacks "${f}"`);
      return true;
    },
  );
}

test('spec: bad specs are rejected with what is valid', () => {
  rejects('nope', 'unknown method "nope"', 'snapkv', 'kivi', 'llmlingua');
  rejects('h2o:foo=1', 'no parameter "foo"', 'recent', 'budget');
  rejects('h2o:ratio=1.5', 'out of range', '0 < ratio < 1');
  rejects('h2o:ratio=0', 'out of range');
  rejects('h2o:budget=1.5', 'out of range', 'integer');
  rejects('h2o:ratio=abc', 'needs a number');
  rejects('h2o:ratio', 'needs a number');
  rejects('h2o:ratio=0.5,ratio=0.4', 'given twice');
  rejects('h2o:ratio=0.5,budget=10', 'not both');
  rejects('kivi:bits=3', 'bits in {2, 4}');
  rejects('kivi:bits=2+int8', 'two quantization methods');
  rejects('snapkv+h2o', 'two token-dropping methods');
  rejects('kivi:bits=2+llmlingua', 'llmlingua (prompt-compression) must come before kivi');
  rejects('int8+snapkv', 'must come before');
  rejects('full+kivi', 'cannot be combined');
  rejects('h2o+kivi', 'h2o keeps evicting while decoding', 'snapkv');
  assert.equal(canonicalSpec('h2o:budget=64+int8'), 'h2o:budget=64+int8');
  rejects('infllm+int8', 'infllm keeps its own block memory');
  rejects('streamingllm+kivi', 'kivi quantizes groups spanning several tokens', 'int8, fp8');
  rejects('', 'empty method spec');
  rejects('snapkv+', 'empty stage');
  rejects('snapkv:', 'no parameters');
  rejects('snapkv:kernel=4', 'kernel must be odd');
});

test('listMethods: metadata for every method', () => {
  const methods = listMethods();
  assert.equal(methods.length, METHODS.length);
  assert.equal(new Set(methods.map((m) => m.name)).size, methods.length);
  const families = new Set(['baseline', 'quantization', 'token-dropping', 'prompt-compression']);
  for (const m of methods) {
    assert.ok(families.has(m.family), m.name);
    assert.ok(m.summary.length > 10);
    for (const phase of m.phases) assert.ok(['before-prefill', 'after-prefill', 'decode'].includes(phase));
    for (const p of m.params) {
      assert.ok(p.description.length > 5, `${m.name}.${p.name}`);
      assert.ok(p.min <= p.max);
      if (p.default !== null) assert.ok(p.default >= p.min && p.default <= p.max, `${m.name}.${p.name} default out of range`);
    }
    // The baselines have no paper, and neither have llama.cpp's cache formats (ggml's own, unpublished).
    if (m.name !== 'full' && m.name !== 'random' && m.name !== 'llamacpp') {
      assert.ok(m.paper, `${m.name} has no paper`);
      assert.match(m.paper.arxiv, /^\d{4}\.\d{5}$/);
      assert.ok(m.paper.year >= 2022 && m.paper.title.length > 10);
    }
  }
  assert.deepEqual(JSON.parse(JSON.stringify(methods)), methods, 'not JSON-serialisable as is');
  for (const name of ['full', 'random', 'knorm', 'streamingllm', 'h2o', 'snapkv', 'pyramidkv', 'tova', 'adakv', 'infllm', 'kivi', 'flexgen', 'int8', 'fp8', 'llmlingua']) {
    assert.ok(methods.some((m) => m.name === name), name);
  }
});

test('every method file opens with a two-line comment', () => {
  const dir = join(__dirname, '../../src/engine/kv/methods');
  for (const file of readdirSync(dir)) {
    const lines = readFileSync(join(dir, file), 'utf8').split('\n');
    assert.ok(lines[0].startsWith('// ') && lines[1].startsWith('// '), file);
  }
});

test('full: keeps everything and says it does not compress', () => {
  const prefill = makePrefill(50);
  const method = createMethod('full');
  assert.deepEqual(method.needs(50), {});
  const cache = method.compress({ layers: prefill.layers, stats: null, config: prefill.config });
  const result = verifyCompression(method, cache, prefill.layers, prefill.config);
  assert.equal(result.note, 'no compression (full cache)');
  assert.equal(result.promise.compresses, false);
  assert.deepEqual(cache.tokensPerHead(), [[50, 50], [50, 50], [50, 50]]);
  const view = cache.views()[1];
  assert.deepEqual(Array.from(view.keys), Array.from(prefill.keys[1]));
});

test('ratio keeps floor((1 − ratio)·T) tokens without float drift', () => {
  const prefill = makePrefill(100);
  for (const [ratio, kept] of [
    [0.9, 10],
    [0.7, 30],
    [0.3, 70],
    [0.55, 45],
  ]) {
    const method = createMethod(`streamingllm:ratio=${ratio}`);
    const cache = method.compress({ layers: prefill.layers, stats: null, config: prefill.config });
    assert.equal(cache.tokensPerHead()[0][0], kept, `ratio ${ratio}`);
  }
});

test('a method that would evict nothing is an error, not a result', () => {
  const prefill = makePrefill(40);
  const input = { layers: prefill.layers, stats: prefill.stats, config: prefill.config };
  assert.throws(() => createMethod('h2o:budget=40').compress(input), /budget 40 is not below the prompt length 40/);
  assert.throws(() => createMethod('streamingllm:ratio=0.99').compress(input), /would keep no token/);
  assert.throws(() => createMethod('streamingllm:budget=4').compress(input), /no room for a recent window/);
  const kivi = createMethod('kivi:bits=2');
  const cache = kivi.compress(input);
  assert.throws(() => verifyCompression(kivi, cache, prefill.layers, prefill.config), /quantized nothing/);
});

test('compress rejects a cache that does not match the model', () => {
  const prefill = makePrefill(40);
  const method = createMethod('snapkv');
  assert.throws(() => method.compress({ layers: prefill.layers.slice(1), stats: prefill.stats, config: prefill.config }), /expected 3 layers/);
  assert.throws(() => method.compress({ layers: prefill.layers, stats: null, config: prefill.config }), /snapkv needs attention probabilities/);
});

test('verify: a cache whose counts or bytes disagree with its arrays is rejected', () => {
  const prefill = makePrefill(60);
  const method = createMethod('snapkv:ratio=0.5');
  const cache = method.compress({ layers: prefill.layers, stats: prefill.stats, config: prefill.config });
  const lie = (patch: object) => Object.assign(Object.create(Object.getPrototypeOf(cache)), cache, patch);
  assert.throws(() => verifyCompression(method, lie({ tokensPerHead: () => [[31, 30], [30, 30], [30, 30]] }), prefill.layers, prefill.config), /promised/);
  const views = cache.views();
  const doubled = views.map((v) => ({ ...v, positions: v.positions.map((p, i) => (i === 2 ? v.positions[0] : p)) }));
  assert.throws(() => verifyCompression(method, lie({ views: () => doubled }), prefill.layers, prefill.config), /twice/);
  assert.throws(() => verifyCompression(method, lie({ bytes: () => ({ ...cache.bytes(), held: cache.bytes().held + 1 }) }), prefill.layers, prefill.config), /inconsistent/);
  assert.doesNotThrow(() => verifyCompression(method, cache, prefill.layers, prefill.config));
});

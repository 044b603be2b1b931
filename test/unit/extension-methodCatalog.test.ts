// "Compare Methods" offers what the engine's registry says: every offered spec is one the spec parser takes,
// and each carries its method's summary.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { canonicalSpec, listMethods } from '../../src/engine/kv';
import { offeredMethods, variantSpecs } from '../../src/extension/methodCatalog';

test('every method of the registry is offered, with bit-width or ratio variants, all parseable and described', () => {
  const registry = listMethods();
  const offered = offeredMethods(registry, ['full', 'h2o:budget=512'], ['snapkv:ratio=0.3+kivi:bits=4']);
  const specs = offered.map((o) => o.spec);
  assert.equal(new Set(specs).size, specs.length, 'no spec offered twice');
  assert.ok(!specs.includes('full'), 'full is the baseline, always run');
  for (const method of registry.filter((m) => m.name !== 'full')) assert.ok(specs.includes(method.name), method.name);
  for (const spec of ['kivi:bits=2', 'kivi:bits=4', 'snapkv:ratio=0.25', 'snapkv:ratio=0.75', 'streamingllm:ratio=0.5', 'h2o:budget=512', 'snapkv:ratio=0.3+kivi:bits=4']) {
    assert.ok(specs.includes(spec), spec);
  }
  for (const { spec, description } of offered) {
    assert.doesNotThrow(() => canonicalSpec(spec), spec);
    assert.equal(description, registry.find((m) => m.name === spec.split(':')[0])?.summary, spec);
  }
});

test('variants: one per allowed value of a choice parameter, else three ratios, else none', () => {
  const base = { family: 'quantization' as const, phases: [], summary: '', paper: null };
  const param = { default: 0, min: 0, max: 1, description: '' };
  assert.deepEqual(variantSpecs({ ...base, name: 'q', params: [{ ...param, name: 'bits', choices: [2, 4] }] }), ['q:bits=2', 'q:bits=4']);
  assert.deepEqual(variantSpecs({ ...base, name: 'd', params: [{ ...param, name: 'ratio', choices: null }] }), ['d:ratio=0.25', 'd:ratio=0.5', 'd:ratio=0.75']);
  assert.deepEqual(variantSpecs({ ...base, name: 'g', params: [{ ...param, name: 'group', choices: null }] }), []);
});

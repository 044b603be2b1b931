// The run settings table (src/engine/bench/runSettings.ts) is the one definition of every run setting's
// default, choices and bounds: the manifest VS Code reads, the settings parser, the CLI and the task registry
// must all agree with it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { RUN_LIMITS, RUN_SETTINGS, TASK_IDS, cliDefault, settingDefaults } from '../../src/engine/bench/runSettings';
import { checkBenchRequest, type BenchRequest } from '../../src/engine/host/protocol';
import { DEFAULT_SETTINGS, parseSettings } from '../../src/extension/settings';
import { TASKS } from '../../src/engine/tasks';

interface ManifestSchema {
  default?: unknown;
  enum?: string[];
  minimum?: number;
  maximum?: number;
  items?: ManifestSchema;
}

const manifest = JSON.parse(readFileSync(join(__dirname, '..', '..', 'package.json'), 'utf8'));
const properties = manifest.contributes.configuration.properties as Record<string, ManifestSchema>;

test('package.json declares exactly the run settings, with the table’s defaults, choices and bounds', () => {
  assert.deepEqual(Object.keys(properties).map((k) => k.replace(/^kvlens\./, '')).sort(), Object.keys(RUN_SETTINGS).sort());
  for (const [key, definition] of Object.entries(RUN_SETTINGS)) {
    const declared = properties[`kvlens.${key}`];
    // A list's choices and bounds apply to its items.
    const bounded = Array.isArray(definition.default) ? (declared.items ?? {}) : declared;
    assert.deepEqual(declared.default, definition.default, `kvlens.${key} default`);
    assert.deepEqual(bounded.enum, definition.choices === undefined ? undefined : [...definition.choices], `kvlens.${key} choices`);
    assert.equal(bounded.minimum, definition.min, `kvlens.${key} minimum`);
    assert.equal(bounded.maximum, definition.max, `kvlens.${key} maximum`);
  }
});

test('the task list is the task registry’s', () => {
  assert.deepEqual([...TASK_IDS], TASKS.map((t) => t.id));
});

test('the settings parser’s defaults and bounds are the table’s', () => {
  assert.deepEqual(DEFAULT_SETTINGS, settingDefaults());
  const { min, max } = RUN_SETTINGS.samples;
  assert.equal(parseSettings((k) => (k === 'samples' ? max : undefined)).settings.samples, max);
  assert.match(parseSettings((k) => (k === 'samples' ? max! + 1 : undefined)).warnings[0], new RegExp(`expected an integer from ${min} to ${max}`));
  // Defaults are copies: changing one run's lists leaves the table alone.
  settingDefaults().methods.push('int8');
  assert.ok(!RUN_SETTINGS.methods.default.includes('int8'));
});

test('the CLI’s defaults pass the run request check, and its bounds are the check’s', () => {
  const request: BenchRequest = {
    workspace: '/w', model: cliDefault('model'), methods: cliDefault('methods'), tasks: cliDefault('tasks'), lengths: cliDefault('lengths'),
    depths: cliDefault('depths'), samples: cliDefault('samples'), seed: cliDefault('seed'), provider: cliDefault('executionProvider'), outFile: null,
  };
  assert.equal(checkBenchRequest(request, ''), null);
  assert.equal(checkBenchRequest({ ...request, samples: RUN_LIMITS.maxSamplesPerCell }, ''), null);
  assert.equal(checkBenchRequest({ ...request, samples: RUN_LIMITS.maxSamplesPerCell + 1 }, ''), `samples must be at most ${RUN_LIMITS.maxSamplesPerCell}, found ${RUN_LIMITS.maxSamplesPerCell + 1}`);
  assert.equal(checkBenchRequest({ ...request, seed: RUN_LIMITS.maxSeed + 1 }, ''), `seed must be at most ${RUN_LIMITS.maxSeed}, found ${RUN_LIMITS.maxSeed + 1}`);
  assert.equal(checkBenchRequest({ ...request, tasks: ['haystack'] }, ''), 'tasks[0] must be one of needle, multikey, vartrack, completion, crossfile, found "haystack"');
  assert.equal(checkBenchRequest({ ...request, tasks: [] }, ''), 'tasks must name at least one task (or imports list a file to run instead)');
  assert.equal(checkBenchRequest({ ...request, tasks: [], imports: ['longbench/qasper.jsonl'] }, ''), null);
  assert.equal(RUN_SETTINGS.samples.cliMax, RUN_LIMITS.maxSamplesPerCell);
  assert.equal(RUN_SETTINGS.seed.cliMax, RUN_LIMITS.maxSeed);
});

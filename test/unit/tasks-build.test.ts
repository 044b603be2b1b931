import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import { buildSamples, scanWorkspace, TASKS } from '../../src/engine/tasks/index';
import { renderPrompt, type ChatMessage } from '../../src/engine/tasks/prompt';
import { generateNeedle } from '../../src/engine/tasks/needle';
import { KvlensError } from '../../src/engine/errors';
import { fixtureModelCounter, realCounter, wordCounter } from './tasks-support';

const SHOP = join(__dirname, '..', 'fixtures', 'workspace-shop');

test('TASKS describes every task buildSamples accepts', () => {
  assert.deepEqual(TASKS.map((t) => t.id), ['needle', 'multikey', 'vartrack', 'completion', 'crossfile']);
  for (const task of TASKS) assert.ok(task.description.length > 20);
});

test('buildSamples spans lengths × depths × samples for depth tasks and lengths × samples for the others', async () => {
  const { files } = await scanWorkspace(SHOP);
  assert.deepEqual(files.map((f) => f.path), ['cmd/server/main.go', 'lib/parse.rs', 'scripts/report.py', 'src/cart.ts', 'src/catalog.ts', 'src/discounts.ts']);
  const options = { tasks: ['needle', 'completion', 'crossfile'], lengths: [256, 512], depths: [0, 1], samplesPerCell: 2, seed: 3, counter: realCounter() };
  const samples = buildSamples(files, options);
  assert.equal(samples.filter((s) => s.task === 'needle').length, 2 * 2 * 2);
  assert.equal(samples.filter((s) => s.task === 'completion').length, 2 * 2);
  assert.equal(samples.filter((s) => s.task === 'crossfile').length, 2 * 2);
  assert.equal(new Set(samples.map((s) => s.id)).size, samples.length, 'ids are unique');
  assert.ok(samples.every((s) => s.promptTokens <= s.targetLength));
  assert.deepEqual(buildSamples(files, options), samples, 'deterministic');
  const other = buildSamples(files, { ...options, seed: 4 });
  assert.notDeepEqual(other.map((s) => s.prompt), samples.map((s) => s.prompt));
});

test('buildSamples leaves out a task the workspace cannot feed and says why', () => {
  const files = [{ path: 'a.ts', language: 'typescript', text: 'export function alone(): number {\n  return 1;\n}\nconst value = alone() + 41;\nconsole.log(value);\n' }];
  const log: string[] = [];
  const samples = buildSamples(files, { tasks: ['needle', 'crossfile'], lengths: [128], depths: [0.5], samplesPerCell: 1, seed: 1, counter: wordCounter, onLog: (m) => log.push(m) });
  assert.deepEqual(samples.map((s) => s.task), ['needle']);
  assert.equal(log.length, 1);
  assert.match(log[0], /task crossfile left out: crossfile: no line in the workspace uses a symbol/);
  assert.throws(() => buildSamples(files, { tasks: ['crossfile'], lengths: [128], depths: [], samplesPerCell: 1, seed: 1, counter: wordCounter }), /no samples could be built/);
});

test('buildSamples rejects bad options with a clear error', () => {
  const files = [{ path: 'a.ts', language: 'typescript', text: 'const a = 1;\n' }];
  const base = { tasks: ['needle'], lengths: [256], depths: [0.5], samplesPerCell: 1, seed: 1, counter: wordCounter };
  assert.throws(() => buildSamples(files, { ...base, tasks: ['haystack'] }), (e: unknown) => e instanceof KvlensError && /unknown task "haystack"/.test(e.message));
  assert.throws(() => buildSamples(files, { ...base, depths: [1.2] }), /depth must be in \[0, 1\]/);
  assert.throws(() => buildSamples(files, { ...base, lengths: [100.5] }), /context length must be an integer/);
  assert.throws(() => buildSamples(files, { ...base, samplesPerCell: 0 }), /samples per cell/);
  assert.throws(() => buildSamples([], base), /no usable code files/);
});

test('base prompts end with the cue; chat prompts go through the formatChat hook and still fit the budget', () => {
  assert.equal(renderPrompt('ctx', { cue: '// X =', question: 'q?' }), 'ctx\n// X =');
  const seen: ChatMessage[][] = [];
  const formatChat = (messages: ChatMessage[]) => {
    seen.push(messages);
    return `<|user|>\n${messages.map((m) => m.content).join('\n')}<|end|>\n<|assistant|>\n`;
  };
  const counter = fixtureModelCounter();
  const sample = generateNeedle(
    [{ path: 'src/k.ts', language: 'typescript', text: Array.from({ length: 200 }, (_, i) => `export const level${i} = compute(${i}, "${'x'.repeat(i % 17)}");`).join('\n') }],
    { targetLength: 512, depth: 0.5, sampleIndex: 0, samplesPerCell: 1, seed: 2, counter, style: { formatChat } },
  );
  assert.ok(sample.prompt.startsWith('<|user|>\n// file: src/k.ts\n'));
  assert.ok(sample.prompt.endsWith('<|end|>\n<|assistant|>\n'));
  const name = sample.meta.name as string;
  assert.ok(sample.prompt.includes(`What is the value of ${name} in the code above?`));
  assert.ok(!sample.prompt.includes(`// ${name} =`));
  assert.ok(seen.every((m) => m.length === 1 && m[0].role === 'user'));
  const tokens = counter.encode(sample.prompt).length;
  assert.ok(tokens <= 512 && tokens >= 0.9 * 512, `${tokens}`);
});

const CODEBASE = join(__dirname, '..', 'fixtures', 'codebase');

test('the default model codebase fixture builds needle samples', { skip: existsSync(CODEBASE) ? false : 'test/fixtures/codebase is not there yet' }, async () => {
  const { files } = await scanWorkspace(CODEBASE);
  assert.ok(files.length > 0);
  const counter = realCounter();
  const samples = buildSamples(files, { tasks: ['needle'], lengths: [1024], depths: [0, 0.5, 1], samplesPerCell: 1, seed: 1, counter });
  for (const sample of samples) {
    const tokens = counter.encode(sample.prompt).length;
    assert.ok(tokens <= 1024 && tokens >= 0.9 * 1024);
    assert.ok(sample.prompt.endsWith(`\n// ${sample.meta.name as string} =`));
  }
});

test('segments map prompt lines back to the workspace lines they copy, for every task and with a chat template', async () => {
  const { files } = await scanWorkspace(SHOP);
  const text = new Map(files.map((f) => [f.path, f.text.split('\n')]));
  const formatChat = (messages: ChatMessage[]) => `<system>\nbe brief\n</system>\n<user>\n${messages[0].content}\n</user>\n`;
  for (const style of [{}, { formatChat }]) {
    const samples = buildSamples(files, { tasks: TASKS.map((t) => t.id), lengths: [512], depths: [0.3], samplesPerCell: 2, seed: 9, counter: realCounter(), style });
    for (const sample of samples) {
      const promptLines = sample.prompt.split('\n');
      assert.ok(sample.segments && sample.segments.length > 0, sample.id);
      let covered = 0;
      for (const seg of sample.segments) {
        const fileLines = text.get(seg.file)!;
        assert.deepEqual(promptLines.slice(seg.promptLine, seg.promptLine + seg.lineCount), fileLines.slice(seg.startLine, seg.startLine + seg.lineCount), `${sample.id} ${JSON.stringify(seg)}`);
        covered += seg.lineCount;
      }
      const headers = promptLines.filter((l) => l.startsWith('// file: ')).length;
      // Everything but headers, a few synthetic lines and the chat wrapper is workspace code.
      assert.ok(covered >= promptLines.length - headers - 16, `${sample.id}: ${covered} of ${promptLines.length}`);
    }
  }
});

test('focus files open every context and hold the completion targets', async () => {
  const { files } = await scanWorkspace(SHOP);
  const focus = ['src/discounts.ts', 'lib/parse.rs'];
  const samples = buildSamples(files, { tasks: ['needle', 'completion'], lengths: [512], depths: [0.5], samplesPerCell: 2, seed: 1, counter: realCounter(), focus });
  const needles = samples.filter((s) => s.task === 'needle');
  // Sample 0 starts with the first focus file, sample 1 with the second.
  assert.deepEqual(needles.map((s) => s.prompt.split('\n', 1)[0]), ['// file: src/discounts.ts', '// file: lib/parse.rs']);
  for (const s of samples.filter((x) => x.task === 'completion')) assert.ok(focus.includes(s.source!.file), s.source!.file);
  const unfocused = buildSamples(files, { tasks: ['needle'], lengths: [512], depths: [0.5], samplesPerCell: 2, seed: 1, counter: realCounter() });
  assert.notDeepEqual(unfocused.map((s) => s.prompt.split('\n', 1)[0]), needles.map((s) => s.prompt.split('\n', 1)[0]));
  assert.throws(() => buildSamples(files, { tasks: ['needle'], lengths: [512], depths: [0.5], samplesPerCell: 1, seed: 1, counter: wordCounter, focus: ['nope.ts'] }), /none of the focus files/);
});

test('a selected line range supplies the completion targets; a range without candidates falls back to the whole file', async () => {
  const { files } = await scanWorkspace(SHOP);
  const focus = ['src/cart.ts'];
  const base = { tasks: ['completion'], lengths: [512], depths: [0.5], samplesPerCell: 6, seed: 2, counter: realCounter(), focus };
  const lines = (samples: ReturnType<typeof buildSamples>) => samples.map((s) => s.source!.line);
  const inRange = buildSamples(files, { ...base, focusLines: { file: 'src/cart.ts', startLine: 20, endLine: 30 } });
  assert.ok(inRange.every((s) => s.source!.file === 'src/cart.ts'));
  assert.ok(lines(inRange).every((l) => l >= 20 && l <= 30), JSON.stringify(lines(inRange)));
  const whole = buildSamples(files, base);
  assert.ok(lines(whole).some((l) => l < 20 || l > 30), `without a range targets come from the whole file: ${JSON.stringify(lines(whole))}`);
  // Lines 0-1 come before any target can (a target needs lines before it): the whole file is used instead.
  const empty = buildSamples(files, { ...base, focusLines: { file: 'src/cart.ts', startLine: 0, endLine: 1 } });
  assert.deepEqual(lines(empty), lines(whole));
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, readFileSync, existsSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openModel, type ModelSession } from '../../src/engine/session';
import { runBench } from '../../src/engine/bench/runner';
import { resultsSchemaErrors, readResultsFile } from '../../src/engine/bench/validate';
import { mergeResults } from '../../src/engine/bench/merge';
import { toCsv, toMarkdown } from '../../src/engine/bench/export';
import type { BenchRequest } from '../../src/engine/host/protocol';
import type { ResultsFile } from '../../src/engine/bench/results';
import { conditionalScorer, selfInformation } from '../../src/engine/bench/surprise';

const MODEL = join(__dirname, '..', 'fixtures', 'models', 'llama-gqa-tied-rope3-f32');
const CODEBASE = join(__dirname, '..', 'fixtures', 'codebase');

let shared: ModelSession | null = null;
async function session(): Promise<ModelSession> {
  shared ??= await openModel(MODEL, { provider: 'cpu' });
  return shared;
}

function request(outFile: string | null, extra: Partial<BenchRequest> = {}): BenchRequest {
  return {
    workspace: CODEBASE,
    model: MODEL,
    methods: ['full', 'kivi:bits=2', 'snapkv:ratio=0.5', 'streamingllm:ratio=0.5', 'llmlingua:ratio=0.5'],
    tasks: ['needle', 'completion'],
    lengths: [200],
    depths: [0, 1],
    samples: 1,
    seed: 3,
    provider: 'cpu',
    outFile,
    maxNewTokens: 4,
    ...extra,
  };
}

test('a sweep writes a schema-valid results file with one row per sample and method, full first', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kvlens-bench-'));
  const out = join(dir, 'results.json');
  const results = await runBench(await session(), request(out, { lengths: [400] }));
  assert.equal(results.status, 'complete');
  const onDisk = JSON.parse(readFileSync(out, 'utf8')) as ResultsFile;
  assert.deepEqual(resultsSchemaErrors(onDisk), []);
  // 2 needle depths + 1 completion sample, 5 methods each.
  assert.equal(onDisk.rows.length, 3 * 5);
  const samples = new Set(onDisk.rows.map((r) => r.sampleId));
  assert.equal(samples.size, 3);
  for (const id of samples) {
    const rows = onDisk.rows.filter((r) => r.sampleId === id);
    assert.equal(rows[0].method, 'full');
    const full = rows[0];
    assert.equal(full.bytesHeld, full.bytesFull, 'full holds exactly the reference bytes');
    assert.equal(full.note?.includes('no compression'), true);
    for (const row of rows.slice(1)) {
      assert.equal(row.error, null, `${row.method}: ${row.error}`);
      assert.equal(row.verified, true);
      assert.ok(row.bytesHeld < full.bytesHeld, `${row.method} holds fewer bytes than full (${row.bytesHeld} vs ${full.bytesHeld})`);
    }
    const snap = rows.find((r) => r.method.startsWith('snapkv'))!;
    // ratio is the fraction removed (kvpress's convention): half of the prompt's tokens stay, rounded down.
    assert.equal(snap.tokensKeptPerHead, Math.floor(full.tokensKeptPerHead / 2));
    const lingua = rows.find((r) => r.method.startsWith('llmlingua'))!;
    assert.ok(lingua.length < full.length, 'prompt compression prefills a shorter prompt');
  }
  // The retained-context map: full keeps every source line of the context; streamingllm (sinks + recent window)
  // keeps the end of the prompt but loses lines in the middle.
  const needle = onDisk.rows.filter((r) => r.task === 'needle');
  const lines = (r: (typeof needle)[number]) => (r.retained ?? []).reduce((n, c) => n + c.keptLines.reduce((m, [a, b]) => m + b - a + 1, 0), 0);
  for (const id of new Set(needle.map((r) => r.sampleId))) {
    const full = needle.find((r) => r.sampleId === id && r.method === 'full')!;
    const streaming = needle.find((r) => r.sampleId === id && r.method.startsWith('streamingllm'))!;
    assert.ok(lines(full) > 5, 'full keeps the context lines');
    assert.ok(lines(streaming) < lines(full) * 0.8, `streamingllm keeps fewer lines (${lines(streaming)} of ${lines(full)})`);
    assert.ok(lines(streaming) > 0, 'streamingllm keeps its recent window');
  }
  assert.ok(onDisk.config.model.contentHash.startsWith('sha256:'));
  assert.equal(onDisk.config.executionProvider, 'cpu');
  assert.equal(readdirSync(dir).filter((f) => f.endsWith('.tmp')).length, 0, 'no temporary files left behind');
  // Records end at line breaks outside quotes (raw predictions hold quoted line breaks).
  const csvRecords = toCsv(onDisk).trim().split(/\n(?=(?:[^"]*"[^"]*")*[^"]*$)/);
  assert.equal(csvRecords.length, onDisk.rows.length + 1);
  assert.match(toMarkdown(onDisk), /\| kivi:bits=2 \|/);
});

test('cancelling keeps every completed row, marks the file cancelled and leaves no partial file', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kvlens-cancel-'));
  const out = join(dir, 'results.json');
  const controller = new AbortController();
  let methodsStarted = 0;
  let midRun: ResultsFile | null = null;
  const results = await runBench(await session(), request(out, { depths: [0, 0.5, 1] }), {
    signal: controller.signal,
    onProgress: (p) => {
      if (!p.message.includes(' · ')) return;
      methodsStarted++;
      if (methodsStarted === 6) midRun = readResultsFile(out);
      // Cancel while the second sample's third method runs.
      if (methodsStarted === 8) controller.abort();
    },
  });
  // Saved after the first sample: an unfinished run says so, with what is left.
  assert.equal(midRun!.status, 'running');
  assert.equal(midRun!.rows.length, 5);
  assert.deepEqual(midRun!.progress, { samples: 4, samplesDone: 1 });
  assert.equal(results.status, 'cancelled');
  const onDisk = readResultsFile(out);
  assert.equal(onDisk.status, 'cancelled');
  // The first sample's 5 rows were saved; the second sample was interrupted as a whole, so none of its rows are kept half-done.
  // The first sample's 5 rows and the 2 methods of the second sample that finished before the cancel.
  assert.equal(onDisk.rows.length, 7);
  assert.equal(onDisk.rows.filter((r) => r.error !== null).length, 0, 'the interrupted method leaves no row at all');
  assert.equal(readdirSync(dir).filter((f) => f !== 'results.json').length, 0, 'no temporary files left behind');
});

test('shards partition the work and merge back to the unsharded sweep', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kvlens-shard-'));
  const whole = await runBench(await session(), request(null, { methods: ['full', 'int8'] }));
  const parts: { path: string; results: ResultsFile }[] = [];
  for (let index = 0; index < 2; index++) {
    const out = join(dir, `shard${index}.json`);
    await runBench(await session(), request(out, { methods: ['full', 'int8'], shard: { index, count: 2 } }));
    parts.push({ path: out, results: readResultsFile(out) });
  }
  const ids = parts.map((p) => new Set(p.results.rows.map((r) => r.sampleId)));
  for (const id of ids[0]) assert.equal(ids[1].has(id), false, 'a sample ran in two shards');
  const merged = mergeResults(parts);
  assert.equal(merged.status, 'complete');
  assert.deepEqual(resultsSchemaErrors(merged), []);
  const key = (r: { sampleId: string; method: string; answer: string }) => `${r.sampleId}|${r.method}|${r.answer}`;
  assert.deepEqual(merged.rows.map(key).sort(), whole.rows.map(key).sort());
  assert.throws(() => mergeResults([parts[0], parts[0]]), /appears twice|already came/);
  const other = structuredClone(parts[1]);
  other.results.config.seed = 99;
  assert.throws(() => mergeResults([parts[0], other]), /different sweep/);
  // A shard that did not finish, or one left out, is refused unless asked for.
  for (const status of ['running', 'cancelled', 'failed'] as const) {
    const unfinished = structuredClone(parts[1]);
    unfinished.results.status = status;
    assert.throws(() => mergeResults([parts[0], unfinished]), (e: Error) => e.message.startsWith(`${parts[1].path}: status is ${status}`) && /--allow-incomplete/.test(e.message));
    const allowed = mergeResults([parts[0], unfinished], { allowIncomplete: true });
    assert.equal(allowed.status, status === 'failed' ? 'failed' : 'cancelled');
    assert.equal(allowed.rows.length, merged.rows.length);
    assert.deepEqual(resultsSchemaErrors(allowed), []);
  }
  assert.throws(() => mergeResults([parts[1]]), (e: Error) => e.message.startsWith(parts[1].path) && /only 1 of 2 shards given \(missing 0\/2\)/.test(e.message));
  assert.equal(mergeResults([parts[1]], { allowIncomplete: true }).status, 'cancelled');
  assert.deepEqual(merged.progress, { samples: whole.progress!.samples, samplesDone: whole.progress!.samples });
});

test('a method listed twice is refused before anything runs (its rows would collide in merge)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kvlens-dup-'));
  const out = join(dir, 'results.json');
  await assert.rejects(runBench(await session(), request(out, { methods: ['full', 'snapkv:ratio=0.5', 'snapkv:ratio=0.5,window=32'] })), /methods lists "snapkv:ratio=0.5" twice/);
  assert.equal(existsSync(out), false, 'no results file was started');
});

test('a results file that breaks the schema is refused with its path', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kvlens-schema-'));
  const bad = join(dir, 'bad.json');
  writeFileSync(bad, JSON.stringify({ schemaVersion: 3, rows: [] }));
  assert.throws(() => readResultsFile(bad), (e: Error) => e.message.startsWith(bad) && /schemaVersion|required/.test(e.message));
  assert.equal(existsSync(bad), true);
});

test.after(async () => {
  await shared?.dispose();
});

test('a model with a chat template gets chat-formatted prompts, and prompt compression keeps the question', async () => {
  const qwen = await openModel(join(__dirname, '..', 'fixtures', 'models', 'qwen2-bias-untied-f32'), { provider: 'cpu' });
  try {
    const { queryText } = await import('../../src/engine/bench/runner');
    const { buildSamples, scanWorkspace } = await import('../../src/engine/tasks');
    const scan = await scanWorkspace(CODEBASE);
    const [sample] = buildSamples(scan.files, {
      tasks: ['needle'],
      lengths: [300],
      depths: [0.5],
      samplesPerCell: 1,
      seed: 1,
      counter: { encode: (t) => qwen.tokenizer.encode(t, { addSpecialTokens: false }) },
      style: { formatChat: (m) => qwen.tokenizer.applyChatTemplate(m) },
    });
    assert.ok(sample.prompt.startsWith('<|im_start|>user\n'), sample.prompt.slice(0, 40));
    assert.ok(sample.prompt.endsWith('<|im_start|>assistant\n'));
    const question = queryText(qwen, sample.prompt);
    assert.ok(question.includes(String(sample.meta.name ?? '')) || /\?/.test(question), question);
    assert.ok(question.length < 400, 'the protected part is the question, not the context');
    const results = await runBench(qwen, { ...request(null), model: 'qwen', methods: ['full', 'llmlingua:ratio=0.5'], tasks: ['needle'], depths: [0.5], lengths: [300] });
    const lingua = results.rows.find((r) => r.method.startsWith('llmlingua'))!;
    assert.equal(lingua.error, null, lingua.error ?? '');
  } finally {
    await qwen.dispose();
  }
});

test('imported LongBench rows run on their own when no workspace task is named', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kvlens-import-'));
  const file = join(dir, 'lcc.jsonl');
  const rows = [0, 1].map((i) => ({
    _id: `row${i}`,
    dataset: 'lcc',
    length: 60,
    context: `def total(items):\n    result = 0\n    for item in items:\n        result += item * ${i + 2}\n`,
    input: '',
    answers: ['    return result'],
  }));
  writeFileSync(file, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  // A RULER task file where prepare.py puts it: the task and the length come from the path.
  const rulerFile = join(dir, '512', 'data', 'niah_single_1', 'validation.jsonl');
  mkdirSync(join(dir, '512', 'data', 'niah_single_1'), { recursive: true });
  writeFileSync(rulerFile, JSON.stringify({ index: 0, input: 'The special magic number for cat is: 4417.\nWhat is the special magic number for cat?', outputs: ['4417'], length: 30, answer_prefix: ' The special magic number for cat is' }) + '\n');
  const results = await runBench(await session(), request(null, { tasks: [], imports: [file, rulerFile], methods: ['full', 'int8'] }));
  assert.equal(results.rows.length, 6);
  assert.deepEqual(resultsSchemaErrors(results), []);
  const code = results.rows.filter((r) => r.task === 'longbench/lcc');
  assert.deepEqual([...new Set(code.map((r) => r.expected.trim()))], ['return result']);
  assert.ok(results.rows.every((r) => r.error === null && r.source === null));
  assert.ok(code.every((r) => r.metric === 'code_sim_score' && r.group === null && typeof r.prediction === 'string'));
  const ruler = results.rows.filter((r) => r.task === 'ruler/niah_single_1');
  assert.equal(ruler.length, 2);
  assert.ok(ruler.every((r) => r.metric === 'string_match_all' && r.targetLength === 512 && r.expected === '4417'));
  for (const row of results.rows) assert.ok(row.prediction!.includes(row.answer.trim()), `the scored part comes from the prediction: ${JSON.stringify(row)}`);
  assert.ok(results.log.some((line) => line.includes('imported 2 samples')));
  assert.ok(results.log.some((line) => line.includes('imported 1 samples')));
});

test("selfInformation is -log p of each token under transformers' own logits for the fixture", async () => {
  const reference = JSON.parse(readFileSync(join(MODEL, 'reference.json'), 'utf8')) as { ids: number[]; vocabSize: number; prefill: { logits: number[] } };
  const { ids, vocabSize: V, prefill: { logits } } = reference;
  const surprise = await selfInformation(await session(), ids);
  assert.equal(surprise[0], 0);
  for (let i = 1; i < ids.length; i++) {
    const row = logits.slice((i - 1) * V, i * V);
    const max = Math.max(...row);
    const logSum = Math.log(row.reduce((sum, x) => sum + Math.exp(x - max), 0));
    const expected = -(row[ids[i]] - max - logSum);
    assert.ok(Math.abs(surprise[i] - expected) < 1e-4, `token ${i}: ${surprise[i]} vs ${expected}`);
  }
});

test("llmlingua's conditional scorer gives the model's own -log p of the compressed text, and scoring commits nothing", async (t) => {
  // An fp32 cache: with fp16 the committed prefix is read rounded while a plain pass sees it exact.
  const s = await openModel(MODEL, { provider: 'cpu', kvDtype: 'fp32' });
  t.after(() => s.dispose());
  const vocab = s.forward.config.vocabSize;
  const ids = Array.from({ length: 90 }, (_, i) => (i * 37 + 11) % vocab);
  const close = (a: ArrayLike<number>, b: ArrayLike<number>, what: string) => {
    assert.equal(a.length, b.length, what);
    for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i] - b[i]) < 1e-4, `${what} [${i}]: ${a[i]} vs ${b[i]}`);
  };
  // Commit a prefix, keep a subsequence of the next part, then score the rest: the same numbers as a plain pass
  // over exactly the text kept so far followed by the scored part.
  const scorer = conditionalScorer(s);
  await scorer.commit(ids.slice(0, 30));
  const kept = ids.slice(30, 60).filter((_, i) => i % 3 !== 1);
  const first = await scorer.score(ids.slice(30, 60));
  close(first, (await selfInformation(s, ids.slice(0, 60))).subarray(30), 'segment after the prefix');
  close(await scorer.score(ids.slice(30, 60)), first, 'scoring twice (score does not commit)');
  await scorer.commit(kept);
  const rest = ids.slice(60);
  const expected = await selfInformation(s, [...ids.slice(0, 30), ...kept, ...rest]);
  close(await scorer.score(rest), expected.subarray(30 + kept.length), 'segment after a compressed part');
});

test('a workspace too small for the context is cycled, and the log says how many times over', async () => {
  const workspace = mkdtempSync(join(tmpdir(), 'kvlens-tiny-'));
  writeFileSync(join(workspace, 'tiny.ts'), 'export const alpha = 1;\nexport const beta = alpha + 1;\nexport function gamma(x: number) {\n  return x * beta;\n}\n');
  const results = await runBench(await session(), request(null, { workspace, methods: ['full'], tasks: ['needle'], depths: [0.5], lengths: [400] }));
  const line = results.log.find((l) => l.includes('the workspace is smaller than the contexts'));
  assert.match(String(line), /^scan: the workspace is smaller than the contexts: a 400-token context holds its 5 distinct lines \d+\.\dx over/);
  const roomy = await runBench(await session(), request(null, { methods: ['full'], tasks: ['needle'], depths: [0.5], lengths: [200] }));
  assert.equal(roomy.log.some((l) => l.includes('smaller than the contexts')), false);
});

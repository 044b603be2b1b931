import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseHostToPanel, parsePanelToHost } from '../../src/extension/panelMessages';
import { checkRunRequest, parseEngineEvent, type RunRequestBody } from '../../src/extension/engineProtocolDraft';

const results = JSON.parse(readFileSync(join(__dirname, '..', 'fixtures', 'extension', 'results-fixture.json'), 'utf8'));

function problemOf(parsed: { ok: boolean; problem?: string }): string {
  assert.equal(parsed.ok, false);
  return parsed.problem ?? '';
}

test('host-to-panel messages: valid ones pass through typed', () => {
  const parsed = parseHostToPanel({ type: 'results', results, resultsPath: '/w/.kvlens/r.json', focus: { task: 'needle', sampleId: 'needle-1024-d0' } });
  assert.ok(parsed.ok);
  assert.equal(parsed.message.type, 'results');
  const state = parseHostToPanel({ type: 'runState', running: true, message: 'sample 3/9' });
  assert.deepEqual(state, { ok: true, message: { type: 'runState', running: true, message: 'sample 3/9' } });
  assert.ok(parseHostToPanel({ type: 'results', results, resultsPath: null }).ok);
});

test('host-to-panel messages: malformed ones are rejected with the reason', () => {
  assert.match(problemOf(parseHostToPanel('results')), /message must be an object, found "results"/);
  assert.match(problemOf(parseHostToPanel(null)), /message must be an object/);
  assert.match(problemOf(parseHostToPanel({ type: 'explode' })), /unknown message type "explode"/);
  assert.match(problemOf(parseHostToPanel({ type: 'results', results: { ...results, rows: 'none' }, resultsPath: null })), /results message: rows must be an array/);
  assert.match(problemOf(parseHostToPanel({ type: 'focus', focus: { task: '', sampleId: 'x' } })), /focus.task must be a non-empty string/);
  assert.match(problemOf(parseHostToPanel({ type: 'runState', running: 'yes', message: '' })), /running must be true or false/);
});

test('panel-to-host messages', () => {
  assert.deepEqual(parsePanelToHost({ type: 'ready' }), { ok: true, message: { type: 'ready' } });
  assert.deepEqual(parsePanelToHost({ type: 'openSource', file: 'src/a.ts', line: 4 }), { ok: true, message: { type: 'openSource', file: 'src/a.ts', line: 4 } });
  assert.match(problemOf(parsePanelToHost({ type: 'openSource', file: '../../etc/passwd', line: 0 })), /must stay inside the workspace/);
  assert.match(problemOf(parsePanelToHost({ type: 'openSource', file: 'a.ts', line: -1 })), /line must be an integer >= 0, found -1/);
  assert.deepEqual(parsePanelToHost({ type: 'export', format: 'csv' }), { ok: true, message: { type: 'export', format: 'csv' } });
  assert.match(problemOf(parsePanelToHost({ type: 'export', format: 'xlsx' })), /format must be one of json, csv, markdown, found "xlsx"/);
  assert.match(problemOf(parsePanelToHost({ type: 'showRetained' })), /method must be a non-empty string, found nothing/);
  assert.match(problemOf(parsePanelToHost([1, 2])), /must be an object/);
});

test('engine events are checked before use', () => {
  assert.deepEqual(parseEngineEvent({ type: 'progress', id: 'r1', done: 2, total: 9, message: 'needle 2/9', etaSeconds: 14.5 }), {
    event: { type: 'progress', id: 'r1', done: 2, total: 9, message: 'needle 2/9', etaSeconds: 14.5 },
  });
  assert.deepEqual(parseEngineEvent({ type: 'progress', id: 'r1', done: 0, total: 9, message: '' }), {
    event: { type: 'progress', id: 'r1', done: 0, total: 9, message: '', etaSeconds: null },
  });
  assert.deepEqual(parseEngineEvent({ type: 'result', id: 'r1', resultsFile: '/w/.kvlens/a.json' }), { event: { type: 'result', id: 'r1', resultsFile: '/w/.kvlens/a.json' } });
  assert.deepEqual(parseEngineEvent({ type: 'progress', id: 'r1', done: -1, total: 9, message: '' }), { problem: 'progress.done must be an integer >= 0, found -1' });
  assert.deepEqual(parseEngineEvent({ type: 'result', id: 'r1' }), { problem: 'result.resultsFile must be a non-empty string, found nothing' });
  assert.deepEqual(parseEngineEvent({ type: 'progress', done: 1, total: 2, message: '' }), { problem: 'engine message id must be a non-empty string, found nothing' });
  assert.deepEqual(parseEngineEvent({ type: 'hello', id: 'x' }), { problem: 'engine message has unknown type "hello"' });
  assert.deepEqual(parseEngineEvent({ type: 'info', id: 'x', info: 3 }), { problem: 'info.info must be an object, found 3' });
});

test('run requests are checked before they are sent', () => {
  const good: RunRequestBody = {
    workspace: '/w', model: 'default', methods: ['full'], tasks: ['needle'], lengths: [1024], depths: [0, 0.5], samples: 1, seed: 0, provider: 'cpu', outFile: '/w/.kvlens/r.json',
  };
  assert.equal(checkRunRequest(good), null);
  assert.equal(checkRunRequest({ ...good, methods: [] }), 'run.methods must name at least one method');
  assert.equal(checkRunRequest({ ...good, depths: [1.5] }), 'run.depths[0] must be within [0, 1], found 1.5');
  assert.equal(checkRunRequest({ ...good, samples: 0 }), 'run.samples must be an integer >= 1, found 0');
});

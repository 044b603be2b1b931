import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseHostToPanel, parsePanelToHost } from '../../src/extension/panelMessages';

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

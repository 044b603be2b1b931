import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseHostToPanel, parsePanelToHost } from '../../src/extension/panelMessages';
import { makeNonce, panelHtml } from '../../src/extension/panelHtml';

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
  assert.match(problemOf(parsePanelToHost({ type: 'export', format: 'xlsx' })), /format must be one of json, csv, markdown, paper-csv, found "xlsx"/);
  assert.match(problemOf(parsePanelToHost({ type: 'showRetained' })), /method must be a non-empty string, found nothing/);
  assert.match(problemOf(parsePanelToHost([1, 2])), /must be an object/);
});

test('panel HTML: strict CSP with a nonce, no inline script, resources from the webview origin only', () => {
  const html = panelHtml({ cspSource: 'https://file+.vscode-resource.vscode-cdn.net', nonce: 'abcDEF123', scriptUri: 'https://x/dist/webview/main.js', styleUri: 'https://x/dist/webview/main.css' });
  const csp = /http-equiv="Content-Security-Policy" content="([^"]+)"/.exec(html)?.[1] ?? '';
  const directives = new Map(csp.split(';').map((d) => d.trim().split(/\s+/)).map(([name, ...values]) => [name, values]));
  assert.deepEqual(directives.get('default-src'), ["'none'"]);
  assert.deepEqual(directives.get('script-src'), ["'nonce-abcDEF123'"]);
  assert.deepEqual(directives.get('style-src'), ['https://file+.vscode-resource.vscode-cdn.net', "'nonce-abcDEF123'"]);
  assert.ok(!csp.includes('unsafe'), csp);
  const scripts = [...html.matchAll(/<script([^>]*)>([\s\S]*?)<\/script>/g)];
  assert.equal(scripts.length, 1);
  assert.match(scripts[0][1], /nonce="abcDEF123" src="https:\/\/x\/dist\/webview\/main\.js"/);
  assert.equal(scripts[0][2], '');
  assert.ok(!/\son[a-z]+=/.test(html), 'no inline event handlers');
  assert.equal(panelHtml({ cspSource: 'x', nonce: 'n', scriptUri: 'a"><script>', styleUri: 's' }).includes('a"><script>'), false);
});

test('nonces are 32 characters from a URL-safe alphabet', () => {
  const nonce = makeNonce((n) => Uint8Array.from({ length: n }, (_, i) => i * 37));
  assert.match(nonce, /^[A-Za-z0-9]{32}$/);
  assert.notEqual(makeNonce((n) => new Uint8Array(n)), nonce);
});

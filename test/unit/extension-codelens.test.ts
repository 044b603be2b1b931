import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ProfiledResults, ProfiledRow } from '../../src/extension/resultsModel';
import { codeLensTitle, methodVerdict, profiledSites, retainedHoverMarkdown, siteHoverMarkdown } from '../../src/extension/codeLensText';

const results = JSON.parse(readFileSync(join(__dirname, '..', 'fixtures', 'extension', 'results-fixture.json'), 'utf8')) as ProfiledResults;

function siteAt(file: string, line: number) {
  const site = profiledSites(results.rows).find((s) => s.file === file && s.line === line);
  assert.ok(site, `no site at ${file}:${line}`);
  return site;
}

test('sites are grouped by file and line, in order', () => {
  const sites = profiledSites(results.rows);
  assert.deepEqual(sites.map((s) => `${s.file}:${s.line}`), [
    'src/config/load.ts:20', 'src/db/pool.ts:8', 'src/db/pool.ts:120', 'src/db/pool.ts:240',
    'src/server/router.ts:12', 'src/server/router.ts:57', 'src/server/router.ts:103', 'src/util/strings.ts:33', 'src/util/strings.ts:71',
  ]);
  assert.equal(siteAt('src/db/pool.ts', 120).rows.length, 4);
  assert.equal(siteAt('src/db/pool.ts', 120).sampleId, 'needle-2048-d50');
});

test('lens titles give one verdict per method in run order', () => {
  const order = results.config.methods;
  assert.equal(codeLensTitle(siteAt('src/db/pool.ts', 120), order), 'full ✓ · kivi:bits=2 ✗ · streamingllm:ratio=0.5 ✗ · snapkv:ratio=0.5 ✓');
  assert.equal(codeLensTitle(siteAt('src/util/strings.ts', 71), order), 'full 0.80 · kivi:bits=2 0.70 · streamingllm:ratio=0.5 0.30 · snapkv:ratio=0.5 0.85');
  assert.equal(codeLensTitle(siteAt('src/util/strings.ts', 33), order), 'full ✓ · kivi:bits=2 ✓ · streamingllm:ratio=0.5 0.40 · snapkv:ratio=0.5 0.95');
});

test('verdicts for mixed, failed and errored rows', () => {
  const base = results.rows.find((r) => r.method === 'full' && r.task === 'needle')!;
  const row = (over: Partial<ProfiledRow>): ProfiledRow => ({ ...base, ...over });
  assert.equal(methodVerdict([row({ exact: true, score: 1 }), row({ exact: false, score: 0 }), row({ exact: true, score: 1 })]), '2/3');
  assert.equal(methodVerdict([row({ exact: false, score: 0 })]), '✗');
  assert.equal(methodVerdict([row({ error: 'engine crashed', score: 0, exact: false })]), '⚠');
  assert.equal(methodVerdict([row({ error: 'engine crashed', score: 0, exact: false }), row({ exact: true, score: 1 })]), '✓');
});

test('Windows-style and ./ paths land on the same site', () => {
  const a = { ...results.rows[0], source: { file: 'src\\x.ts', line: 3 } };
  const b = { ...results.rows[1], source: { file: './src/x.ts', line: 3 } };
  const sites = profiledSites([a, b]);
  assert.equal(sites.length, 1);
  assert.equal(sites[0].file, 'src/x.ts');
});

test('hover markdown lists each row and escapes table-breaking text', () => {
  const site = siteAt('src/db/pool.ts', 120);
  const md = siteHoverMarkdown(site, results.config.methods);
  assert.match(md, /^\*\*kvlens\*\* — src\/db\/pool\.ts:121/);
  assert.match(md, /\| kivi:bits=2 \| needle \| 2048 \| 0\.00 \| UNKNOWN \| QUARTZ-5521 \| 1\.25 MiB \| 6\.40× \| 260 ms \|/);
  const tricky = { ...site, rows: [{ ...site.rows[0], answer: 'a|b\n<img src=x>' }] };
  const trickyMd = siteHoverMarkdown(tricky);
  assert.ok(trickyMd.includes('a\\|b \\<img src=x\\>'), trickyMd);
});

test('the retained-context hover shows a method string as literal text', () => {
  assert.equal(retainedHoverMarkdown('snapkv:ratio=0.5', 'kept', 6, 9, 2), 'kvlens: snapkv:ratio=0.5 kept: lines 7–10 (over 2 samples)');
  // A results file is data: a method string with markup or HTML must not become either.
  const hostile = retainedHoverMarkdown('`x` <img src=y> *b* [l](u)', 'evicted', 0, 0, 1);
  assert.equal(hostile, 'kvlens: \\`x\\` \\<img src=y\\> \\*b\\* \\[l\\](u) evicted: lines 1–1 (over 1 sample)');
});

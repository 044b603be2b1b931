import { test } from 'node:test';
import assert from 'node:assert/strict';
import { workspaceRepetition } from '../../src/engine/bench/sweepPlan';
import type { Sample } from '../../src/engine/tasks';

function sample(targetLength: number, segments: { file: string; startLine: number; lineCount: number }[]): Sample {
  let promptLine = 0;
  return {
    id: `s-${targetLength}`,
    task: 'needle',
    targetLength,
    depth: 0.5,
    prompt: '',
    promptTokens: targetLength,
    answer: '1',
    scoring: 'exact',
    source: null,
    segments: segments.map((s) => ({ ...s, promptLine: (promptLine += s.lineCount) - s.lineCount })),
    meta: {},
  } as Sample;
}

test('a context that cycles a small workspace is measured: distinct lines and how many times over', () => {
  const once = sample(1024, [{ file: 'a.ts', startLine: 0, lineCount: 40 }, { file: 'b.ts', startLine: 0, lineCount: 60 }]);
  assert.equal(workspaceRepetition([once]), null);
  const cycled = sample(4096, [
    { file: 'a.ts', startLine: 0, lineCount: 10 },
    { file: 'a.ts', startLine: 0, lineCount: 10 },
    { file: 'a.ts', startLine: 0, lineCount: 10 },
    { file: 'a.ts', startLine: 0, lineCount: 5 },
  ]);
  assert.deepEqual(workspaceRepetition([once, cycled]), { targetLength: 4096, distinctLines: 10, times: 3.5 });
  assert.equal(workspaceRepetition([]), null);
});

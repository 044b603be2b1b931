// Random mutations of valid GGUF and safetensors files: every outcome is a loaded model or a KvlensError naming
// the file, within a time and memory bound (never a native crash, a RangeError or an allocation sized by a
// forged count).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { loadModel } from '../../src/engine/model/loader';
import { openGguf } from '../../src/engine/model/gguf';
import { KvlensError } from '../../src/engine/errors';
import { mulberry32 } from '../../src/engine/random';

const MODELS = resolve(__dirname, '..', 'fixtures', 'models');
const FIXTURE = join(MODELS, 'llama-gqa-tied-rope3-gguf', 'model.gguf');
const SAFETENSORS_MODEL = join(MODELS, 'llama-gqa-tied-rope3-f32');
const CASES = 400;

/** Values that sit on the edges of the header's integer fields. */
const EDGES = [0n, 1n, 2n, 3n, 4n, 255n, 2n ** 16n - 1n, 2n ** 31n - 1n, 2n ** 32n - 1n, 2n ** 32n, 2n ** 53n, 2n ** 63n, 2n ** 64n - 1n];

function mutate(original: Buffer, headerEnd: number, random: () => number): Buffer {
  const bytes = Buffer.from(original);
  const at = (limit: number) => Math.floor(random() * limit);
  const edits = 1 + at(3);
  for (let e = 0; e < edits; e++) {
    const kind = at(4);
    if (kind === 0) bytes[at(headerEnd)] = at(256);
    else if (kind === 1) {
      // An edge value or one past it, kept inside u64.
      const value = EDGES[at(EDGES.length)] + BigInt(at(2));
      bytes.writeBigUInt64LE(value > 2n ** 64n - 1n ? 2n ** 64n - 1n : value, at(headerEnd - 8));
    } else if (kind === 2) {
      bytes.writeUInt32LE(Number(EDGES[at(9)] & 0xffffffffn), at(headerEnd - 4));
    } else return bytes.subarray(0, at(original.length));
  }
  return bytes;
}

test('gguf fuzz: mutated headers load or fail with a KvlensError naming the file, quickly and in bounded memory', () => {
  const original = readFileSync(FIXTURE);
  const headerEnd = openGguf(FIXTURE).dataStart;
  const dir = mkdtempSync(join(tmpdir(), 'kvlens-gguf-fuzz-'));
  const random = mulberry32(17);
  const outcomes = { loaded: 0, refused: 0 };
  const peakBefore = process.resourceUsage().maxRSS;
  try {
    for (let i = 0; i < CASES; i++) {
      const file = join(dir, `case-${i}.gguf`);
      writeFileSync(file, mutate(original, headerEnd, random));
      const started = Date.now();
      try {
        loadModel(file);
        outcomes.loaded++;
      } catch (error) {
        assert.ok(error instanceof KvlensError, `case ${i}: ${String(error)}`);
        assert.ok(error.message.startsWith(`${file}: `) || error.message.includes(file), `case ${i}: ${error.message}`);
        assert.ok(!error.message.includes('\n'), `case ${i}: one line`);
        outcomes.refused++;
      }
      assert.ok(Date.now() - started < 2000, `case ${i} took ${Date.now() - started} ms`);
      rmSync(file);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const growth = (process.resourceUsage().maxRSS - peakBefore) / 1024;
  assert.ok(growth < 256, `peak RSS grew by ${growth.toFixed(0)} MiB`);
  // The loop exercises both outcomes (mutations of string bytes or data can still load).
  assert.ok(outcomes.refused > CASES / 2 && outcomes.loaded > 0, JSON.stringify(outcomes));
});

/** Numbers a forged JSON header may carry where counts, shapes and offsets go. */
const JSON_EDGES = ['0', '-1', '1e308', '18446744073709551615', '9007199254740993', '4294967296', '1.5', '"7"', 'null', '[]'];

function mutateSafetensors(original: Buffer, random: () => number): Buffer {
  const at = (limit: number) => Math.floor(random() * limit);
  const headerLength = Number(original.readBigUInt64LE(0));
  const kind = at(4);
  if (kind === 0) {
    const bytes = Buffer.from(original);
    bytes.writeBigUInt64LE(EDGES[at(EDGES.length)], 0);
    return bytes;
  }
  if (kind === 1) {
    const bytes = Buffer.from(original);
    bytes[8 + at(headerLength)] = at(256);
    return bytes;
  }
  if (kind === 2) return original.subarray(0, at(original.length));
  // Replace one number of the JSON header (a shape, an offset) and keep the declared length in step.
  const json = original.subarray(8, 8 + headerLength).toString('utf8');
  const numbers = [...json.matchAll(/\d+/g)];
  const target = numbers[at(numbers.length)];
  const edited = Buffer.from(json.slice(0, target.index) + JSON_EDGES[at(JSON_EDGES.length)] + json.slice(target.index! + target[0].length), 'utf8');
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(edited.length));
  return Buffer.concat([length, edited, original.subarray(8 + headerLength)]);
}

test('safetensors fuzz: mutated headers load or fail with a KvlensError naming the file, quickly and in bounded memory', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kvlens-st-fuzz-'));
  for (const name of readdirSync(SAFETENSORS_MODEL)) if (name !== 'model.safetensors') copyFileSync(join(SAFETENSORS_MODEL, name), join(dir, name));
  const original = readFileSync(join(SAFETENSORS_MODEL, 'model.safetensors'));
  const file = join(dir, 'model.safetensors');
  const random = mulberry32(23);
  const outcomes = { loaded: 0, refused: 0 };
  const peakBefore = process.resourceUsage().maxRSS;
  try {
    for (let i = 0; i < CASES; i++) {
      writeFileSync(file, mutateSafetensors(original, random));
      const started = Date.now();
      try {
        loadModel(dir);
        outcomes.loaded++;
      } catch (error) {
        assert.ok(error instanceof KvlensError, `case ${i}: ${String(error)}`);
        assert.ok(error.message.includes(dir), `case ${i}: ${error.message}`);
        assert.ok(!error.message.includes('\n'), `case ${i}: one line`);
        outcomes.refused++;
      }
      assert.ok(Date.now() - started < 2000, `case ${i} took ${Date.now() - started} ms`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const growth = (process.resourceUsage().maxRSS - peakBefore) / 1024;
  assert.ok(growth < 256, `peak RSS grew by ${growth.toFixed(0)} MiB`);
  assert.ok(outcomes.refused > CASES / 2, JSON.stringify(outcomes));
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import {
  openSafetensorsCheckpoint,
  readCheckpointTensors,
  readSafetensorsHeader,
  readSafetensorsTensors,
} from '../../src/engine/model/safetensors';
import { assertKvlensError } from '../helpers/errors';

const MODELS = resolve(__dirname, '..', 'fixtures', 'models');
const LLAMA_F32 = join(MODELS, 'llama-gqa-tied-rope3-f32', 'model.safetensors');

type HeaderJson = Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] } | Record<string, string>>;

/** Splits a safetensors file by hand (independently of the reader under test). */
function splitFile(file: string): { header: HeaderJson; data: Buffer } {
  const bytes = readFileSync(file);
  const length = Number(bytes.readBigUInt64LE(0));
  return { header: JSON.parse(bytes.subarray(8, 8 + length).toString('utf8')) as HeaderJson, data: bytes.subarray(8 + length) };
}

function joinFile(header: unknown, data: Uint8Array, lengthOverride?: bigint): Buffer {
  const json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header), 'utf8');
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(lengthOverride ?? BigInt(json.length));
  return Buffer.concat([prefix, json, data]);
}

function tmpDir(): string {
  return mkdtempSync(join(tmpdir(), 'kvlens-st-'));
}


test('safetensors: F32 tensors equal the raw little-endian floats at their offsets', () => {
  const { header, data } = splitFile(LLAMA_F32);
  const weights = readSafetensorsTensors(readSafetensorsHeader(LLAMA_F32));
  const names = Object.keys(header).filter((k) => k !== '__metadata__');
  assert.equal(weights.size, names.length);
  for (const name of names) {
    const entry = header[name] as { shape: number[]; data_offsets: [number, number] };
    const tensor = weights.get(name)!;
    assert.deepEqual(tensor.shape, entry.shape);
    assert.equal(tensor.sourceDtype, 'F32');
    const [begin] = entry.data_offsets;
    for (const i of [0, 1, tensor.data.length >> 1, tensor.data.length - 1]) {
      assert.equal(tensor.data[i], data.readFloatLE(begin + 4 * i), `${name}[${i}]`);
    }
  }
});

function halfBitsToNumber(bits: number): number {
  // Written out from the IEEE 754 binary16 definition, separately from the reader's table.
  const sign = bits >> 15 ? -1 : 1;
  const exponent = (bits >> 10) & 31;
  const fraction = bits & 1023;
  if (exponent === 31) return fraction ? NaN : sign * Infinity;
  if (exponent === 0) return sign * fraction * Math.pow(2, -24);
  return sign * Math.pow(2, exponent - 15) * (1 + fraction / 1024);
}

function bf16BitsToNumber(bits: number): number {
  const view = new DataView(new ArrayBuffer(4));
  view.setUint16(0, bits);
  view.setUint16(2, 0);
  return view.getFloat32(0);
}

test('safetensors: F16 and BF16 special and subnormal values decode exactly', () => {
  const halfBits = [0x3c00, 0xc000, 0x0001, 0x03ff, 0x7bff, 0x7c00, 0xfc00, 0x8000, 0x3555, 0x7e00];
  const bfBits = [0x3f80, 0xc040, 0x0001, 0x7f7f, 0x7f80, 0xff80, 0x8000, 0x3eab, 0x7fc0, 0x4049];
  const data = Buffer.alloc(40);
  halfBits.forEach((b, i) => data.writeUInt16LE(b, 2 * i));
  bfBits.forEach((b, i) => data.writeUInt16LE(b, 20 + 2 * i));
  const file = join(tmpDir(), 'special.safetensors');
  writeFileSync(
    file,
    joinFile({ h: { dtype: 'F16', shape: [2, 5], data_offsets: [0, 20] }, b: { dtype: 'BF16', shape: [10], data_offsets: [20, 40] } }, data),
  );
  const weights = readSafetensorsTensors(readSafetensorsHeader(file));
  const h = weights.get('h')!;
  const b = weights.get('b')!;
  assert.deepEqual(h.shape, [2, 5]);
  assert.equal(h.sourceDtype, 'F16');
  assert.equal(b.sourceDtype, 'BF16');
  halfBits.forEach((bits, i) => assert.ok(Object.is(h.data[i], Math.fround(halfBitsToNumber(bits))), `f16 0x${bits.toString(16)}: ${h.data[i]}`));
  bfBits.forEach((bits, i) => assert.ok(Object.is(b.data[i], bf16BitsToNumber(bits)), `bf16 0x${bits.toString(16)}: ${b.data[i]}`));
  assert.equal(h.data[0], 1);
  assert.equal(h.data[4], 65504);
  assert.equal(b.data[1], -3);
});

for (const [dtype, relative] of [['f16', 2 ** -11], ['bf16', 2 ** -8]] as const) {
  for (const model of ['llama-gqa-tied-rope3', 'qwen2-bias-untied']) {
    test(`safetensors: ${model} ${dtype} weights are the F32 weights rounded to ${dtype}`, () => {
      const full = readSafetensorsTensors(readSafetensorsHeader(join(MODELS, `${model}-f32`, 'model.safetensors')));
      const half = readSafetensorsTensors(readSafetensorsHeader(join(MODELS, `${model}-${dtype}`, 'model.safetensors')));
      assert.deepEqual([...half.keys()].sort(), [...full.keys()].sort());
      for (const [name, tensor] of half) {
        const reference = full.get(name)!;
        assert.deepEqual(tensor.shape, reference.shape);
        let exact = 0;
        for (let i = 0; i < tensor.data.length; i++) {
          const want = reference.data[i];
          // Round-to-nearest keeps the error within half an ulp: 2^-11 (f16) or 2^-8 (bf16) relative, normal range.
          assert.ok(Math.abs(tensor.data[i] - want) <= relative * Math.abs(want) + 1e-7, `${name}[${i}]: ${tensor.data[i]} vs ${want}`);
          if (tensor.data[i] === want) exact++;
        }
        // Random weights almost never sit on a half-precision grid point: identical data would mean no rounding happened.
        assert.ok(exact < tensor.data.length / 4, `${name}: ${exact}/${tensor.data.length} values unchanged`);
      }
    });
  }
}

test('safetensors: the sharded checkpoint holds exactly the single-file tensors', () => {
  const sharded = openSafetensorsCheckpoint(join(MODELS, 'llama-gqa-tied-rope3-f32-sharded'));
  assert.equal(sharded.headers.length, 4);
  const weights = readCheckpointTensors(sharded, sharded.tensorFile.keys());
  const single = readSafetensorsTensors(readSafetensorsHeader(LLAMA_F32));
  assert.equal(weights.size, single.size);
  for (const [name, tensor] of single) assert.deepEqual(weights.get(name)!.data, tensor.data, name);
});

test('safetensors errors: file shorter than the length prefix, header length past the end', () => {
  const dir = tmpDir();
  const tiny = join(dir, 'tiny.safetensors');
  writeFileSync(tiny, Buffer.from([1, 2, 3]));
  assertKvlensError(() => readSafetensorsHeader(tiny), tiny, /too short/);
  const { header, data } = splitFile(LLAMA_F32);
  const file = join(dir, 'long-header.safetensors');
  writeFileSync(file, joinFile(header, data, 10n ** 12n));
  assertKvlensError(() => readSafetensorsHeader(file), file, /header length 1000000000000 runs past the end of the file/);
});

test('safetensors errors: invalid JSON header', () => {
  const file = join(tmpDir(), 'bad-json.safetensors');
  writeFileSync(file, joinFile('{"a": {"dtype": "F32", ', Buffer.alloc(0)));
  assertKvlensError(() => readSafetensorsHeader(file), file, /invalid JSON header/);
});

test('safetensors errors: unknown and unsupported dtypes are named', () => {
  const dir = tmpDir();
  const unknown = join(dir, 'unknown.safetensors');
  writeFileSync(unknown, joinFile({ w: { dtype: 'F17', shape: [2], data_offsets: [0, 8] } }, Buffer.alloc(8)));
  assertKvlensError(() => readSafetensorsHeader(unknown), unknown, /tensor "w" has unknown dtype "F17" \(supported: F32, F16, BF16\)/);
  const int8 = join(dir, 'int8.safetensors');
  writeFileSync(int8, joinFile({ w: { dtype: 'I8', shape: [8], data_offsets: [0, 8] } }, Buffer.alloc(8)));
  assertKvlensError(() => readSafetensorsHeader(int8), int8, /unsupported dtype "I8"/);
});

test('safetensors errors: data_offsets not matching shape x dtype, out of range, overlapping, leaving holes', () => {
  const dir = tmpDir();
  const cases: Array<[string, unknown, number, RegExp]> = [
    ['size', { w: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, 8, /span 8 bytes but shape \[3\] x F32 needs 12/],
    ['range', { w: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, 8, /run past the end of the data \(8 bytes/],
    ['overlap', { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }, 12, /overlap/],
    ['hole', { a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] }, b: { dtype: 'F32', shape: [1], data_offsets: [8, 12] } }, 12, /hole at bytes \[4, 8\)/],
    ['trailing', { a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, 12, /holds 12 bytes but the tensors cover 4/],
    ['reversed', { a: { dtype: 'F32', shape: [1], data_offsets: [4, 0] } }, 4, /invalid data_offsets/],
    ['shape', { a: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, 4, /invalid shape/],
  ];
  for (const [name, header, dataBytes, pattern] of cases) {
    const file = join(dir, `${name}.safetensors`);
    writeFileSync(file, joinFile(header, Buffer.alloc(dataBytes)));
    assertKvlensError(() => readSafetensorsHeader(file), file, pattern);
  }
});

test('safetensors errors: a truncated fixture is refused before any data is read', () => {
  const file = join(tmpDir(), 'model.safetensors');
  const bytes = readFileSync(LLAMA_F32);
  writeFileSync(file, bytes.subarray(0, bytes.length - 100));
  assertKvlensError(() => readSafetensorsHeader(file), file, /run past the end of the data.*truncated/);
});

test('safetensors errors: missing tensor requested by name', () => {
  const header = readSafetensorsHeader(LLAMA_F32);
  assertKvlensError(() => readSafetensorsTensors(header, ['lm_head.weight']), LLAMA_F32, /missing tensor "lm_head\.weight"/);
});

function copySharded(): string {
  const source = join(MODELS, 'llama-gqa-tied-rope3-f32-sharded');
  const dir = tmpDir();
  for (const name of readdirSync(source)) copyFileSync(join(source, name), join(dir, name));
  return dir;
}

test('safetensors errors: index pointing at a missing shard, invalid index, misplaced tensor', () => {
  const dir = copySharded();
  const indexFile = join(dir, 'model.safetensors.index.json');
  const index = JSON.parse(readFileSync(indexFile, 'utf8')) as { weight_map: Record<string, string> };
  const good = JSON.stringify(index);
  index.weight_map['model.norm.weight'] = 'model-00009-of-00004.safetensors';
  writeFileSync(indexFile, JSON.stringify(index));
  assertKvlensError(() => openSafetensorsCheckpoint(dir), indexFile, /shard "model-00009-of-00004\.safetensors", which does not exist/);

  const moved = JSON.parse(good) as { weight_map: Record<string, string> };
  const shards = [...new Set(Object.values(moved.weight_map))].sort();
  const wrongShard = shards.find((s) => s !== moved.weight_map['model.norm.weight'])!;
  moved.weight_map['model.norm.weight'] = wrongShard;
  writeFileSync(indexFile, JSON.stringify(moved));
  assertKvlensError(() => openSafetensorsCheckpoint(dir), join(dir, wrongShard), /index places tensor "model\.norm\.weight" in this shard/);

  writeFileSync(indexFile, '{"weight_map": ');
  assertKvlensError(() => openSafetensorsCheckpoint(dir), indexFile, /not valid JSON/);
  writeFileSync(indexFile, '{"metadata": {}}');
  assertKvlensError(() => openSafetensorsCheckpoint(dir), indexFile, /no "weight_map"/);
});

test('safetensors errors: folder with no weights at all', () => {
  const dir = tmpDir();
  assertKvlensError(() => openSafetensorsCheckpoint(dir), dir, /no model\.safetensors or model\.safetensors\.index\.json/);
});

// llama.cpp's KV cache types: the bytes kvlens holds for a row are the bytes ggml's own quantizers write
// (test/fixtures/llamacpp-kv, made by tools/make_llamacpp_kv_fixture.py from node-llama-cpp's libggml and gguf-py).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { canonicalSpec, createMethod, listMethods, verifyCompression } from '../../src/engine/kv';
import { DenseLayerCache, type PackedKvCodes } from '../../src/engine/kv/cache';
import { encodeKv } from '../../src/engine/kv/kv-dtype';
import { LLAMACPP_CACHE_TYPES, llamaCppCodec } from '../../src/engine/kv/quant/ggml-rows';
import { halfBitsOfFloatBits } from '../../src/engine/kv/quant/half';
import { roundToHalf } from '../../src/engine/kv/quant/round-half';
import { makeConfig, makePrefill } from './kv-fixture';

interface TypeReference {
  typeId: number;
  blockBytes: number;
  bytes: string;
  values: string;
}

const fixture = JSON.parse(readFileSync(resolve(__dirname, '..', 'fixtures', 'llamacpp-kv', 'reference.json'), 'utf8')) as {
  blockElements: number;
  rows: string;
  types: Record<string, TypeReference>;
};
const floats = (base64: string) => {
  const buffer = Buffer.from(base64, 'base64');
  return new Float32Array(buffer.buffer.slice(buffer.byteOffset, buffer.byteOffset + buffer.byteLength));
};
const rows = floats(fixture.rows);

test('llamacpp: every cache type has ggml reference blocks', () => {
  assert.deepEqual(Object.keys(fixture.types).sort(), [...LLAMACPP_CACHE_TYPES].sort());
});

for (const type of LLAMACPP_CACHE_TYPES) {
  test(`llamacpp ${type}: rows quantize to ggml's bytes, block by block, and decode to gguf-py's values`, () => {
    const reference = fixture.types[type];
    const expected = new Uint8Array(Buffer.from(reference.bytes, 'base64'));
    const width = 64;
    const codec = llamaCppCodec(type, width, 'test');
    assert.equal(codec.rowBytes, (width / 32) * reference.blockBytes);
    assert.equal(codec.parts.packed + codec.parts.scales + codec.parts.zeroPoints + codec.parts.fullPrecision, codec.rowBytes);
    // Written at an odd offset of a larger buffer, as rows sit inside a head's store.
    const buffer = new Uint8Array(expected.length + 3);
    const view = new DataView(buffer.buffer);
    for (let r = 0; r < rows.length / width; r++) codec.encode(rows.subarray(r * width, (r + 1) * width), view, 3 + r * codec.rowBytes);
    const got = buffer.subarray(3);
    for (let b = 0; b < expected.length / reference.blockBytes; b++) {
      const at = b * reference.blockBytes;
      assert.deepEqual(
        Array.from(got.subarray(at, at + reference.blockBytes)),
        Array.from(expected.subarray(at, at + reference.blockBytes)),
        `${type} block ${b} differs from ggml's (input ${Array.from(rows.subarray(b * 32, b * 32 + 4)).join(', ')}, ...)`,
      );
    }
    const values = floats(reference.values);
    const decoded = new Float32Array(rows.length);
    for (let r = 0; r < rows.length / width; r++) codec.decode(buffer, view, 3 + r * codec.rowBytes, decoded, r * width);
    for (let i = 0; i < values.length; i++) {
      // gguf-py rounds d·q and then + m in float32; one rounding here can differ in the last bit.
      assert.ok(Math.abs(decoded[i] - values[i]) <= Math.abs(values[i]) * 2 ** -22, `${type} element ${i}: ${decoded[i]} vs gguf-py ${values[i]}`);
    }
  });
}

test('llamacpp: a token row of all heads is the heads\' rows side by side (blocks never span heads, as in llama.cpp\'s cell rows)', () => {
  const heads = 4;
  const headDim = 64;
  const token = rows.subarray(0, heads * headDim);
  for (const type of LLAMACPP_CACHE_TYPES) {
    const whole = llamaCppCodec(type, heads * headDim, 'test');
    const perHead = llamaCppCodec(type, headDim, 'test');
    const a = new Uint8Array(whole.rowBytes);
    const b = new Uint8Array(heads * perHead.rowBytes);
    whole.encode(token, new DataView(a.buffer), 0);
    for (let h = 0; h < heads; h++) perHead.encode(token.subarray(h * headDim, (h + 1) * headDim), new DataView(b.buffer), h * perHead.rowBytes);
    assert.deepEqual(a, b, type);
  }
});

test('llamacpp: all-zero blocks decode to zeros in every type', () => {
  for (const type of LLAMACPP_CACHE_TYPES) {
    const codec = llamaCppCodec(type, 32, 'test');
    const bytes = new Uint8Array(codec.rowBytes);
    const view = new DataView(bytes.buffer);
    codec.encode(new Float32Array(32), view, 0);
    const out = new Float32Array(32).fill(7);
    codec.decode(bytes, view, 0, out, 0);
    assert.ok(out.every((v) => v === 0), type);
  }
});

test('llamacpp: specs name the cache types; k and v independent; f16/f16 is full; bad names and head sizes are refused', () => {
  assert.equal(canonicalSpec('llamacpp'), 'llamacpp:k=q8_0,v=q8_0');
  assert.equal(canonicalSpec('llamacpp:v=Q4_0,k=q8_0'), 'llamacpp:k=q8_0,v=q4_0');
  assert.equal(canonicalSpec('snapkv:ratio=0.5+llamacpp:k=iq4_nl,v=bf16'), 'snapkv:ratio=0.5+llamacpp:k=iq4_nl,v=bf16');
  assert.throws(() => canonicalSpec('llamacpp:k=q3_k'), /llamacpp: k needs one of f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, iq4_nl, got "k=q3_k"/);
  assert.throws(() => canonicalSpec('llamacpp:k=4'), /k needs one of/);
  assert.throws(() => createMethod('llamacpp:k=f16,v=f16'), /llama\.cpp's default cache.*use full/);
  const prefill = makePrefill(40, makeConfig({ headDim: 40, hiddenSize: 160 }));
  assert.throws(
    () => createMethod('llamacpp:k=q4_0,v=f16').compress({ layers: prefill.layers, stats: null, config: prefill.config }),
    /q4_0 blocks of 32 do not divide the head size 40/,
  );
  const info = listMethods().find((m) => m.name === 'llamacpp');
  assert.ok(info?.params.every((p) => p.description.endsWith('f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, iq4_nl')));
});

test('llamacpp: bytes held are the ggml blocks of every token and head, split into codes, scales and minimums', () => {
  const prefill = makePrefill(100);
  const { config } = prefill;
  const cases: [string, number, { packed: number; scales: number; zeroPoints: number; fullPrecision: number }][] = [
    // Per token and head (64 channels = 2 blocks) for keys + values.
    ['llamacpp:k=q8_0,v=q4_0', 6, { packed: 64 + 32, scales: 4 + 4, zeroPoints: 0, fullPrecision: 0 }],
    ['llamacpp:k=q5_1,v=q4_1', 4.5, { packed: 40 + 32, scales: 4 + 4, zeroPoints: 4 + 4, fullPrecision: 0 }],
    ['llamacpp:k=f16,v=q5_0', 5, { packed: 40, scales: 4, zeroPoints: 0, fullPrecision: 128 }],
  ];
  for (const [spec, bits, perRow] of cases) {
    const method = createMethod(spec);
    const cache = method.compress({ layers: prefill.layers, stats: null, config });
    verifyCompression(method, cache, prefill.layers, config);
    assert.equal(cache.bits, bits, spec);
    const rowsHeld = 100 * config.numKvHeads * config.numLayers;
    const b = cache.bytes();
    assert.equal(b.packed, rowsHeld * perRow.packed, spec);
    assert.equal(b.scales, rowsHeld * perRow.scales, spec);
    assert.equal(b.zeroPoints, rowsHeld * perRow.zeroPoints, spec);
    assert.equal(b.fullPrecision, rowsHeld * perRow.fullPrecision, spec);
    assert.equal(b.positions, rowsHeld * 4, spec);
  }
  // bf16 keeps the size of an fp16 cache: a different rounding, not a compression.
  const bf16 = createMethod('llamacpp:k=bf16,v=bf16');
  const cache = bf16.compress({ layers: prefill.layers, stats: null, config });
  assert.equal(verifyCompression(bf16, cache, prefill.layers, config).promise.cacheShrinks, false);
  assert.equal(cache.bits, null);
});

test('llamacpp: what attention reads is the stored blocks decoded, for every head and token', () => {
  const prefill = makePrefill(64);
  const { config } = prefill;
  const cache = createMethod('llamacpp:k=q4_1,v=iq4_nl').compress({ layers: prefill.layers, stats: null, config });
  const keyCodec = llamaCppCodec('q4_1', config.headDim, 'test');
  const valueCodec = llamaCppCodec('iq4_nl', config.headDim, 'test');
  const d = config.headDim;
  cache.views().forEach((view, l) => {
    for (let i = 0; i < view.length * config.numKvHeads; i++) {
      for (const [codec, source, got] of [
        [keyCodec, prefill.keys[l], view.keys],
        [valueCodec, prefill.values[l], view.values],
      ] as const) {
        const bytes = new Uint8Array(codec.rowBytes);
        const dv = new DataView(bytes.buffer);
        codec.encode(source.subarray(i * d, (i + 1) * d), dv, 0);
        const want = new Float32Array(d);
        codec.decode(bytes, dv, 0, want, 0);
        assert.deepEqual(got.subarray(i * d, (i + 1) * d), want, `layer ${l} slot-head ${i}`);
      }
    }
  });
});

test('row caches over an fp16 prefill hand attention fp16 patterns: each decoded value rounded to fp16, as the forward pass rounds them', () => {
  const base = makePrefill(48);
  const { config } = base;
  const layers = base.layers.map((layer, l) => {
    const half = new DenseLayerCache(config.numKvHeads, config.headDim, 48, 'fp16');
    half.append(base.keys[l], base.values[l], Array.from(layer.view().positions.filter((_, i) => i % config.numKvHeads === 0)));
    return half;
  });
  // Keys and values of different widths (here: against f16 or bf16 rows) cannot be read as codes, so they come as fp16 rows.
  const specs = [...LLAMACPP_CACHE_TYPES.filter((t) => t !== 'f16').map((t) => `llamacpp:k=${t},v=${t === 'bf16' ? 'q4_0' : 'f16'}`), 'llamacpp:k=q5_0,v=q5_1'];
  for (const spec of specs) {
    const method = createMethod(spec);
    const cache = method.compress({ layers, stats: null, config });
    verifyCompression(method, cache, layers, config);
    // The same cache over fp32 rows of the same (fp16-rounded) prompt decodes to fp32 values; rounding those must give the patterns.
    const exact = method.compress({ layers: layers.map((layer) => widen(layer)), stats: null, config });
    cache.views().forEach((view, l) => {
      assert.ok(view.stored?.dtype === 'fp16', `${spec}: fp16 patterns`);
      const want = exact.views()[l];
      for (const part of ['keys', 'values'] as const) {
        const rounded = new Uint16Array(want[part].length);
        encodeKv('fp16', want[part], rounded, 0);
        assert.deepEqual(view.stored?.[part], rounded, `${spec} layer ${l} ${part}`);
      }
    });
  }
});

/** An fp32 copy of a cache (same values, same positions). */
function widen(layer: DenseLayerCache): DenseLayerCache {
  const view = layer.view();
  const wide = new DenseLayerCache(layer.numKvHeads, layer.headDim, view.length, 'fp32');
  wide.append(view.keys, view.values, Array.from(view.positions.filter((_, i) => i % layer.numKvHeads === 0)));
  return wide;
}

test('roundToHalf gives halfBitsOfFloatBits for every kind of fp32: normals, ties, carries, subnormals, overflow, NaN', () => {
  const patterns: number[] = [];
  for (let bits = 0; bits < 2 ** 32; bits += 4099) patterns.push(bits);
  for (const e of [0, 1, 101, 102, 112, 113, 142, 143, 255]) {
    for (const m of [0, 1, 0xfff, 0x1000, 0x1001, 0x2000, 0x3000, 0x7fe000, 0x7ff000, 0x7fffff]) for (const sign of [0, 1]) patterns.push(((sign << 31) | (e << 23) | m) >>> 0);
  }
  const bits = Uint32Array.from(patterns);
  const values = new Float32Array(bits.buffer);
  const got = new Uint16Array(values.length + 2);
  roundToHalf(values, got, 2);
  for (let i = 0; i < bits.length; i++) assert.equal(got[i + 2], halfBitsOfFloatBits(bits[i]), `0x${bits[i].toString(16)}`);
});

test('row caches the graph can read as codes: q8_0, q4_0, q4_1 and iq4_nl blocks and FP8 bytes decode, by level · scale + zero, to exactly the rows', () => {
  const prefill = makePrefill(40);
  const { config } = prefill;
  const d = config.headDim;
  for (const spec of ['llamacpp:k=q8_0,v=q8_0', 'llamacpp:k=q4_0,v=q4_1', 'llamacpp:k=iq4_nl,v=iq4_nl', 'vllm', 'vllm:dtype=fp8_e5m2,scale=calculated']) {
    const cache = createMethod(spec).compress({ layers: prefill.layers, stats: null, config });
    cache.views().forEach((view, l) => {
      const packed = view.quantized;
      if (!packed) throw new Error(`${spec}: not offered as codes`);
      assert.ok(packed.tokens === view.length && packed.residual.length === 0);
      for (const part of ['keys', 'values'] as const) {
        const codes: PackedKvCodes = packed[part];
        const bytes = new Uint8Array(codes.codeBytes);
        const scales = new Float32Array(codes.paramCount);
        const zeros = new Float32Array(codes.paramCount);
        codes.write(bytes, scales, zeros);
        const [heads, tokens, groups, width]: number[] = codes.shape;
        const perByte = packed.codesPerByte;
        for (let h = 0; h < heads; h++) {
          for (let t = 0; t < tokens; t++) {
            for (let c = 0; c < d; c++) {
              const e = (h * tokens + t) * d + c;
              const code = (bytes[Math.floor(e / perByte)] >> ((e % perByte) * packed.bits)) & ((1 << packed.bits) - 1);
              const byte = bytes[Math.floor(e / perByte)];
              const level = packed.table ? packed.table[byte * perByte + (e % perByte)] : code;
              const g = (h * tokens + t) * groups + Math.floor(c / width);
              const value = Math.fround(Math.fround(level * scales[g]) + zeros[g]);
              // === rather than Object.is: the graph's 8·d − 8·d is +0 where (8 − 8)·d may be −0.
              assert.ok(value === view[part][(t * heads + h) * d + c], `${spec} layer ${l} ${part} head ${h} token ${t} channel ${c}`);
            }
          }
        }
      }
    });
  }
  const mixed = createMethod('llamacpp:k=q8_0,v=q4_0').compress({ layers: prefill.layers, stats: null, config });
  assert.equal(mixed.views()[0].quantized, undefined, 'keys and values of different code widths are not offered as codes');
});

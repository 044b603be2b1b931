import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, readFileSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { loadModel } from '../../src/engine/model/loader';
import { ggufConfig, openGguf } from '../../src/engine/model/gguf';
import { readSafetensorsHeader, readSafetensorsTensors } from '../../src/engine/model/safetensors';
import type { LoadedModel } from '../../src/engine/model/types';
import { assertKvlensError } from '../helpers/errors';

const MODELS = resolve(__dirname, '..', 'fixtures', 'models');

// ---- A small GGUF writer, written from the format description (independent of the reader). ----

type Meta =
  | { kind: 'u32'; value: number }
  | { kind: 'f32'; value: number }
  | { kind: 'str'; value: string }
  | { kind: 'bool'; value: boolean }
  | { kind: 'u64'; value: number }
  | { kind: 'strings'; value: string[] }
  | { kind: 'i32s'; value: number[] };

interface RawTensor {
  name: string;
  /** ggml order: fastest dimension first. */
  ne: number[];
  type: number;
  bytes: Uint8Array;
}

const TYPE = { F32: 0, F16: 1, Q4_0: 2, Q8_0: 8, Q4_K: 12, IQ2_XXS: 16, BF16: 30 };

function u32(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v);
  return b;
}
function u64(v: number | bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(v));
  return b;
}
function str(s: string): Buffer {
  const bytes = Buffer.from(s, 'utf8');
  return Buffer.concat([u64(bytes.length), bytes]);
}
function metaValue(m: Meta): Buffer {
  switch (m.kind) {
    case 'u32':
      return Buffer.concat([u32(4), u32(m.value)]);
    case 'f32': {
      const b = Buffer.alloc(4);
      b.writeFloatLE(m.value);
      return Buffer.concat([u32(6), b]);
    }
    case 'str':
      return Buffer.concat([u32(8), str(m.value)]);
    case 'bool':
      return Buffer.concat([u32(7), Buffer.from([m.value ? 1 : 0])]);
    case 'u64':
      return Buffer.concat([u32(10), u64(m.value)]);
    case 'strings':
      return Buffer.concat([u32(9), u32(8), u64(m.value.length), ...m.value.map(str)]);
    case 'i32s':
      return Buffer.concat([u32(9), u32(5), u64(m.value.length), ...m.value.map((v) => { const b = Buffer.alloc(4); b.writeInt32LE(v); return b; })]);
  }
}

function ggufFile(metadata: Array<[string, Meta]>, tensors: RawTensor[], options: { version?: number; alignment?: number; magic?: string } = {}): Buffer {
  const alignment = options.alignment ?? 32;
  const pad = (n: number) => (alignment - (n % alignment)) % alignment;
  const parts: Buffer[] = [Buffer.from(options.magic ?? 'GGUF', 'latin1'), u32(options.version ?? 3), u64(tensors.length), u64(metadata.length)];
  for (const [key, value] of metadata) parts.push(str(key), metaValue(value));
  let offset = 0;
  const offsets: number[] = [];
  for (const t of tensors) {
    offsets.push(offset);
    offset += t.bytes.length + pad(t.bytes.length);
  }
  tensors.forEach((t, i) => parts.push(str(t.name), u32(t.ne.length), ...t.ne.map((d) => u64(d)), u32(t.type), u64(offsets[i])));
  const head = Buffer.concat(parts);
  const body: Buffer[] = [head, Buffer.alloc(pad(head.length))];
  for (const t of tensors) body.push(Buffer.from(t.bytes), Buffer.alloc(pad(t.bytes.length)));
  return Buffer.concat(body);
}

// ---- Encoders used to build tensors, and the values the reader must produce. ----

function f32Bytes(data: Float32Array): Uint8Array {
  return new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength));
}

/** llama.cpp's converter permutation: rows viewed as [heads, 2, half] are stored as [heads, half, 2]. */
function llamaCppPermute(rows: Uint8Array, rowCount: number, heads: number): Uint8Array {
  const rowBytes = rows.length / rowCount;
  const perHead = rowCount / heads;
  const half = perHead / 2;
  const out = new Uint8Array(rows.length);
  for (let h = 0; h < heads; h++) {
    for (let pair = 0; pair < 2; pair++) {
      for (let k = 0; k < half; k++) {
        const hfRow = h * perHead + pair * half + k;
        const ggufRow = h * perHead + k * 2 + pair;
        out.set(rows.subarray(hfRow * rowBytes, (hfRow + 1) * rowBytes), ggufRow * rowBytes);
      }
    }
  }
  return out;
}

/** Power-of-two scales are exact in fp16, so the expected dequantized values are exact too. */
function powerOfTwoScale(maxAbs: number, levels: number): { scale: number; bits: number } {
  const exponent = Math.max(-14, Math.ceil(Math.log2(Math.max(maxAbs, 1e-30) / levels)));
  return { scale: 2 ** exponent, bits: (exponent + 15) << 10 };
}

function quantizeQ8_0(data: Float32Array): { bytes: Uint8Array; expected: Float32Array } {
  const blocks = data.length / 32;
  const bytes = Buffer.alloc(blocks * 34);
  const expected = new Float32Array(data.length);
  for (let b = 0; b < blocks; b++) {
    const block = data.subarray(b * 32, b * 32 + 32);
    const { scale, bits } = powerOfTwoScale(Math.max(...block.map(Math.abs)), 127);
    bytes.writeUInt16LE(bits, b * 34);
    for (let j = 0; j < 32; j++) {
      const q = Math.max(-128, Math.min(127, Math.round(block[j] / scale)));
      bytes.writeInt8(q, b * 34 + 2 + j);
      // int8 has no negative zero
      expected[b * 32 + j] = q * scale || 0;
    }
  }
  return { bytes, expected };
}

function quantizeQ4_0(data: Float32Array): { bytes: Uint8Array; expected: Float32Array } {
  const blocks = data.length / 32;
  const bytes = Buffer.alloc(blocks * 18);
  const expected = new Float32Array(data.length);
  for (let b = 0; b < blocks; b++) {
    const block = data.subarray(b * 32, b * 32 + 32);
    const { scale, bits } = powerOfTwoScale(Math.max(...block.map(Math.abs)), 7);
    bytes.writeUInt16LE(bits, b * 18);
    const code = (x: number) => Math.max(-8, Math.min(7, Math.round(x / scale))) + 8;
    for (let j = 0; j < 16; j++) {
      const lo = code(block[j]);
      const hi = code(block[j + 16]);
      bytes[b * 18 + 2 + j] = lo | (hi << 4);
      expected[b * 32 + j] = (lo - 8) * scale;
      expected[b * 32 + j + 16] = (hi - 8) * scale;
    }
  }
  return { bytes, expected };
}

/** The raw stored bytes of one tensor of a safetensors fixture (to carry F16/BF16 over unchanged). */
function rawSafetensorsBytes(file: string, name: string): Uint8Array {
  const header = readSafetensorsHeader(file);
  const entry = header.tensors.get(name)!;
  return new Uint8Array(readFileSync(file).subarray(header.dataStart + entry.begin, header.dataStart + entry.end));
}

/** llama3 rope divisors written out from transformers' _compute_llama3_parameters. */
function llama3Divisors(theta: number, dim: number, factor: number, low: number, high: number, original: number): Float32Array {
  const out = new Float32Array(dim / 2);
  for (let k = 0; k < dim / 2; k++) {
    const freq = 1 / Math.pow(theta, (2 * k) / dim);
    const wavelen = (2 * Math.PI) / freq;
    if (wavelen < original / high) out[k] = 1;
    else if (wavelen > original / low) out[k] = factor;
    else {
      const smooth = (original / wavelen - low) / (high - low);
      const scaledFreq = (1 - smooth) * (freq / factor) + smooth * freq;
      out[k] = freq / scaledFreq;
    }
  }
  return out;
}

const llamaMeta = (overrides: Record<string, Meta> = {}): Array<[string, Meta]> => {
  const base: Record<string, Meta> = {
    'general.architecture': { kind: 'str', value: 'llama' },
    'general.name': { kind: 'str', value: 'fixture' },
    'llama.context_length': { kind: 'u32', value: 4096 },
    'llama.embedding_length': { kind: 'u32', value: 64 },
    'llama.block_count': { kind: 'u32', value: 2 },
    'llama.feed_forward_length': { kind: 'u32', value: 128 },
    'llama.attention.head_count': { kind: 'u32', value: 4 },
    'llama.attention.head_count_kv': { kind: 'u32', value: 2 },
    'llama.rope.freq_base': { kind: 'f32', value: 20000 },
    'llama.rope.dimension_count': { kind: 'u32', value: 16 },
    'llama.attention.layer_norm_rms_epsilon': { kind: 'f32', value: 1e-5 },
    'tokenizer.ggml.model': { kind: 'str', value: 'gpt2' },
    'tokenizer.ggml.tokens': { kind: 'strings', value: ['<s>', 'a', 'b', 'ü'] },
    'tokenizer.ggml.token_type': { kind: 'i32s', value: [3, 1, 1, 1] },
    'tokenizer.ggml.bos_token_id': { kind: 'u32', value: 0 },
    'tokenizer.ggml.eos_token_id': { kind: 'u32', value: 1 },
    'tokenizer.ggml.add_bos_token': { kind: 'bool', value: true },
    'general.file_type': { kind: 'u64', value: 7 },
  };
  return Object.entries({ ...base, ...overrides });
};

interface Built {
  file: Buffer;
  /** HF name -> what the reader must return. */
  expected: Map<string, Float32Array>;
}

/** The llama fixture as a mixed-type GGUF: F32, F16 and BF16 bytes carried over, Q8_0/Q4_0 quantized here. */
function buildLlamaGguf(f32: LoadedModel, options: { metaOverrides?: Record<string, Meta>; extra?: RawTensor[]; ropeFreqs?: Float32Array; typeOverride?: number } = {}): Built {
  const f16File = join(MODELS, 'llama-gqa-tied-rope3-f16', 'model.safetensors');
  const bf16File = join(MODELS, 'llama-gqa-tied-rope3-bf16', 'model.safetensors');
  const f16 = loadModel(join(MODELS, 'llama-gqa-tied-rope3-f16'));
  const bf16 = loadModel(join(MODELS, 'llama-gqa-tied-rope3-bf16'));
  const tensors: RawTensor[] = [];
  const expected = new Map<string, Float32Array>();
  const add = (gguf: string, hf: string, type: 'F32' | 'F16' | 'BF16' | 'Q8_0' | 'Q4_0', permuteHeads = 0) => {
    const source = f32.weights.get(hf)!;
    const ne = [...source.shape].reverse();
    let bytes: Uint8Array;
    let want: Float32Array;
    if (type === 'F32') [bytes, want] = [f32Bytes(source.data), source.data];
    else if (type === 'F16') [bytes, want] = [rawSafetensorsBytes(f16File, hf), f16.weights.get(hf)!.data];
    else if (type === 'BF16') [bytes, want] = [rawSafetensorsBytes(bf16File, hf), bf16.weights.get(hf)!.data];
    else {
      // Quantize the HF rows first, then permute whole rows: blocks never straddle rows (64 % 32 == 0).
      const q = type === 'Q8_0' ? quantizeQ8_0(source.data) : quantizeQ4_0(source.data);
      [bytes, want] = [q.bytes, q.expected];
    }
    if (permuteHeads) bytes = llamaCppPermute(bytes, source.shape[0], permuteHeads);
    tensors.push({ name: gguf, ne, type: TYPE[type], bytes });
    expected.set(hf, want);
  };
  add('token_embd.weight', 'model.embed_tokens.weight', 'F32');
  const ropeFreqs = options.ropeFreqs ?? llama3Divisors(20000, 16, 8, 1, 4, 32);
  tensors.push({ name: 'rope_freqs.weight', ne: [ropeFreqs.length], type: TYPE.F32, bytes: f32Bytes(ropeFreqs) });
  for (let l = 0; l < 2; l++) {
    const p = `model.layers.${l}.`;
    add(`blk.${l}.attn_norm.weight`, `${p}input_layernorm.weight`, 'F32');
    add(`blk.${l}.attn_q.weight`, `${p}self_attn.q_proj.weight`, l === 0 ? 'Q8_0' : 'F32', 4);
    add(`blk.${l}.attn_k.weight`, `${p}self_attn.k_proj.weight`, l === 0 ? 'F16' : 'Q4_0', 2);
    add(`blk.${l}.attn_v.weight`, `${p}self_attn.v_proj.weight`, l === 0 ? 'Q4_0' : 'F32');
    add(`blk.${l}.attn_output.weight`, `${p}self_attn.o_proj.weight`, l === 0 ? 'F32' : 'BF16');
    add(`blk.${l}.ffn_norm.weight`, `${p}post_attention_layernorm.weight`, 'F32');
    add(`blk.${l}.ffn_gate.weight`, `${p}mlp.gate_proj.weight`, 'F32');
    add(`blk.${l}.ffn_up.weight`, `${p}mlp.up_proj.weight`, l === 0 ? 'F32' : 'Q8_0');
    add(`blk.${l}.ffn_down.weight`, `${p}mlp.down_proj.weight`, 'F32');
  }
  add('output_norm.weight', 'model.norm.weight', 'F32');
  if (options.typeOverride !== undefined) tensors[0].type = options.typeOverride;
  tensors.push(...(options.extra ?? []));
  return { file: ggufFile(llamaMeta(options.metaOverrides), tensors), expected };
}

function writeTmp(name: string, bytes: Buffer): string {
  const file = join(mkdtempSync(join(tmpdir(), 'kvlens-gguf-')), name);
  writeFileSync(file, bytes);
  return file;
}


const llamaF32 = loadModel(join(MODELS, 'llama-gqa-tied-rope3-f32'));

test('gguf: the test quantizers stay within half a step of the weights they encode', () => {
  const data = llamaF32.weights.get('model.layers.0.self_attn.q_proj.weight')!.data;
  const q8 = quantizeQ8_0(data).expected;
  const q4 = quantizeQ4_0(data).expected;
  for (let i = 0; i < data.length; i++) {
    assert.ok(Math.abs(q8[i] - data[i]) <= 0.004, `q8 ${i}`);
    assert.ok(Math.abs(q4[i] - data[i]) <= 0.05, `q4 ${i}`);
  }
});

test('gguf: llama file with F32/F16/BF16/Q8_0/Q4_0 tensors loads to HF names, layout and values (q/k un-permuted)', () => {
  const built = buildLlamaGguf(llamaF32);
  const file = writeTmp('model.gguf', built.file);
  const model = loadModel(file);
  assert.equal(model.weights.size, built.expected.size);
  for (const [name, want] of built.expected) {
    const got = model.weights.get(name);
    assert.ok(got, `missing ${name}`);
    assert.deepEqual(got.shape, llamaF32.weights.get(name)!.shape, name);
    assert.deepEqual(got.data, want, name);
  }
  assert.equal(model.weights.get('model.layers.0.self_attn.q_proj.weight')!.sourceDtype, 'Q8_0');
  assert.equal(model.weights.get('model.layers.1.self_attn.k_proj.weight')!.sourceDtype, 'Q4_0');
  assert.equal(model.weights.get('model.layers.0.self_attn.k_proj.weight')!.sourceDtype, 'F16');
  assert.equal(model.weights.get('model.layers.1.self_attn.o_proj.weight')!.sourceDtype, 'BF16');
  assert.equal(model.weights.has('lm_head.weight'), false);
  assert.equal(model.parameterCount, llamaF32.parameterCount);
  assert.equal(model.dtype, 'F32');
  assert.equal(model.dir, resolve(file, '..'));
});

test('gguf: metadata maps to the same config as the safetensors checkpoint, llama3 rope scaling recovered from rope_freqs', () => {
  const file = writeTmp('model.gguf', buildLlamaGguf(llamaF32).file);
  const config = ggufConfig(openGguf(file));
  const want = llamaF32.config;
  for (const key of ['architecture', 'hfArchitecture', 'hiddenSize', 'intermediateSize', 'numLayers', 'numHeads', 'numKvHeads', 'headDim', 'vocabSize', 'ropeTheta', 'tieWordEmbeddings', 'attentionBias', 'maxPositionEmbeddings', 'bosTokenId'] as const) {
    assert.deepEqual(config[key], want[key], key);
  }
  assert.deepEqual(config.ropeScaling, want.ropeScaling);
  assert.ok(Math.abs(config.rmsNormEps - 1e-5) < 1e-12);
  assert.deepEqual(config.eosTokenIds, [1]);
});

test('gguf: qwen2 file maps biases and lm_head without any permutation', () => {
  const qwen = loadModel(join(MODELS, 'qwen2-bias-untied-f32'));
  const names: Array<[string, string]> = [
    ['token_embd.weight', 'model.embed_tokens.weight'],
    ['output_norm.weight', 'model.norm.weight'],
    ['output.weight', 'lm_head.weight'],
  ];
  const parts: Array<[string, string]> = [
    ['attn_norm.weight', 'input_layernorm.weight'], ['attn_q.weight', 'self_attn.q_proj.weight'], ['attn_q.bias', 'self_attn.q_proj.bias'],
    ['attn_k.weight', 'self_attn.k_proj.weight'], ['attn_k.bias', 'self_attn.k_proj.bias'], ['attn_v.weight', 'self_attn.v_proj.weight'],
    ['attn_v.bias', 'self_attn.v_proj.bias'], ['attn_output.weight', 'self_attn.o_proj.weight'], ['ffn_norm.weight', 'post_attention_layernorm.weight'],
    ['ffn_gate.weight', 'mlp.gate_proj.weight'], ['ffn_up.weight', 'mlp.up_proj.weight'], ['ffn_down.weight', 'mlp.down_proj.weight'],
  ];
  for (let l = 0; l < 2; l++) for (const [g, h] of parts) names.push([`blk.${l}.${g}`, `model.layers.${l}.${h}`]);
  const tensors = names.map(([g, h]) => {
    const t = qwen.weights.get(h)!;
    return { name: g, ne: [...t.shape].reverse(), type: TYPE.F32, bytes: f32Bytes(t.data) };
  });
  const meta: Array<[string, Meta]> = [
    ['general.architecture', { kind: 'str', value: 'qwen2' }],
    ['qwen2.context_length', { kind: 'u32', value: 4096 }],
    ['qwen2.embedding_length', { kind: 'u32', value: 64 }],
    ['qwen2.block_count', { kind: 'u32', value: 2 }],
    ['qwen2.feed_forward_length', { kind: 'u32', value: 96 }],
    ['qwen2.attention.head_count', { kind: 'u32', value: 4 }],
    ['qwen2.attention.head_count_kv', { kind: 'u32', value: 2 }],
    ['qwen2.rope.freq_base', { kind: 'f32', value: 1e6 }],
    ['qwen2.attention.layer_norm_rms_epsilon', { kind: 'f32', value: 1e-6 }],
    ['general.alignment', { kind: 'u32', value: 64 }],
  ];
  const file = writeTmp('qwen.gguf', ggufFile(meta, tensors, { version: 2, alignment: 64 }));
  const model = loadModel(file);
  assert.equal(model.config.architecture, 'qwen2');
  assert.equal(model.config.tieWordEmbeddings, false);
  assert.equal(model.weights.size, qwen.weights.size);
  for (const [name, tensor] of qwen.weights) assert.deepEqual(model.weights.get(name)!.data, tensor.data, name);
});

test('gguf errors: bad magic, unsupported version, truncated metadata, truncated data', () => {
  const good = buildLlamaGguf(llamaF32).file;
  const magic = writeTmp('a.gguf', Buffer.concat([Buffer.from('GGUX'), good.subarray(4)]));
  assertKvlensError(() => loadModel(magic), magic, /not a GGUF file/);
  const v1 = Buffer.from(good);
  v1.writeUInt32LE(1, 4);
  const version = writeTmp('b.gguf', v1);
  assertKvlensError(() => loadModel(version), version, /GGUF version 1 is not supported \(supported: 2, 3\)/);
  const shortMeta = writeTmp('c.gguf', good.subarray(0, 60));
  assertKvlensError(() => loadModel(shortMeta), shortMeta, /metadata count 18 and tensor count 21 need at least 906 bytes, more than the 36 bytes left for the header: corrupt GGUF/);
  const cutString = forgedGguf('cut.gguf', 0, 1, [str('general.name'), u32(8), u64(40), Buffer.from('fixture')]);
  assertKvlensError(() => loadModel(cutString), cutString, /file ends at byte 63 while reading metadata "general\.name" at byte 56 \(truncated or corrupt GGUF\)/);
  const shortData = writeTmp('d.gguf', good.subarray(0, good.length - 100));
  assertKvlensError(() => loadModel(shortData), shortData, /runs past the end of the file .*truncated file/);
  const hugeCount = Buffer.from(good);
  hugeCount.writeBigUInt64LE(1n << 40n, 8);
  const count = writeTmp('e.gguf', hugeCount);
  assertKvlensError(() => loadModel(count), count, /tensor count is 1099511627776, larger than the file/);
});

test('gguf errors: unsupported tensor type and architecture are named', () => {
  const iq2 = writeTmp('iq.gguf', buildLlamaGguf(llamaF32, { typeOverride: TYPE.IQ2_XXS }).file);
  assertKvlensError(() => loadModel(iq2), iq2, /tensor "token_embd\.weight" uses ggml type IQ2_XXS, not supported \(supported: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K\)/);
  // k-quants work on 256-element super-blocks; the fixture's rows are shorter
  const quantK = writeTmp('k.gguf', buildLlamaGguf(llamaF32, { typeOverride: TYPE.Q4_K }).file);
  assertKvlensError(() => loadModel(quantK), quantK, /tensor "token_embd\.weight" row length \d+ is not a multiple of the Q4_K block size 256/);
  const gemma = writeTmp('g.gguf', buildLlamaGguf(llamaF32, { metaOverrides: { 'general.architecture': { kind: 'str', value: 'gemma' } } }).file);
  assertKvlensError(() => loadModel(gemma), gemma, /unsupported GGUF architecture "gemma" \(supported: llama, qwen2, qwen3\)/);
});

test('gguf errors: shape mismatch with metadata, unknown tensors, unmatched rope_freqs', () => {
  const ffn = writeTmp('f.gguf', buildLlamaGguf(llamaF32, { metaOverrides: { 'llama.feed_forward_length': { kind: 'u32', value: 96 } } }).file);
  assertKvlensError(() => loadModel(ffn), ffn, /tensor "model\.layers\.0\.mlp\.gate_proj\.weight" has shape \[128, 64\] but config\.json implies \[96, 64\]/);
  const extra = { name: 'blk.0.attn_post_norm.weight', ne: [16], type: TYPE.F32, bytes: new Uint8Array(64) };
  const unknown = writeTmp('u.gguf', buildLlamaGguf(llamaF32, { extra: [extra] }).file);
  assertKvlensError(() => loadModel(unknown), unknown, /unexpected tensors "blk\.0\.attn_post_norm\.weight"/);
  // Qwen3's q/k norms in a llama file map to their HF names, which a Llama forward pass has no use for.
  const qkNorm = writeTmp('n.gguf', buildLlamaGguf(llamaF32, { extra: [{ ...extra, name: 'blk.0.attn_q_norm.weight' }] }).file);
  assertKvlensError(() => loadModel(qkNorm), qkNorm, /unexpected tensor "model\.layers\.0\.self_attn\.q_norm\.weight": the LlamaForCausalLM forward pass has no use for it/);
  const odd = writeTmp('r.gguf', buildLlamaGguf(llamaF32, { ropeFreqs: new Float32Array([1, 1.3, 2.9, 3.3, 5, 6, 7, 7.5]) }).file);
  assertKvlensError(() => loadModel(odd), odd, /rope_freqs\.weight does not match any llama3 rope scaling/);
  const yarn = writeTmp('y.gguf', buildLlamaGguf(llamaF32, { metaOverrides: { 'llama.rope.scaling.type': { kind: 'str', value: 'yarn' } } }).file);
  assertKvlensError(() => loadModel(yarn), yarn, /rope scaling type "yarn" is not supported/);
});

test('gguf: a file written by gguf-py in llama.cpp conventions loads to exactly the weights transformers reads from it', () => {
  // Fixture from tools/make_gguf_fixture.py: Q8_0/Q4_0/F16/F32 tensors, permuted q/k, rope_freqs.
  const dir = join(MODELS, 'llama-gqa-tied-rope3-gguf');
  const model = loadModel(join(dir, 'model.gguf'));
  const reference = readSafetensorsTensors(readSafetensorsHeader(join(dir, 'transformers-weights.safetensors')));
  assert.equal(model.weights.size, reference.size);
  for (const [name, tensor] of reference) {
    const got = model.weights.get(name)!;
    assert.deepEqual(got.shape, tensor.shape, name);
    assert.deepEqual(got.data, tensor.data, name);
  }
  assert.equal(model.weights.get('model.embed_tokens.weight')!.sourceDtype, 'Q8_0');
  assert.equal(model.weights.get('model.layers.0.self_attn.k_proj.weight')!.sourceDtype, 'Q4_0');
  assert.equal(model.weights.get('model.layers.0.self_attn.v_proj.weight')!.sourceDtype, 'F16');
  assert.equal(model.dtype, 'Q8_0');
  assert.deepEqual(model.config.ropeScaling, llamaF32.config.ropeScaling);
  assert.equal(model.config.tieWordEmbeddings, true);
});

// ---- Forged headers: every count is checked against what the file can hold before anything is allocated. ----

/** A GGUF v3 header with the given counts, then `body`; `sparseSize` extends the file with a hole (no disk used). */
function forgedGguf(name: string, tensorCount: number | bigint, kvCount: number | bigint, body: Buffer[], sparseSize?: number): string {
  const file = writeTmp(name, Buffer.concat([Buffer.from('GGUF', 'latin1'), u32(3), u64(tensorCount), u64(kvCount), ...body]));
  if (sparseSize !== undefined) truncateSync(file, sparseSize);
  return file;
}

/** Peak RSS growth while `fn` runs, in MiB. */
function peakGrowthMiB(fn: () => void): number {
  const before = process.resourceUsage().maxRSS;
  fn();
  return (process.resourceUsage().maxRSS - before) / 1024;
}

test('gguf bounds: a sparse 256 MiB file holding one huge metadata array is refused before the array is built', () => {
  // 200M one-byte elements fit in the file; as a JavaScript array they would take gigabytes (V8 aborted the process).
  const file = forgedGguf('array.gguf', 0, 1, [str('tokenizer.ggml.scores'), u32(9), u32(0), u64(200_000_000)], 256 * 2 ** 20);
  const growth = peakGrowthMiB(() => assertKvlensError(() => openGguf(file), file, /metadata "tokenizer\.ggml\.scores" takes the metadata arrays past 16777216 elements in all: corrupt GGUF/));
  assert.ok(growth < 64, `peak RSS grew by ${growth.toFixed(0)} MiB`);
});

test('gguf bounds: array lengths and counts must fit in the bytes the file has left', () => {
  // 1000 u64 elements need 8000 bytes; the file has about 4000 left.
  const array = forgedGguf('short-array.gguf', 0, 1, [str('x'), u32(9), u32(10), u64(1000), Buffer.alloc(4000)]);
  assertKvlensError(() => openGguf(array), array, /metadata "x" claims 1000 elements \(at least 8000 bytes\), more than the 4000 bytes left for the header: corrupt GGUF/);
  // Arrays of strings: each element is at least its 8-byte length.
  const strings = forgedGguf('short-strings.gguf', 0, 1, [str('tokenizer.ggml.tokens'), u32(9), u32(8), u64(600), Buffer.alloc(4000)]);
  assertKvlensError(() => openGguf(strings), strings, /metadata "tokenizer\.ggml\.tokens" claims 600 elements \(at least 4800 bytes\)/);
  // 1000 tensor-table entries need at least 32 bytes each.
  const table = forgedGguf('short-table.gguf', 1000, 0, [Buffer.alloc(2000)]);
  assertKvlensError(() => openGguf(table), table, /metadata count 0 and tensor count 1000 need at least 32000 bytes, more than the 2000 bytes left for the header: corrupt GGUF/);
  // The table is checked again once the metadata has taken its share.
  const afterMeta = forgedGguf('after-meta.gguf', 100, 1, [str('big'), u32(8), str('y'.repeat(3000)), Buffer.alloc(400)]);
  assertKvlensError(() => openGguf(afterMeta), afterMeta, /tensor count 100 needs at least 3200 bytes of tensor table, more than the 400 bytes left/);
});

test('gguf bounds: absurd tensor and metadata counts are refused even when a sparse file could hold them', () => {
  const tensors = forgedGguf('tensors.gguf', 100_000, 0, [], 64 * 2 ** 20);
  assertKvlensError(() => openGguf(tensors), tensors, /tensor count is 100000, more than 65536: corrupt GGUF/);
  const entries = forgedGguf('entries.gguf', 0, 5_000_000, [], 256 * 2 ** 20);
  assertKvlensError(() => openGguf(entries), entries, /metadata count is 5000000, more than 65536: corrupt GGUF/);
  // A 300 MiB string is cut off at the header limit instead of being read into memory.
  const text = forgedGguf('string.gguf', 0, 1, [str('tokenizer.chat_template'), u32(8), u64(300 * 2 ** 20)], 512 * 2 ** 20);
  const growth = peakGrowthMiB(() => assertKvlensError(() => openGguf(text), text, /metadata "tokenizer\.chat_template" at byte \d+ takes the header \(metadata and tensor table\) past 256 MiB: corrupt GGUF/));
  assert.ok(growth < 64, `peak RSS grew by ${growth.toFixed(0)} MiB`);
});

test('gguf bounds: a huge rope_freqs.weight is refused by its shape before it is read or decoded', () => {
  const embedding = new Uint8Array(64 * 4 * 4);
  const entries = 2 ** 27; // 512 MiB of F32 in a sparse file of a few KB on disk
  const head = ggufFile(llamaMeta(), [
    { name: 'token_embd.weight', ne: [64, 4], type: TYPE.F32, bytes: embedding },
    { name: 'rope_freqs.weight', ne: [entries], type: TYPE.F32, bytes: new Uint8Array(0) },
  ]);
  const file = writeTmp('rope.gguf', head);
  truncateSync(file, head.length + entries * 4);
  const growth = peakGrowthMiB(() => assertKvlensError(() => loadModel(file), file, /rope_freqs\.weight has shape \[134217728\] \(134217728 entries\), expected \[8\] \(head dim 16\)/));
  assert.ok(growth < 64, `peak RSS grew by ${growth.toFixed(0)} MiB`);
});

test('gguf config bounds: an absurd block_count, a non-positive epsilon or RoPE base are refused naming the file and key', () => {
  const cases: [Record<string, Meta>, RegExp][] = [
    [{ 'llama.block_count': { kind: 'u32', value: 1e9 } }, /"llama\.block_count" is 1000000000, more than any supported model has \(at most 1024\)/],
    [{ 'llama.context_length': { kind: 'u64', value: 2 ** 40 } }, /"llama\.context_length" is 1099511627776, more than/],
    [{ 'llama.feed_forward_length': { kind: 'u32', value: 4e9 } }, /"llama\.feed_forward_length" is 4000000000, more than/],
    [{ 'llama.attention.layer_norm_rms_epsilon': { kind: 'f32', value: -1 } }, /"llama\.attention\.layer_norm_rms_epsilon" must be a positive number, found -1/],
    [{ 'llama.rope.freq_base': { kind: 'f32', value: 0 } }, /"llama\.rope\.freq_base" must be a positive number, found 0/],
  ];
  for (const [overrides, pattern] of cases) {
    const file = writeTmp('bad.gguf', buildLlamaGguf(llamaF32, { metaOverrides: overrides }).file);
    const started = Date.now();
    assertKvlensError(() => loadModel(file), file, pattern);
    assert.ok(Date.now() - started < 2000, `${JSON.stringify(overrides)}: ${Date.now() - started} ms`);
  }
  // Within the bound, but more layers than the file has tensors for.
  const more = writeTmp('more.gguf', buildLlamaGguf(llamaF32, { metaOverrides: { 'llama.block_count': { kind: 'u32', value: 500 } } }).file);
  assertKvlensError(() => loadModel(more), more, /"llama\.block_count" is 500 but the weights \(.*more\.gguf\) hold tensors of 2 layers/);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, mkdtempSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ModelTokenizer } from '../../src/engine/tokenizer/tokenizer';

const ROOT = join(__dirname, '..', '..');
interface Case {
  source: string;
  name: string;
  messages: { role: string; content: string }[];
  rendered: string;
}
const expected = JSON.parse(readFileSync(join(ROOT, 'test', 'fixtures', 'tokenizers', 'chat-expected.json'), 'utf8')) as { cases: Case[] };

test('chat prompts render exactly as transformers apply_chat_template renders them (Qwen3, Llama 3, a fixture)', () => {
  assert.ok(expected.cases.length >= 6);
  for (const c of expected.cases) {
    const tokenizer = ModelTokenizer.fromDir(join(ROOT, c.source));
    assert.equal(tokenizer.hasChatTemplate, true, c.name);
    assert.equal(tokenizer.applyChatTemplate(c.messages), c.rendered, c.name);
  }
});

test('a tokenizer without a chat template, or with a broken one, says so and names the file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kvlens-chat-'));
  copyFileSync(join(ROOT, 'test', 'fixtures', 'models', 'llama-gqa-tied-rope3-f32', 'tokenizer.json'), join(dir, 'tokenizer.json'));
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ bos_token: '<s>' }));
  assert.throws(() => ModelTokenizer.fromDir(dir).applyChatTemplate([{ role: 'user', content: 'x' }]), /tokenizer.json: the tokenizer has no chat_template/);
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ chat_template: '{% for m in messages %}{{ m.content ' }));
  assert.throws(() => ModelTokenizer.fromDir(dir).applyChatTemplate([{ role: 'user', content: 'x' }]), /cannot render its chat_template/);
});

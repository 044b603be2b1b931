// Random blocks of every ggml block format and gguf-py's dequantization of them
// (tools/make_ggml_quant_fixture.py), keyed by type name.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';

export interface GgmlReference {
  typeId: number;
  blockElements: number;
  blockBytes: number;
  /** base64 of the raw blocks */
  bytes: string;
  /** base64 of gguf-py's fp32 values */
  values: string;
}

export function ggmlReferences(): Record<string, GgmlReference> {
  return JSON.parse(readFileSync(resolve(__dirname, '..', 'fixtures', 'ggml-quants', 'reference.json'), 'utf8'));
}

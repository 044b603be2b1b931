// Every method the engine knows. Adding a method = one file in methods/ + one line here.
import type { MethodDefinition, Paper } from './definition';
import type { Family, Phase } from './method';
import { adakv } from './methods/adakv';
import { chunkkv } from './methods/chunkkv';
import { expectedattention } from './methods/expectedattention';
import { flexgen } from './methods/flexgen';
import { fp8 } from './methods/fp8';
import { full } from './methods/full';
import { h2o } from './methods/h2o';
import { infllm } from './methods/infllm';
import { int8 } from './methods/int8';
import { keydiff } from './methods/keydiff';
import { kivi } from './methods/kivi';
import { knorm } from './methods/knorm';
import { llamacpp } from './methods/llamacpp';
import { llmlingua } from './methods/llmlingua';
import { pyramidkv } from './methods/pyramidkv';
import { quest } from './methods/quest';
import { random } from './methods/random';
import { scissorhands } from './methods/scissorhands';
import { snapkv } from './methods/snapkv';
import { streamingllm } from './methods/streamingllm';
import { think } from './methods/think';
import { tova } from './methods/tova';
import { vllm } from './methods/vllm';

export const METHODS: readonly MethodDefinition[] = [
  full,
  random,
  knorm,
  keydiff,
  expectedattention,
  streamingllm,
  h2o,
  scissorhands,
  snapkv,
  pyramidkv,
  chunkkv,
  adakv,
  tova,
  infllm,
  quest,
  kivi,
  flexgen,
  int8,
  fp8,
  vllm,
  llamacpp,
  think,
  llmlingua,
];

export function findMethod(name: string): MethodDefinition | undefined {
  return METHODS.find((m) => m.name === name);
}

export interface MethodInfo {
  name: string;
  family: Family;
  phases: Phase[];
  summary: string;
  /** A named parameter (llamacpp's `k`, `v`) gives its default as the index of the name and lists the names in its description. */
  params: { name: string; default: number | null; min: number; max: number; choices: number[] | null; description: string }[];
  paper: Paper | null;
}

/** What `kvlens methods --json` prints. */
export function listMethods(): MethodInfo[] {
  return METHODS.map((m) => ({
    name: m.name,
    family: m.family,
    phases: [...m.phases],
    summary: m.summary,
    params: m.params.map((p) => ({ name: p.name, default: p.default, min: p.min, max: p.max, choices: p.choices ?? null, description: p.names ? `${p.description}: ${p.names.join(', ')}` : p.description })),
    paper: m.paper,
  }));
}

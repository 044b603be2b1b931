// Method specs: `name[:key=value,...]` stages joined by `+`, e.g. `snapkv:ratio=0.5,window=32+kivi:bits=4`.
// Parsing validates names, parameters and the combination; formatting gives one canonical string per configuration.
import { KvlensError } from '../errors';
import type { MethodDefinition, ParamSpec } from './definition';
import { METHODS, findMethod } from './registry';

export interface StageSpec {
  name: string;
  /** Every parameter of the method: given, defaulted, or null when unset. */
  params: Record<string, number | null>;
  /** Parameters written in the spec. */
  explicit: string[];
}

export interface ParsedSpec {
  stages: StageSpec[];
}

const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i;
const ORDER = ['prompt-compression', 'token-dropping', 'quantization'];

function fail(spec: string, problem: string): never {
  throw new KvlensError(problem, `method spec "${spec}"`);
}

function describeParam(p: ParamSpec): string {
  if (p.names) return `${p.name} in {${p.names.join(', ')}}`;
  if (p.choices) return `${p.name} in {${p.choices.join(', ')}}`;
  const lo = `${p.min}${p.minExclusive ? ' <' : ' <='}`;
  const hi = `${p.maxExclusive ? '< ' : '<= '}${p.max}`;
  return `${lo} ${p.name} ${hi}${p.integer ? ' (integer)' : ''}`;
}

function validParams(def: MethodDefinition): string {
  return def.params.length ? def.params.map(describeParam).join('; ') : 'none';
}

function parseStage(text: string, spec: string): StageSpec {
  const [name, ...rest] = text.split(':');
  const def = findMethod(name.trim().toLowerCase());
  if (!def) fail(spec, `unknown method "${name.trim()}" (valid: ${METHODS.map((m) => m.name).join(', ')})`);
  const params: Record<string, number | null> = {};
  for (const p of def.params) params[p.name] = p.default;
  const explicit: string[] = [];
  const body = rest.join(':').trim();
  if (rest.length > 0 && body === '') fail(spec, `"${def.name}:" has no parameters after the colon`);
  for (const pair of body ? body.split(',') : []) {
    const [rawKey, value, ...extra] = pair.split('=').map((s) => s.trim());
    const key = rawKey.toLowerCase();
    const p = def.params.find((q) => q.name === key);
    if (!p) fail(spec, `${def.name} has no parameter "${key}" (valid: ${validParams(def)})`);
    if (explicit.includes(key)) fail(spec, `${def.name}: ${key} given twice`);
    if (p.names) {
      const index = value === undefined || extra.length > 0 ? -1 : p.names.indexOf(value.toLowerCase());
      if (index < 0) fail(spec, `${def.name}: ${key} needs one of ${p.names.join(', ')}, got "${pair.trim()}"`);
      params[key] = index;
      explicit.push(key);
      continue;
    }
    if (value === undefined || extra.length > 0 || !NUMBER.test(value)) fail(spec, `${def.name}: ${key} needs a number, got "${pair.trim()}"`);
    const n = Number(value);
    const inRange =
      (p.minExclusive ? n > p.min : n >= p.min) && (p.maxExclusive ? n < p.max : n <= p.max) && (!p.integer || Number.isInteger(n));
    if (!inRange || (p.choices && !p.choices.includes(n))) fail(spec, `${def.name}: ${key}=${value} is out of range (valid: ${describeParam(p)})`);
    params[key] = n;
    explicit.push(key);
  }
  if (explicit.includes('ratio') && explicit.includes('budget')) fail(spec, `${def.name}: give ratio (fraction removed) or budget (tokens kept per head), not both`);
  if (explicit.includes('budget') && 'ratio' in params) params.ratio = null;
  return { name: def.name, params, explicit };
}

function checkCombination(stages: StageSpec[], spec: string): void {
  const defs = stages.map((s) => findMethod(s.name) as MethodDefinition);
  if (defs.length > 1 && defs.some((d) => d.family === 'baseline')) {
    fail(spec, '"full" means no compression and cannot be combined with other methods');
  }
  for (let i = 1; i < defs.length; i++) {
    const [a, b] = [defs[i - 1], defs[i]];
    if (a.family === b.family) fail(spec, `two ${a.family} methods (${a.name}, ${b.name}): use at most one of each family`);
    if (ORDER.indexOf(a.family) > ORDER.indexOf(b.family)) {
      fail(spec, `${b.name} (${b.family}) must come before ${a.name} (${a.family}): stages go prompt compression + token dropping + quantization`);
    }
  }
  const dropper = defs.find((d) => d.family === 'token-dropping');
  const quantizer = defs.find((d) => d.family === 'quantization');
  if (dropper && quantizer && dropper.ownLayout) {
    fail(spec, `${dropper.name} keeps its own block memory and cannot be combined with a quantizer`);
  }
  if (dropper && quantizer && dropper.phases.includes('decode') && !quantizer.tokenwise) {
    const prefillOnly = METHODS.filter((m) => m.family === 'token-dropping' && !m.phases.includes('decode')).map((m) => m.name);
    const tokenwise = METHODS.filter((m) => m.tokenwise).map((m) => m.name);
    fail(
      spec,
      `${dropper.name} keeps evicting while decoding, but ${quantizer.name} quantizes groups spanning several tokens; ` +
        `combine ${quantizer.name} with ${prefillOnly.join(', ')}, or ${dropper.name} with ${tokenwise.join(', ')}`,
    );
  }
}

export function parseSpec(spec: string): ParsedSpec {
  if (typeof spec !== 'string' || spec.trim() === '') fail(String(spec), `empty method spec (valid methods: ${METHODS.map((m) => m.name).join(', ')})`);
  const stages = spec.split('+').map((part) => {
    if (part.trim() === '') fail(spec, 'empty stage around "+"');
    return parseStage(part.trim(), spec);
  });
  checkCombination(stages, spec);
  return { stages };
}

export function formatStage(stage: StageSpec): string {
  const def = findMethod(stage.name);
  if (!def) throw new KvlensError(`unknown method "${stage.name}"`);
  const shown = def.params.filter((p) => {
    const value = stage.params[p.name];
    if (value === null || value === undefined) return false;
    return p.canonical || value !== p.default;
  });
  const body = shown.map((p) => `${p.name}=${p.names ? p.names[stage.params[p.name] as number] : stage.params[p.name]}`).join(',');
  return body ? `${def.name}:${body}` : def.name;
}

export function formatSpec(spec: ParsedSpec): string {
  return spec.stages.map(formatStage).join('+');
}

/** The canonical form of a spec string (parse, then format). */
export function canonicalSpec(spec: string): string {
  return formatSpec(parseSpec(spec));
}

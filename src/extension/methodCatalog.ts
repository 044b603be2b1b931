// What "Compare Methods" offers, from the engine's own registry (its `methods` answer): a spec per allowed
// value of a method's choice parameters (kivi's bit widths), a few ratios for each method sized by `ratio`,
// and every method by name, each described by the registry's one-line summary.
import type { MethodInfo } from '../engine/kv';

/** Fractions of the cache removed that a comparison usually spans. */
const COMPARED_RATIOS = [0.25, 0.5, 0.75];

/** The specs offered for one method, e.g. kivi:bits=2 and kivi:bits=4, or snapkv:ratio=0.25 … 0.75. */
export function variantSpecs(method: MethodInfo): string[] {
  const choices = method.params.filter((p) => p.choices !== null && p.choices.length > 1);
  if (choices.length > 0) return choices.flatMap((p) => (p.choices ?? []).map((value) => `${method.name}:${p.name}=${value}`));
  if (method.params.some((p) => p.name === 'ratio')) return COMPARED_RATIOS.map((ratio) => `${method.name}:ratio=${ratio}`);
  return [];
}

export interface OfferedMethod {
  spec: string;
  description: string;
}

/**
 * Every spec to offer except `full` (always run as the baseline): the registry's variants, the configured and
 * remembered specs, then each method by its bare name (its defaults).
 */
export function offeredMethods(registry: readonly MethodInfo[], configured: readonly string[], remembered: readonly string[]): OfferedMethod[] {
  const summaries = new Map(registry.map((m) => [m.name, m.summary]));
  const candidates = [...registry.flatMap(variantSpecs), ...configured, ...remembered, ...registry.map((m) => m.name)];
  return [...new Set(candidates)].filter((spec) => spec !== 'full').map((spec) => ({ spec, description: summaries.get(spec.split(':')[0]) ?? '' }));
}

// Structural checks for data crossing a trust boundary (the engine child process, the webview, files on disk).
// Each check returns a problem sentence naming the offending path, or null when the value fits. A `Check<T>`
// also carries the type it admits (exactly: neither wider nor narrower), so a table of checks is held to the
// types it guards at compile time.

export type Problem = string | null;

/** A check of `value` (found at `path`) that, when it passes, proves the value is a `T`. */
export type Check<T> = ((value: unknown, path: string) => Problem) & { readonly admits?: (value: T) => T };

/** Names the type a plain check function admits. */
export function check<T>(fn: (value: unknown, path: string) => Problem): Check<T> {
  return fn as Check<T>;
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function describeValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
  const text = JSON.stringify(value);
  if (text === undefined) return typeof value;
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

export function expectString(value: unknown, path: string): Problem {
  return typeof value === 'string' ? null : `${path} must be a string, found ${describeValue(value)}`;
}

export function expectNonEmptyString(value: unknown, path: string): Problem {
  return typeof value === 'string' && value.length > 0 ? null : `${path} must be a non-empty string, found ${describeValue(value)}`;
}

export function expectNumber(value: unknown, path: string): Problem {
  return typeof value === 'number' && Number.isFinite(value) ? null : `${path} must be a finite number, found ${describeValue(value)}`;
}

export function expectInteger(value: unknown, path: string, min = Number.MIN_SAFE_INTEGER): Problem {
  return typeof value === 'number' && Number.isInteger(value) && value >= min
    ? null
    : `${path} must be an integer >= ${min}, found ${describeValue(value)}`;
}

export function expectBoolean(value: unknown, path: string): Problem {
  return typeof value === 'boolean' ? null : `${path} must be true or false, found ${describeValue(value)}`;
}

export function expectNullable(value: unknown, path: string, inner: (v: unknown, p: string) => Problem): Problem {
  return value === null ? null : inner(value, path);
}

export function expectArray(value: unknown, path: string, item: (v: unknown, p: string) => Problem): Problem {
  if (!Array.isArray(value)) return `${path} must be an array, found ${describeValue(value)}`;
  for (let i = 0; i < value.length; i++) {
    const problem = item(value[i], `${path}[${i}]`);
    if (problem) return problem;
  }
  return null;
}

export function expectOneOf<T extends string>(value: unknown, path: string, allowed: readonly T[]): Problem {
  return typeof value === 'string' && (allowed as readonly string[]).includes(value)
    ? null
    : `${path} must be one of ${allowed.join(', ')}, found ${describeValue(value)}`;
}

/** Runs checks in order and returns the first problem. */
export function firstProblem(...problems: Array<() => Problem>): Problem {
  for (const run of problems) {
    const problem = run();
    if (problem) return problem;
  }
  return null;
}

// ---- typed combinators: a check per type, built from the checks above ----

export const aString: Check<string> = check(expectString);
export const aNonEmptyString: Check<string> = check(expectNonEmptyString);
export const aNumber: Check<number> = check(expectNumber);
export const aBoolean: Check<boolean> = check(expectBoolean);

export function anInteger(min = Number.MIN_SAFE_INTEGER, max = Number.MAX_SAFE_INTEGER): Check<number> {
  return check((v, p) => expectInteger(v, p, min) ?? ((v as number) > max ? `${p} must be at most ${max}, found ${describeValue(v)}` : null));
}

export function oneOf<T extends string>(allowed: readonly T[]): Check<T> {
  return check((v, p) => expectOneOf(v, p, allowed));
}

export function nullable<T>(inner: Check<T>): Check<T | null> {
  return check((v, p) => expectNullable(v, p, inner));
}

export function optional<T>(inner: Check<T>): Check<T | undefined> {
  return check((v, p) => (v === undefined ? null : inner(v, p)));
}

/** An array of `item`s; `nonEmpty` names what an empty one lacks, e.g. "must name at least one method". */
export function arrayOf<T>(item: Check<T>, nonEmpty?: string): Check<T[]> {
  return check((v, p) => (nonEmpty && Array.isArray(v) && v.length === 0 ? `${p} ${nonEmpty}` : expectArray(v, p, item)));
}

/** An object with every field of `T` checked: a field added to `T` without a check here does not compile. */
export function objectOf<T extends object>(fields: { [K in keyof T]-?: Check<T[K]> }): Check<T> {
  return check((v, p) => {
    if (!isRecord(v)) return `${p} must be an object, found ${describeValue(v)}`;
    for (const [key, field] of Object.entries(fields) as [string, Check<unknown>][]) {
      const problem = field(v[key], p === '' ? key : `${p}.${key}`);
      if (problem) return problem;
    }
    return null;
  });
}

/** `base` and then a further condition on the whole value (which `base` has already admitted). */
export function refine<T>(base: Check<T>, extra: (value: T, path: string) => Problem): Check<T> {
  return check((v, p) => base(v, p) ?? extra(v as T, p));
}

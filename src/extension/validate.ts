// Small structural checks for data crossing a trust boundary (engine child process, webview, files on disk).
// Each check returns a problem sentence naming the offending path, or null when the value fits.

export type Problem = string | null;

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
  for (const check of problems) {
    const problem = check();
    if (problem) return problem;
  }
  return null;
}

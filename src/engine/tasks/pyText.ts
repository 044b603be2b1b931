// Python string semantics the published benchmark scorers rely on, so kvlens scores the same text the same way:
// str.split() whitespace, string.punctuation, re's Unicode \d and \w, and round() (half to even).

/** The characters Python's str.split() (no argument) and str.isspace() treat as whitespace. */
const PY_WHITESPACE = '\\t\\n\\v\\f\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const WHITESPACE_RUN = new RegExp(`[${PY_WHITESPACE}]+`, 'u');

/** `text.split()` in Python: runs of whitespace separate, leading and trailing whitespace yield nothing. */
export function pySplit(text: string): string[] {
  return text.split(WHITESPACE_RUN).filter((part) => part !== '');
}

const LEADING_WHITESPACE = new RegExp(`^[${PY_WHITESPACE}]+`, 'u');
const TRAILING_WHITESPACE = new RegExp(`[${PY_WHITESPACE}]+$`, 'u');

/** `text.strip()` in Python. */
export function pyStrip(text: string): string {
  return text.replace(LEADING_WHITESPACE, '').replace(TRAILING_WHITESPACE, '');
}

/** Python's string.punctuation: the 32 ASCII punctuation characters, and nothing else. */
export const ASCII_PUNCTUATION = '!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~';

/** `re.findall(r"\d+", text)` on a str: Python's \d matches every Unicode decimal digit (category Nd). */
export function pyFindDigitRuns(text: string): string[] {
  return text.match(/\p{Nd}+/gu) ?? [];
}

/** Python 3 round(x) to an integer: halfway cases go to the even neighbour. */
export function pyRoundHalfEven(x: number): number {
  const floor = Math.floor(x);
  const fraction = x - floor;
  if (fraction > 0.5) return floor + 1;
  if (fraction < 0.5) return floor;
  return floor % 2 === 0 ? floor : floor + 1;
}

/**
 * Python's round(x, digits) for digits 1 or 2. Both it and Number.prototype.toFixed round the exact binary
 * value of x; they differ only on exact ties, which for a double at d decimals means x = m / 2^(d+1) with m odd
 * (0.25 at one decimal, 0.125 or 33.375 at two): Python takes the even neighbour, toFixed the larger.
 */
function pyRoundDigits(x: number, digits: 1 | 2): number {
  const halves = x * 2 ** (digits + 1);
  if (Number.isInteger(halves) && halves % 2 !== 0) {
    const scale = 10 ** digits;
    const floor = Math.floor(x * scale);
    return (floor % 2 === 0 ? floor : floor + 1) / scale;
  }
  return Number(x.toFixed(digits));
}

/** Python's round(x, 2). */
export function pyRound2(x: number): number {
  return pyRoundDigits(x, 2);
}

/** Python's round(x, 1). */
export function pyRound1(x: number): number {
  return pyRoundDigits(x, 1);
}

/** Code points, as Python indexes a str. */
export function codePoints(text: string): string[] {
  return Array.from(text);
}

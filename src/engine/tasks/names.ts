// Names and values for synthetic definitions: code-like so they blend into real source, random enough that
// no model can know them in advance.
import type { Rng } from './random';

export const CODE_WORDS: readonly string[] = [
  'RETRY', 'LIMIT', 'TIMEOUT', 'BUFFER', 'CACHE', 'QUEUE', 'BATCH', 'PORT', 'POOL', 'WORKER', 'SESSION', 'TOKEN',
  'CHUNK', 'FRAME', 'OFFSET', 'WINDOW', 'THRESHOLD', 'INTERVAL', 'CAPACITY', 'SHARD', 'REPLICA', 'SOCKET',
  'STREAM', 'CURSOR', 'BUCKET', 'LEASE', 'QUOTA', 'RATE', 'DELAY', 'BACKOFF', 'DEPTH', 'WIDTH', 'HEIGHT', 'SEED',
  'EPOCH', 'BLOCK', 'PAGE', 'SLOT', 'LAYER', 'HEADER', 'PACKET', 'CLIENT', 'SERVER', 'HANDLE', 'VERSION',
  'METRIC', 'SAMPLE', 'FILTER', 'ROUTE', 'EVENT', 'SIGNAL', 'TASK', 'NODE', 'EDGE', 'GRAPH', 'INDEX', 'MAX', 'MIN',
  'DEFAULT', 'INITIAL', 'FLUSH', 'COMMIT', 'SYNC', 'LOCK', 'SPAN', 'TRACE', 'LOG', 'ALERT', 'PROBE', 'CHECK',
];

/** UPPER_SNAKE word pair such as RETRY_LIMIT. */
export function wordPair(rng: Rng): string {
  const first = rng.pick(CODE_WORDS);
  let second = rng.pick(CODE_WORDS);
  while (second === first) second = rng.pick(CODE_WORDS);
  return `${first}_${second}`;
}

/** 1 to 6 digits, no leading zero; the digit count is drawn first so short and long values are equally common. */
export function needleValue(rng: Rng): number {
  const digits = rng.int(1, 6);
  const low = digits === 1 ? 1 : 10 ** (digits - 1);
  return rng.int(low, 10 ** digits - 1);
}

/** A name with a fresh 4-hex suffix that appears nowhere in `avoid` (the context) and not in `taken`. */
export function uniqueSuffixedName(rng: Rng, stem: string, avoid: string, taken: Set<string>): string {
  for (let attempt = 0; ; attempt++) {
    const name = `${stem}_${rng.hex(4)}`;
    if (!taken.has(name) && (attempt > 64 || !avoid.includes(name))) {
      taken.add(name);
      return name;
    }
  }
}

/** `count` distinct values, none equal to another. */
export function distinctValues(rng: Rng, count: number): number[] {
  const values = new Set<number>();
  while (values.size < count) values.add(needleValue(rng));
  return [...values];
}

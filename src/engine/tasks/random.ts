// Small seeded PRNG so a (seed, task, cell, sample) tuple always yields the same sample on every machine.

import { hashString, mulberry32 } from '../random';

export { hashString, mulberry32 };

export class Rng {
  private readonly next: () => number;

  constructor(seed: number) {
    this.next = mulberry32(seed);
  }

  /** A generator whose stream depends on every part, so separate samples never share draws by accident. */
  static derive(...parts: Array<string | number>): Rng {
    return new Rng(hashString(parts.map(String).join('\u0000')));
  }

  float(): number {
    return this.next();
  }

  /** Integer in [min, max], both inclusive. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('Rng.pick: empty list');
    return items[Math.floor(this.next() * items.length)];
  }

  shuffle<T>(items: readonly T[]): T[] {
    const out = items.slice();
    for (let i = out.length - 1; i > 0; i--) {
      const j = Math.floor(this.next() * (i + 1));
      [out[i], out[j]] = [out[j], out[i]];
    }
    return out;
  }

  hex(digits: number): string {
    let out = '';
    for (let i = 0; i < digits; i++) out += Math.floor(this.next() * 16).toString(16);
    return out;
  }
}

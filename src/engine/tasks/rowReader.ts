// One imported row read field by field: every wrong or missing field is refused naming the file, the row and
// the field.
import { KvlensError } from '../errors';

export type Row = Record<string, unknown>;

export class RowReader {
  constructor(
    private readonly row: Row,
    private readonly file: string,
    readonly lineNumber: number,
    /** How errors name the row: "line" in a JSONL file, "row" in a JSON array. */
    private readonly unit: 'line' | 'row' = 'line',
  ) {}

  fail(problem: string): never {
    throw new KvlensError(`${this.unit} ${this.lineNumber}: ${problem}`, this.file);
  }

  has(key: string): boolean {
    return this.row[key] !== undefined && this.row[key] !== null;
  }

  string(key: string): string {
    const value = this.row[key];
    if (typeof value !== 'string') this.fail(`"${key}" must be a string, found ${describe(value)}`);
    return value;
  }

  optionalString(key: string): string | null {
    const value = this.row[key];
    if (value === undefined || value === null) return null;
    if (typeof value !== 'string') this.fail(`"${key}" must be a string, found ${describe(value)}`);
    return value;
  }

  optionalNumber(key: string): number | null {
    const value = this.row[key];
    if (value === undefined || value === null) return null;
    if (typeof value !== 'number' || !Number.isFinite(value)) this.fail(`"${key}" must be a number, found ${describe(value)}`);
    return value;
  }

  optionalStringList(key: string): string[] | null {
    const value = this.row[key];
    if (value === undefined || value === null) return null;
    if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) this.fail(`"${key}" must be a list of strings, found ${describe(value)}`);
    return value as string[];
  }

  /** One of `choices`, exactly. */
  choice<T extends string>(key: string, choices: readonly T[]): T {
    const value = this.row[key];
    if (typeof value !== 'string' || !(choices as readonly string[]).includes(value)) {
      this.fail(`"${key}" must be one of ${choices.join(', ')}, found ${describe(value)}`);
    }
    return value as T;
  }

  positiveInteger(key: string): number {
    const value = this.row[key];
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) this.fail(`"${key}" must be a positive integer, found ${describe(value)}`);
    return value;
  }

  stringList(key: string): string[] {
    const value = this.row[key];
    const list = typeof value === 'string' ? [value] : value;
    if (!Array.isArray(list) || list.length === 0 || !list.every((v) => typeof v === 'string' || typeof v === 'number')) {
      this.fail(`"${key}" must be a non-empty list of strings, found ${describe(value)}`);
    }
    return list.map(String);
  }
}

export function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  const text = JSON.stringify(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

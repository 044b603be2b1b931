// Every user-facing failure names the file (or input) and the problem in one line.
export class KvlensError extends Error {
  constructor(
    readonly problem: string,
    readonly file?: string,
  ) {
    super(file ? `${file}: ${problem}` : problem);
    this.name = 'KvlensError';
  }
}

export function describeError(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}

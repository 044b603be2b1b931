import assert from 'node:assert/strict';
import { KvlensError } from '../../src/engine/errors';

/** The bad-input contract: a KvlensError whose message names the file and states the problem. */
export function assertKvlensError(fn: () => unknown, file: string, pattern: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof KvlensError, `expected KvlensError, got ${String(error)}`);
    assert.ok(error.message.includes(file), `message should name ${file}: ${error.message}`);
    assert.match(error.message, pattern);
    return true;
  });
}

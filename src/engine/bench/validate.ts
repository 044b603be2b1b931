// Reads results files: checks them against schema/results.schema.json and migrates older schema versions first.
import Ajv from 'ajv';
import { readFileSync } from 'node:fs';
import { KvlensError } from '../errors';
import schema from '../../../schema/results.schema.json';
import type { ResultsFile } from './results';
import { migrateResults } from './migrate';

export { migrateResults };

const ajv = new Ajv({ allErrors: true, strict: false });
const validateSchema = ajv.compile(schema);

/** Returns the schema violations of a parsed results file (empty when valid). */
export function resultsSchemaErrors(value: unknown): string[] {
  if (validateSchema(value)) return [];
  return (validateSchema.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message ?? 'is invalid'}`);
}

/** Reads and checks a results file, migrating an older schemaVersion first. */
export function readResultsFile(path: string): ResultsFile {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new KvlensError(`cannot read results JSON (${(error as Error).message})`, path);
  }
  parsed = migrateResults(parsed);
  const errors = resultsSchemaErrors(parsed);
  if (errors.length > 0) throw new KvlensError(`not a kvlens results file: ${errors.slice(0, 3).join('; ')}`, path);
  return parsed as ResultsFile;
}

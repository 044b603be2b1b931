// Reads results files: checks them against schema/results.schema.json and migrates older schema versions first.
import Ajv from 'ajv';
import { readFileSync } from 'node:fs';
import { KvlensError } from '../errors';
import schema from '../../../schema/results.schema.json';
import type { ResultsFile } from './results';

const ajv = new Ajv({ allErrors: true, strict: false });
const validateSchema = ajv.compile(schema);

/** Returns the schema violations of a parsed results file (empty when valid). */
export function resultsSchemaErrors(value: unknown): string[] {
  if (validateSchema(value)) return [];
  return (validateSchema.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message ?? 'is invalid'}`);
}

/**
 * Brings an older results file up to the current schemaVersion; anything else is returned as it is.
 * 1 → 2: rows gained `prediction` (the raw generated text), `metric` (the rule behind `score`) and `group`
 * (a benchmark's reporting group); version-1 rows did not record them, so they become null.
 */
export function migrateResults(value: unknown): unknown {
  if (typeof value !== 'object' || value === null) return value;
  const file = value as Record<string, unknown>;
  if (file.schemaVersion !== 1 || !Array.isArray(file.rows)) return value;
  const rows = file.rows.map((row: unknown) =>
    typeof row === 'object' && row !== null ? { prediction: null, metric: null, group: null, ...(row as Record<string, unknown>) } : row,
  );
  const log = Array.isArray(file.log) ? [...file.log, 'migrated from results schemaVersion 1 (rows have no prediction, metric or group)'] : file.log;
  return { ...file, schemaVersion: 2, rows, log };
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

// Brings results files written by older versions up to the current schemaVersion. No dependencies, so the
// extension and the webview can read old files with it as well as the CLI.

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

// Brings results files written by older versions up to the current schemaVersion. No dependencies, so the
// extension and the webview can read old files with it as well as the CLI.

/**
 * The label a model's rows carry: the last part of its --model entry (`default`, a folder's name, a GGUF file's
 * name without `.gguf`).
 */
export function modelLabel(modelPath: string): string {
  const parts = modelPath.replace(/[\\/]+$/, '').split(/[\\/]/);
  return (parts[parts.length - 1] || modelPath).replace(/\.gguf$/i, '');
}

/**
 * Brings an older results file up to the current schemaVersion; anything else is returned as it is.
 * 1 → 2: rows gained `prediction` (the raw generated text), `metric` (the rule behind `score`) and `group`
 * (a benchmark's reporting group); version-1 rows did not record them, so they become null.
 * 2 → 3: a sweep may hold several models: rows gained `model` (the label of the model they ran on) and the
 * config `models`; an older file held one model, whose label its rows get.
 */
export function migrateResults(value: unknown): unknown {
  if (typeof value !== 'object' || value === null) return value;
  let file = value as Record<string, unknown>;
  if (!Array.isArray(file.rows)) return value;
  if (file.schemaVersion === 1) {
    const rows = file.rows.map((row: unknown) =>
      typeof row === 'object' && row !== null ? { prediction: null, metric: null, group: null, ...(row as Record<string, unknown>) } : row,
    );
    const log = Array.isArray(file.log) ? [...file.log, 'migrated from results schemaVersion 1 (rows have no prediction, metric or group)'] : file.log;
    file = { ...file, schemaVersion: 2, rows, log };
  }
  if (file.schemaVersion === 2) {
    const config = file.config as Record<string, unknown> | null | undefined;
    const model = typeof config === 'object' && config !== null ? (config.model as Record<string, unknown> | undefined) : undefined;
    if (!config || typeof model !== 'object' || model === null || typeof model.path !== 'string') return file;
    const label = modelLabel(model.path);
    const rows = (file.rows as unknown[]).map((row) => (typeof row === 'object' && row !== null ? { model: label, ...(row as Record<string, unknown>) } : row));
    const models = [{ ...model, label, methods: config.methods }];
    const log = Array.isArray(file.log) ? [...file.log, `migrated from results schemaVersion 2 (one model, ${label})`] : file.log;
    file = { ...file, schemaVersion: 3, config: { ...config, models }, rows, log };
  }
  return file;
}

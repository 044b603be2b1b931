import { KvlensError } from '../errors';
import type { ResultsFile } from './results';

/** The parts of a run's configuration that must agree for shards to be combined. */
function comparableConfig(results: ResultsFile): string {
  const { shard: _shard, machine: _machine, ...rest } = results.config;
  return JSON.stringify(rest);
}

/**
 * Combines shard files of one sweep (`--shard i/n`) into one results file. Refuses files from different
 * sweeps (model hash, methods, tasks, seed...) and duplicate shards, naming the offending file.
 */
export function mergeResults(inputs: { path: string; results: ResultsFile }[]): ResultsFile {
  if (inputs.length === 0) throw new KvlensError('merge needs at least one results file');
  const reference = comparableConfig(inputs[0].results);
  const seenShards = new Set<number>();
  const seenRows = new Set<string>();
  const merged: ResultsFile = {
    ...inputs[0].results,
    createdAt: new Date().toISOString(),
    config: { ...inputs[0].results.config, shard: null },
    rows: [],
    scan: null,
    log: [],
  };
  const skipped: Record<string, number> = {};
  let filesUsed = 0;
  for (const { path, results } of inputs) {
    if (comparableConfig(results) !== reference) {
      throw new KvlensError(`belongs to a different sweep than ${inputs[0].path} (model, methods, tasks, lengths or seed differ)`, path);
    }
    const shard = results.config.shard;
    if (shard) {
      if (seenShards.has(shard.index)) throw new KvlensError(`shard ${shard.index}/${shard.count} appears twice`, path);
      seenShards.add(shard.index);
    }
    for (const row of results.rows) {
      const key = `${row.task}\u0000${row.sampleId}\u0000${row.method}`;
      if (seenRows.has(key)) throw new KvlensError(`row ${row.task}/${row.sampleId}/${row.method} already came from another file`, path);
      seenRows.add(key);
      merged.rows.push(row);
    }
    if (results.status !== 'complete') merged.status = results.status;
    if (results.scan) {
      filesUsed = Math.max(filesUsed, results.scan.filesUsed);
      for (const [reason, count] of Object.entries(results.scan.skipped)) skipped[reason] = Math.max(skipped[reason] ?? 0, count);
    }
    merged.log.push(...results.log.map((line) => `[${path}] ${line}`));
  }
  const count = inputs[0].results.config.shard?.count;
  if (count !== undefined && seenShards.size !== count) {
    merged.log.push(`only ${seenShards.size} of ${count} shards merged: the sweep is incomplete`);
    if (merged.status === 'complete') merged.status = 'cancelled';
  }
  merged.scan = { filesUsed, skipped };
  return merged;
}

/** Deterministic slice of a work list for shard `index` of `count` (round-robin keeps cells balanced). */
export function shardSlice<T>(items: T[], index: number, count: number): T[] {
  return items.filter((_, i) => i % count === index);
}

export function parseShard(text: string): { index: number; count: number } {
  const match = /^(\d+)\/(\d+)$/.exec(text.trim());
  if (!match) throw new KvlensError(`--shard must look like i/n (e.g. 0/4), got ${JSON.stringify(text)}`);
  const index = Number(match[1]);
  const count = Number(match[2]);
  if (count < 1 || index >= count) throw new KvlensError(`--shard ${text}: index must be in 0..${count - 1}`);
  return { index, count };
}

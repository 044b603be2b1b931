import { KvlensError } from '../errors';
import type { ResultsFile } from './results';

/** The parts of a run's configuration that must agree for shards to be combined. */
function comparableConfig(results: ResultsFile): string {
  const { shard: _shard, machine: _machine, ...rest } = results.config;
  return JSON.stringify(rest);
}

/** Why a file's rows may not be the whole of its shard, for the refusal and the merged log. */
function incompleteReason(results: ResultsFile): string {
  const done = results.progress ? `, ${results.progress.samplesDone} of ${results.progress.samples} samples finished` : '';
  switch (results.status) {
    case 'running':
      return `status is running (the run is still going, or its process was killed before it finished${done})`;
    case 'cancelled':
      return `status is cancelled (stopped before the end${done})`;
    default:
      return `status is ${results.status}${done}`;
  }
}

export interface MergeOptions {
  /** Merge shards that did not finish (running, cancelled, failed) and sweeps with shards missing. */
  allowIncomplete?: boolean;
}

/**
 * Combines shard files of one sweep (`--shard i/n`) into one results file. Refuses files from different
 * sweeps (model hash, methods, tasks, seed...), duplicate shards and, unless `allowIncomplete`, shards that
 * are not complete or missing, naming the offending file. A merge of incomplete shards is marked cancelled
 * (failed if one of them failed).
 */
export function mergeResults(inputs: { path: string; results: ResultsFile }[], options: MergeOptions = {}): ResultsFile {
  if (inputs.length === 0) throw new KvlensError('merge needs at least one results file');
  const reference = comparableConfig(inputs[0].results);
  const seenShards = new Set<number>();
  const seenRows = new Set<string>();
  const merged: ResultsFile = {
    ...inputs[0].results,
    status: 'complete',
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
      throw new KvlensError(`belongs to a different sweep than ${inputs[0].path} (models, methods, tasks, lengths or seed differ)`, path);
    }
    const shard = results.config.shard;
    if (shard) {
      if (seenShards.has(shard.index)) throw new KvlensError(`shard ${shard.index}/${shard.count} appears twice`, path);
      seenShards.add(shard.index);
    }
    for (const row of results.rows) {
      const key = `${row.model}\u0000${row.task}\u0000${row.sampleId}\u0000${row.method}`;
      if (seenRows.has(key)) throw new KvlensError(`row ${row.model}: ${row.task}/${row.sampleId}/${row.method} already came from another file`, path);
      seenRows.add(key);
      merged.rows.push(row);
    }
    if (results.status !== 'complete') {
      if (!options.allowIncomplete) throw new KvlensError(`${incompleteReason(results)}; rerun the shard, or pass --allow-incomplete to merge what it saved`, path);
      merged.log.push(`${path}: ${incompleteReason(results)}`);
      merged.status = results.status === 'failed' || merged.status === 'failed' ? 'failed' : 'cancelled';
    }
    if (results.scan) {
      filesUsed = Math.max(filesUsed, results.scan.filesUsed);
      for (const [reason, count] of Object.entries(results.scan.skipped)) skipped[reason] = Math.max(skipped[reason] ?? 0, count);
    }
    merged.log.push(...results.log.map((line) => `[${path}] ${line}`));
  }
  const count = inputs[0].results.config.shard?.count;
  if (count !== undefined && seenShards.size !== count) {
    const missing = Array.from({ length: count }, (_, i) => i).filter((i) => !seenShards.has(i));
    const problem = `only ${seenShards.size} of ${count} shards given (missing ${missing.map((i) => `${i}/${count}`).join(', ')}): the sweep is incomplete`;
    if (!options.allowIncomplete) throw new KvlensError(`${problem}; pass --allow-incomplete to merge them anyway`, inputs[0].path);
    merged.log.push(problem);
    if (merged.status === 'complete') merged.status = 'cancelled';
  }
  const progress = inputs.map(({ results }) => results.progress);
  if (progress.every((p) => p !== undefined)) {
    merged.progress = { samples: progress.reduce((n, p) => n + p.samples, 0), samplesDone: progress.reduce((n, p) => n + p.samplesDone, 0) };
  } else delete merged.progress;
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

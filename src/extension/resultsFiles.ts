// Results files on disk: reading one with a clear error, and finding the newest in the results folder.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { KvlensError } from '../engine/errors';
import { checkResultsFile, type ProfiledResults } from './resultsModel';
import { migrateResults } from '../engine/bench/migrate';
import { isRecord } from './validate';

export function readProfiledResults(path: string): ProfiledResults {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new KvlensError(`cannot read the results file (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`, path);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new KvlensError(`the results file is not valid JSON (${(error as Error).message})`, path);
  }
  // Files written by an older kvlens are brought up to date first (their log says so).
  parsed = migrateResults(parsed);
  const problem = checkResultsFile(parsed);
  if (problem) throw new KvlensError(`not a kvlens results file: ${problem}`, path);
  return parsed as ProfiledResults;
}

/** Results files in `folder`, newest first (by modification time); an absent folder has none. */
export function listResultsFiles(folder: string): string[] {
  let names: string[];
  try {
    names = readdirSync(folder);
  } catch {
    return [];
  }
  return names
    .filter((n) => n.endsWith('.json'))
    .map((n) => {
      const path = join(folder, n);
      try {
        const stat = statSync(path);
        return stat.isFile() ? { path, mtime: stat.mtimeMs } : null;
      } catch {
        return null;
      }
    })
    .filter((f): f is { path: string; mtime: number } => f !== null)
    .sort((a, b) => b.mtime - a.mtime || (a.path < b.path ? 1 : -1))
    .map((f) => f.path);
}

/** Where the engine said it wrote a run's results: either the results themselves or a summary naming outFile. */
export function resultsFromAnswer(answer: unknown, requestedOutFile: string | null): { results: ProfiledResults | null; path: string | null } {
  if (checkResultsFile(answer) === null) return { results: answer as ProfiledResults, path: requestedOutFile };
  const path = isRecord(answer) && typeof answer.outFile === 'string' ? answer.outFile : requestedOutFile;
  return { results: null, path };
}

// The results file as the extension and the panel read it, checked at runtime because it arrives from disk,
// from the engine process or through the webview message channel.
import { RESULTS_SCHEMA_VERSION, RESULTS_STATUSES, type ResultRow, type ResultsFile, type RetainedContext } from '../engine/bench/results';
import {
  type Problem,
  isRecord,
  describeValue,
  expectArray,
  expectBoolean,
  expectInteger,
  expectNonEmptyString,
  expectNullable,
  expectNumber,
  expectOneOf,
  expectString,
  firstProblem,
} from './validate';

/**
 * Which source lines a method's compressed cache still held for one sample (the retained-context map):
 * 0-based line ranges, inclusive at both ends, of workspace-relative files; an array because a cross-file
 * sample spans several files. Defined with the results file types; re-exported for the extension.
 */
export type { RetainedContext };

export type ProfiledRow = ResultRow;
export type ProfiledResults = ResultsFile;

function checkRetained(value: unknown, path: string): Problem {
  if (!isRecord(value)) return `${path} must be an object, found ${describeValue(value)}`;
  return firstProblem(
    () => expectNonEmptyString(value.method, `${path}.method`),
    () => expectNonEmptyString(value.file, `${path}.file`),
    () =>
      expectArray(value.keptLines, `${path}.keptLines`, (range, p) => {
        if (!Array.isArray(range) || range.length !== 2) return `${p} must be a [start, end] pair, found ${describeValue(range)}`;
        return (
          expectInteger(range[0], `${p}[0]`, 0) ??
          expectInteger(range[1], `${p}[1]`, 0) ??
          ((range[1] as number) < (range[0] as number) ? `${p} ends before it starts: ${describeValue(range)}` : null)
        );
      }),
  );
}

function checkSource(value: unknown, path: string): Problem {
  if (!isRecord(value)) return `${path} must be an object or null, found ${describeValue(value)}`;
  return expectNonEmptyString(value.file, `${path}.file`) ?? expectInteger(value.line, `${path}.line`, 0);
}

function checkRow(row: unknown, path: string): Problem {
  if (!isRecord(row)) return `${path} must be an object, found ${describeValue(row)}`;
  const num = (key: string) => () => expectNumber(row[key], `${path}.${key}`);
  return firstProblem(
    () => expectNonEmptyString(row.task, `${path}.task`),
    () => expectString(row.sampleId, `${path}.sampleId`),
    num('length'),
    num('targetLength'),
    () => expectNullable(row.depth, `${path}.depth`, expectNumber),
    () => expectNonEmptyString(row.method, `${path}.method`),
    () => expectString(row.family, `${path}.family`),
    num('score'),
    () => expectBoolean(row.exact, `${path}.exact`),
    () => expectString(row.answer, `${path}.answer`),
    () => expectString(row.expected, `${path}.expected`),
    num('tokensKept'),
    num('tokensKeptPerHead'),
    num('tokensFull'),
    num('bytesHeld'),
    num('bytesFull'),
    num('bytesActive'),
    num('compressionRatio'),
    () => expectBoolean(row.verified, `${path}.verified`),
    () => expectNullable(row.note, `${path}.note`, expectString),
    num('prefillMs'),
    num('compressMs'),
    num('decodeTokensPerSecond'),
    num('peakRssBytes'),
    () => expectNullable(row.source, `${path}.source`, checkSource),
    () => expectNullable(row.error, `${path}.error`, expectString),
    () => (row.retained === undefined ? null : expectArray(row.retained, `${path}.retained`, checkRetained)),
  );
}

function checkConfig(config: unknown): Problem {
  if (!isRecord(config)) return `config must be an object, found ${describeValue(config)}`;
  const strings = (key: string) => () => expectArray(config[key], `config.${key}`, expectString);
  const numbers = (key: string) => () => expectArray(config[key], `config.${key}`, expectNumber);
  return firstProblem(
    () => expectString(config.kvlensVersion, 'config.kvlensVersion'),
    () => (isRecord(config.model) ? expectString(config.model.path, 'config.model.path') : `config.model must be an object, found ${describeValue(config.model)}`),
    () => expectString(config.executionProvider, 'config.executionProvider'),
    strings('methods'),
    strings('tasks'),
    numbers('lengths'),
    numbers('depths'),
    () => expectInteger(config.samples, 'config.samples', 0),
    () => expectInteger(config.seed, 'config.seed', 0),
    () => expectString(config.workspace, 'config.workspace'),
  );
}

/** Returns the first problem of a would-be results file, or null when it can be shown. */
export function checkResultsFile(value: unknown): Problem {
  if (!isRecord(value)) return `results must be an object, found ${describeValue(value)}`;
  if (value.schemaVersion !== RESULTS_SCHEMA_VERSION) {
    return `results schemaVersion must be ${RESULTS_SCHEMA_VERSION}, found ${describeValue(value.schemaVersion)}`;
  }
  return firstProblem(
    () => expectString(value.createdAt, 'createdAt'),
    () => expectOneOf(value.status, 'status', RESULTS_STATUSES),
    () => checkConfig(value.config),
    () => expectArray(value.rows, 'rows', checkRow),
    () => expectArray(value.log ?? [], 'log', expectString),
  );
}

export function isResultsFile(value: unknown): value is ProfiledResults {
  return checkResultsFile(value) === null;
}

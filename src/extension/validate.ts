// Small structural checks for data crossing a trust boundary (engine child process, webview, files on disk),
// shared with the engine's message table: each returns a problem sentence naming the offending path, or null.
export {
  type Problem,
  isRecord,
  describeValue,
  expectString,
  expectNonEmptyString,
  expectNumber,
  expectInteger,
  expectBoolean,
  expectNullable,
  expectArray,
  expectOneOf,
  firstProblem,
} from '../engine/host/checks';

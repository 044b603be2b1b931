// Messages between the extension host and the results panel, checked on both ends: whatever arrives
// over postMessage is untrusted until it fits one of these shapes.
import { type ProfiledResults, checkResultsFile } from './resultsModel';
import { isRecord, describeValue, expectInteger, expectNonEmptyString, expectString, expectBoolean, expectOneOf, firstProblem, type Problem } from './validate';

export const EXPORT_FORMATS = ['json', 'csv', 'markdown', 'paper-csv'] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

/** A sample the panel should scroll to and highlight (from a CodeLens click). */
export interface PanelFocus {
  task: string;
  sampleId: string;
}

export type HostToPanel =
  | { type: 'results'; results: ProfiledResults; resultsPath: string | null; focus: PanelFocus | null }
  | { type: 'focus'; focus: PanelFocus }
  | { type: 'runState'; running: boolean; message: string };

export type PanelToHost =
  | { type: 'ready' }
  | { type: 'openSource'; file: string; line: number }
  | { type: 'export'; format: ExportFormat }
  | { type: 'showRetained'; method: string }
  /** The panel reports what it dropped or failed on, so the host can write it to the output channel. */
  | { type: 'log'; level: 'warn' | 'error'; message: string };

export type Parsed<T> = { ok: true; message: T } | { ok: false; problem: string };

function checkFocus(value: unknown, path: string): Problem {
  if (!isRecord(value)) return `${path} must be an object, found ${describeValue(value)}`;
  return expectNonEmptyString(value.task, `${path}.task`) ?? expectString(value.sampleId, `${path}.sampleId`);
}

export function parseHostToPanel(raw: unknown): Parsed<HostToPanel> {
  if (!isRecord(raw)) return { ok: false, problem: `message must be an object, found ${describeValue(raw)}` };
  let problem: Problem;
  switch (raw.type) {
    case 'results':
      problem = firstProblem(
        () => checkResultsFile(raw.results),
        () => (raw.resultsPath === null ? null : expectString(raw.resultsPath, 'resultsPath')),
        () => (raw.focus === null || raw.focus === undefined ? null : checkFocus(raw.focus, 'focus')),
      );
      if (problem) return { ok: false, problem: `results message: ${problem}` };
      return {
        ok: true,
        message: {
          type: 'results',
          results: raw.results as ProfiledResults,
          resultsPath: raw.resultsPath as string | null,
          focus: (raw.focus ?? null) as PanelFocus | null,
        },
      };
    case 'focus':
      problem = checkFocus(raw.focus, 'focus');
      return problem ? { ok: false, problem: `focus message: ${problem}` } : { ok: true, message: { type: 'focus', focus: raw.focus as PanelFocus } };
    case 'runState':
      problem = expectBoolean(raw.running, 'running') ?? expectString(raw.message, 'message');
      return problem
        ? { ok: false, problem: `runState message: ${problem}` }
        : { ok: true, message: { type: 'runState', running: raw.running as boolean, message: raw.message as string } };
    default:
      return { ok: false, problem: `unknown message type ${describeValue(raw.type)}` };
  }
}

export function parsePanelToHost(raw: unknown): Parsed<PanelToHost> {
  if (!isRecord(raw)) return { ok: false, problem: `message must be an object, found ${describeValue(raw)}` };
  let problem: Problem;
  switch (raw.type) {
    case 'ready':
      return { ok: true, message: { type: 'ready' } };
    case 'openSource':
      problem = expectNonEmptyString(raw.file, 'file') ?? expectInteger(raw.line, 'line', 0);
      if (!problem && (raw.file as string).split(/[\\/]/).includes('..')) problem = `file must stay inside the workspace, found ${describeValue(raw.file)}`;
      return problem
        ? { ok: false, problem: `openSource message: ${problem}` }
        : { ok: true, message: { type: 'openSource', file: raw.file as string, line: raw.line as number } };
    case 'export':
      problem = expectOneOf(raw.format, 'format', EXPORT_FORMATS);
      return problem ? { ok: false, problem: `export message: ${problem}` } : { ok: true, message: { type: 'export', format: raw.format as ExportFormat } };
    case 'showRetained':
      problem = expectNonEmptyString(raw.method, 'method');
      return problem ? { ok: false, problem: `showRetained message: ${problem}` } : { ok: true, message: { type: 'showRetained', method: raw.method as string } };
    case 'log':
      problem = expectOneOf(raw.level, 'level', ['warn', 'error'] as const) ?? expectString(raw.message, 'message');
      return problem
        ? { ok: false, problem: `log message: ${problem}` }
        : { ok: true, message: { type: 'log', level: raw.level as 'warn' | 'error', message: (raw.message as string).slice(0, 2000) } };
    default:
      return { ok: false, problem: `unknown message type ${describeValue(raw.type)}` };
  }
}

// The results panel: receives a results file from the extension host, draws it, and keeps it in the
// webview state so the panel comes back as it was after a reload.
import './styles.css';
import { parseHostToPanel, type PanelToHost } from '../src/extension/panelMessages';
import { checkResultsFile } from '../src/extension/resultsModel';
import { isRecord } from '../src/extension/validate';
import { renderEmpty, renderView, type ViewState } from './view';
import { resizeCharts } from './charts';

interface VsCodeApi {
  postMessage(message: unknown): void;
  getState(): unknown;
  setState(state: unknown): void;
}
declare function acquireVsCodeApi(): VsCodeApi;

const vscode = acquireVsCodeApi();
const root = document.getElementById('app') as HTMLElement;
let state: ViewState | null = null;

function post(message: PanelToHost): void {
  vscode.postMessage(message);
}

function warn(message: string): void {
  console.warn(`kvlens panel: ${message}`);
  post({ type: 'log', level: 'warn', message });
}

function save(): void {
  if (state) vscode.setState(state);
}

function draw(): void {
  if (!state) return;
  try {
    renderView(root, state, {
      openSource: (file, line) => post({ type: 'openSource', file, line }),
      focusSample: (focus) => {
        if (!state) return;
        state.focus = focus;
        save();
        draw();
      },
      exportAs: (format) => post({ type: 'export', format }),
      showRetained: (method) => {
        if (state) state.retainedMethod = method === '' ? null : method;
        save();
        post({ type: 'showRetained', method: method === '' ? '(none)' : method });
      },
    });
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    renderEmpty(root, `The results could not be drawn: ${message}`);
    post({ type: 'log', level: 'error', message: `render failed: ${message}` });
  }
}

function restore(): void {
  const saved = vscode.getState();
  if (!isRecord(saved)) return;
  const problem = checkResultsFile(saved.results);
  if (problem) {
    warn(`saved panel state ignored: ${problem}`);
    return;
  }
  state = saved as unknown as ViewState;
  state.running = null;
  draw();
}

window.addEventListener('message', (event: MessageEvent) => {
  const parsed = parseHostToPanel(event.data);
  if (!parsed.ok) {
    warn(`message dropped: ${parsed.problem}`);
    return;
  }
  const message = parsed.message;
  switch (message.type) {
    case 'results':
      state = { results: message.results, resultsPath: message.resultsPath, focus: message.focus, retainedMethod: state?.retainedMethod ?? null, running: state?.running ?? null };
      break;
    case 'focus':
      if (!state) return;
      state.focus = message.focus;
      break;
    case 'runState':
      if (!state) {
        renderEmpty(root, message.running ? `Running: ${message.message}` : message.message);
        return;
      }
      state.running = { running: message.running, message: message.message };
      break;
  }
  save();
  draw();
});

// VS Code swaps the body class and the --vscode-* variables on a theme change; charts read colours once, so redraw.
let themeTimer: ReturnType<typeof setTimeout> | undefined;
const onThemeChange = () => {
  clearTimeout(themeTimer);
  themeTimer = setTimeout(draw, 50);
};
new MutationObserver(onThemeChange).observe(document.body, { attributes: true, attributeFilter: ['class', 'style'] });
new MutationObserver(onThemeChange).observe(document.documentElement, { attributes: true, attributeFilter: ['class', 'style'] });

let resizeTimer: ReturnType<typeof setTimeout> | undefined;
window.addEventListener('resize', () => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(resizeCharts, 100);
});

restore();
post({ type: 'ready' });

// Builds the panel's DOM from a results file. Text goes in through textContent only.
import '@vscode-elements/elements/dist/vscode-button/index.js';
import '@vscode-elements/elements/dist/vscode-badge/index.js';
import '@vscode-elements/elements/dist/vscode-collapsible/index.js';
import '@vscode-elements/elements/dist/vscode-single-select/index.js';
import '@vscode-elements/elements/dist/vscode-option/index.js';
import '@vscode-elements/elements/dist/vscode-divider/index.js';
import type { ProfiledResults } from '../src/extension/resultsModel';
import type { ExportFormat, PanelFocus } from '../src/extension/panelMessages';
import {
  formatBytes,
  formatNumber,
  needleGrid,
  needleMethods,
  paretoFrontier,
  seriesNamer,
  summarizeMethod,
  summarizeMethods,
  taskOrder,
  type MethodSummary,
} from '../src/engine/bench/summary';
import { PAPER_HEADINGS, formatPaperCell, paperTable } from '../src/engine/bench/paperTable';
import { methodsWithRetained } from '../src/extension/retainedMap';
import { methodVerdict } from '../src/extension/codeLensText';
import { disposeCharts, methodColor, renderHeatmap, renderLatency, renderPareto } from './charts';
import { readTheme } from './theme';

export interface ViewState {
  results: ProfiledResults;
  resultsPath: string | null;
  focus: PanelFocus | null;
  retainedMethod: string | null;
  running: { running: boolean; message: string } | null;
}

export interface ViewActions {
  openSource(file: string, line: number): void;
  focusSample(focus: PanelFocus): void;
  exportAs(format: ExportFormat): void;
  showRetained(method: string): void;
}

type Attrs = Record<string, string>;

function el<K extends keyof HTMLElementTagNameMap>(tag: K, attrs?: Attrs, ...children: Array<Node | string>): HTMLElementTagNameMap[K];
function el(tag: string, attrs?: Attrs, ...children: Array<Node | string>): HTMLElement;
function el(tag: string, attrs: Attrs = {}, ...children: Array<Node | string>): HTMLElement {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  for (const child of children) node.append(child);
  return node;
}

function section(id: string, title: string, ...children: Node[]): HTMLElement {
  const heading = el('h2', { id: `${id}-heading` }, title);
  return el('section', { id, 'aria-labelledby': heading.id }, heading, ...children);
}

function table(caption: string, headers: string[], rows: Array<Array<string | Node>>, attrs: Attrs = {}): HTMLTableElement {
  const head = el('tr', {}, ...headers.map((h) => el('th', { scope: 'col' }, h)));
  const body = rows.map((cells) => el('tr', {}, ...cells.map((c, i) => (i === 0 ? el('th', { scope: 'row' }, c) : el('td', {}, c)))));
  return el('table', attrs, el('caption', {}, caption), el('thead', {}, head), el('tbody', {}, ...body));
}

function ratio(value: number): string {
  return Number.isFinite(value) ? `${value.toFixed(2)}×` : '–';
}

function pct(value: number): string {
  return Number.isFinite(value) ? `${(value * 100).toFixed(1)}%` : '–';
}

function methodsTable(summaries: MethodSummary[], frontier: Set<string>): HTMLTableElement {
  return table(
    'Methods over all tasks (errors left out of the means)',
    ['method', 'mean score', 'exact', 'held (mean)', 'smaller by', 'prefill ms', 'compress ms', 'decode tok/s', 'verified', 'rows', 'errors'],
    summaries.map((s) => [
      el('span', {}, s.method, ...(frontier.has(s.method) ? [el('span', { class: 'frontier-mark', title: 'on the Pareto frontier' }, ' ◆')] : [])),
      formatNumber(s.meanScore),
      pct(s.exactRate),
      formatBytes(s.meanBytesHeld),
      ratio(s.compressionRatio),
      formatNumber(s.meanPrefillMs, 1),
      formatNumber(s.meanCompressMs, 1),
      formatNumber(s.meanDecodeTokensPerSecond, 1),
      s.allVerified ? 'yes' : 'no',
      String(s.rows),
      String(s.errors),
    ]),
    { id: 'methods-table', class: 'data' },
  );
}

function taskTables(results: ProfiledResults, methods: string[]): HTMLElement {
  const wrap = el('div', { class: 'task-tables' });
  for (const task of taskOrder(results.rows, results.config.tasks)) {
    const rows = results.rows.filter((r) => r.task === task);
    const summaries = methods.map((m) => summarizeMethod(m, rows)).filter((s) => s.rows > 0);
    wrap.append(
      table(
        `${task} (${new Set(rows.map((r) => r.sampleId)).size} samples)`,
        ['method', 'mean score', 'exact', 'held (mean)', 'smaller by', 'errors'],
        summaries.map((s) => [s.method, formatNumber(s.meanScore), pct(s.exactRate), formatBytes(s.meanBytesHeld), ratio(s.compressionRatio), String(s.errors)]),
        { class: 'data task-table', 'data-task': task },
      ),
    );
  }
  return wrap;
}

/** LongBench categories and needle per method, as the paper lays them out; null when the run has neither. */
function paperSection(results: ProfiledResults, actions: ViewActions): HTMLElement | null {
  const paper = paperTable(results.rows, results.config.methods);
  if (paper.columns.length === 0) return null;
  const exportCsv = el('vscode-button', { secondary: '', 'data-export': 'paper-csv' }, 'Export CSV');
  exportCsv.addEventListener('click', () => actions.exportAs('paper-csv'));
  return section(
    'paper',
    "LongBench categories and needle (the paper's layout)",
    table(
      'Scores × 100; a category is the mean of its datasets',
      ['method', ...paper.columns.map((c) => PAPER_HEADINGS[c]), 'Average'],
      paper.rows.map((r) => [r.method, ...r.cells.map(formatPaperCell), formatPaperCell(r.average)]),
      { id: 'paper-table', class: 'data' },
    ),
    el('div', { class: 'toolbar' }, exportCsv),
  );
}

function heatmaps(results: ProfiledResults, deferred: Array<() => void>): HTMLElement {
  const methods = needleMethods(results.rows, results.config.methods);
  const wrap = el('div', { class: 'heatmaps' });
  if (methods.length === 0) {
    wrap.append(el('p', { class: 'empty' }, 'This run has no needle samples.'));
    return wrap;
  }
  const theme = readTheme();
  for (const method of methods) {
    const grid = needleGrid(results.rows, method);
    const chartBox = el('div', { class: 'heatmap-chart', role: 'img', tabindex: '0', 'aria-label': `needle score heatmap for ${method}` });
    const cells = grid.lengths.map((len, li) => [String(len), ...grid.depths.map((_, di) => formatNumber(grid.cells[li][di], 2))]);
    const alt = table(`${method}: needle score by length (rows) and depth (columns)`, ['length', ...grid.depths.map((d) => `${Math.round(d * 100)}%`)], cells, {
      class: 'data heatmap-table visually-hidden',
      'data-method': method,
    });
    const usable = grid.cells.some((row) => row.some((v) => Number.isFinite(v)));
    const caption = el('figcaption', {}, method, ...(usable ? [] : [el('span', { class: 'no-data' }, ' — no usable samples')]));
    wrap.append(el('figure', { class: 'heatmap', 'data-method': method }, caption, chartBox, alt));
    deferred.push(() => renderHeatmap(chartBox, method, grid, theme));
  }
  return wrap;
}

function focusSection(results: ProfiledResults, focus: PanelFocus, actions: ViewActions): HTMLElement | null {
  const rows = results.rows.filter((r) => r.task === focus.task && r.sampleId === focus.sampleId);
  if (rows.length === 0) return null;
  const first = rows[0];
  const source = first.source;
  const open = source
    ? el('vscode-button', { secondary: '', id: 'open-source' }, `${source.file}:${source.line + 1}`)
    : el('span', {}, 'no source site');
  if (source) open.addEventListener('click', () => actions.openSource(source.file, source.line));
  const body = table(
    `Sample ${focus.sampleId} (${focus.task}, ${first.targetLength} tokens${first.depth === null ? '' : `, depth ${Math.round(first.depth * 100)}%`})`,
    ['method', 'score', 'answer', 'expected', 'held', 'kept tokens/head', 'prefill ms'],
    rows.map((r) => [r.method, formatNumber(r.score, 2), r.error === null ? r.answer : `error: ${r.error}`, r.expected, formatBytes(r.bytesHeld), String(r.tokensKeptPerHead), formatNumber(r.prefillMs, 1)]),
    { id: 'focus-table', class: 'data' },
  );
  return section('focus', 'Selected sample', el('div', { class: 'toolbar' }, el('span', {}, 'Source: '), open), body);
}

const MAX_SAMPLE_ROWS = 500;

function linkButton(label: string, title: string, onClick: () => void): HTMLButtonElement {
  const button = el('button', { type: 'button', class: 'link', title }, label);
  button.addEventListener('click', onClick);
  return button;
}

/** Every sample with one verdict per method (as in the editor's CodeLens); a click selects it or opens its site. */
function samplesSection(results: ProfiledResults, methods: string[], actions: ViewActions): HTMLElement {
  const series = seriesNamer(results.rows);
  const samples = new Map<string, ProfiledResults['rows']>();
  for (const row of results.rows) {
    const key = `${row.task}\u0000${row.sampleId}`;
    const list = samples.get(key);
    if (list) list.push(row);
    else samples.set(key, [row]);
  }
  const entries = [...samples.values()];
  const shown = entries.slice(0, MAX_SAMPLE_ROWS);
  const rows = shown.map((rows) => {
    const first = rows[0];
    const focus = { task: first.task, sampleId: first.sampleId };
    const source = first.source;
    return [
      linkButton(first.sampleId, 'Show this sample', () => actions.focusSample(focus)),
      first.task,
      String(first.targetLength),
      first.depth === null ? '–' : `${Math.round(first.depth * 100)}%`,
      source ? linkButton(`${source.file}:${source.line + 1}`, 'Open in the editor', () => actions.openSource(source.file, source.line)) : '–',
      ...methods.map((m) => {
        const mine = rows.filter((r) => series(r) === m);
        return mine.length === 0 ? '' : methodVerdict(mine);
      }),
    ];
  });
  const body = table(
    `${entries.length} samples${entries.length > shown.length ? `, first ${shown.length} shown` : ''}; ✓ exact, ✗ missed, a number is the edit similarity`,
    ['sample', 'task', 'length', 'depth', 'source', ...methods],
    rows,
    { id: 'samples-table', class: 'data samples' },
  );
  return el('section', { id: 'samples', 'aria-label': 'Samples' }, el('vscode-collapsible', { heading: `Samples (${entries.length})`, 'data-key': 'samples' }, body));
}

function configSection(results: ProfiledResults, resultsPath: string | null): HTMLElement {
  const c = results.config;
  const entries: Array<[string, string]> = [
    ['results file', resultsPath ?? '(not saved)'],
    ['created', results.createdAt],
    ['status', results.status],
    ['kvlens', c.kvlensVersion],
    ['model', `${c.model.path} · ${c.model.architecture} · ${c.model.dtype} · ${c.model.parameters.toLocaleString('en-US')} parameters`],
    ['model hash', c.model.contentHash],
    ['weights held as', c.model.weights ?? 'not recorded'],
    // Files written before KV dtypes existed held fp32 caches.
    ['KV cache dtype', c.model.kvDtype ?? 'fp32 (not recorded)'],
    ['tokenizer', c.tokenizer],
    ['execution provider', c.executionProvider],
    ['methods', c.methods.join(', ')],
    ['tasks', c.tasks.join(', ')],
    ['lengths', c.lengths.join(', ')],
    ['depths', c.depths.join(', ')],
    ['samples', String(c.samples)],
    ['seed', String(c.seed)],
    ['shard', c.shard ? `${c.shard.index + 1} of ${c.shard.count}` : 'none'],
    ['workspace', c.workspace],
    ['machine', c.machine ? `${c.machine.platform}/${c.machine.arch} · ${c.machine.cpus} × ${c.machine.cpuModel} · ${formatBytes(c.machine.totalMemoryBytes)} · node ${c.machine.node}` : 'unknown'],
  ];
  if (results.scan) {
    const skipped = Object.entries(results.scan.skipped).map(([why, n]) => `${why} ${n}`).join(', ');
    entries.push(['workspace scan', `${results.scan.filesUsed} files used${skipped ? `; skipped: ${skipped}` : ''}`]);
  }
  const list = el('dl', { id: 'config-list' }, ...entries.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]));
  const collapsible = el('vscode-collapsible', { heading: 'Run configuration', open: '', 'data-key': 'config' }, list);
  return el('section', { id: 'config', 'aria-label': 'Run configuration' }, collapsible);
}

function header(state: ViewState, actions: ViewActions): HTMLElement {
  const { results } = state;
  const status = el('vscode-badge', { id: 'status', variant: results.status === 'complete' ? 'counter' : 'default' }, results.status);
  const exportButtons = (['json', 'csv', 'markdown'] as const).map((format) => {
    const button = el('vscode-button', { secondary: '', 'data-export': format }, `Export ${format === 'markdown' ? 'Markdown' : format.toUpperCase()}`);
    button.addEventListener('click', () => actions.exportAs(format));
    return button;
  });
  const bar = el('div', { class: 'toolbar', role: 'toolbar', 'aria-label': 'Results actions' }, ...exportButtons);
  const retainedMethods = methodsWithRetained(results.rows);
  if (retainedMethods.length > 0) {
    const label = el('label', { for: 'retained-select' }, 'Retained context in editor:');
    const select = el('vscode-single-select', { id: 'retained-select' },
      el('vscode-option', { value: '' }, '(none)'),
      ...retainedMethods.map((m) => el('vscode-option', { value: m, ...(state.retainedMethod === m ? { selected: '' } : {}) }, m)),
    );
    select.addEventListener('change', () => {
      const value = (select as unknown as { value: string }).value;
      actions.showRetained(value);
    });
    bar.append(label, select);
  }
  const running = state.running?.running ? el('p', { id: 'run-state', class: 'running' }, `Running: ${state.running.message}`) : '';
  return el('header', {},
    el('h1', {}, 'kvlens results ', status),
    el('p', { class: 'subtitle' }, `${results.config.model.path} · ${results.config.executionProvider} · ${results.rows.length} rows · ${results.createdAt}`),
    running,
    bar,
  );
}

export function renderView(root: HTMLElement, state: ViewState, actions: ViewActions): void {
  // A redraw (new focus, theme change) keeps the sections the user opened or closed as they were.
  const openBefore = new Map<string, boolean>();
  for (const c of Array.from(root.querySelectorAll('vscode-collapsible[data-key]'))) openBefore.set(c.getAttribute('data-key')!, (c as unknown as { open: boolean }).open);
  disposeCharts();
  root.replaceChildren();
  const { results } = state;
  const summaries = summarizeMethods(results.rows, results.config.methods);
  const frontier = paretoFrontier(summaries.map((s) => ({ method: s.method, bytes: s.meanBytesHeld, score: s.meanScore })));
  const frontierSet = new Set(frontier);
  const deferred: Array<() => void> = [];
  const theme = readTheme();

  root.append(header(state, actions));
  if (results.rows.length === 0) {
    root.append(el('p', { class: 'empty', id: 'no-rows' }, `This run finished no samples (status: ${results.status}). The engine log below may say why.`));
    root.append(configSection(results, state.resultsPath));
    if (results.log.length > 0) root.append(el('pre', { class: 'log' }, results.log.join('\n')));
    return;
  }
  if (state.focus) {
    const focus = focusSection(results, state.focus, actions);
    if (focus) root.append(focus);
  }

  const paretoBox = el('div', { id: 'pareto-chart', class: 'chart', role: 'img', tabindex: '0', 'aria-label': `Score against bytes held per method. Pareto frontier: ${frontier.join(', ') || 'none'}.` });
  const legend = el('ul', { class: 'legend', 'aria-hidden': 'true' }, ...summaries.map((s, i) => {
    const swatch = el('span', { class: 'swatch' });
    swatch.style.backgroundColor = methodColor(theme, i);
    return el('li', {}, swatch, s.family === 'recurrent' ? `${s.method} (recurrent, constant state)` : s.method);
  }));
  root.append(section('pareto', 'Accuracy vs memory', paretoBox, legend, methodsTable(summaries, frontierSet)));
  deferred.push(() => renderPareto(paretoBox, summaries, frontier, theme));

  root.append(section('tasks', 'By task', taskTables(results, summaries.map((s) => s.method))));
  const paper = paperSection(results, actions);
  if (paper) root.append(paper);
  root.append(section('needle', 'Needle retrieval by length and depth', heatmaps(results, deferred)));

  const latencyBox = el('div', { id: 'latency-chart', class: 'chart', role: 'img', tabindex: '0', 'aria-label': 'Mean prefill and compression time, and decode speed, per method' });
  root.append(section('latency', 'Speed', latencyBox));
  deferred.push(() => renderLatency(latencyBox, summaries, theme));

  root.append(samplesSection(results, summaries.map((s) => s.method), actions));
  root.append(configSection(results, state.resultsPath));
  if (results.log.length > 0) {
    root.append(el('vscode-collapsible', { heading: `Engine log (${results.log.length} lines)`, 'data-key': 'log' }, el('pre', { class: 'log' }, results.log.join('\n'))));
  }
  for (const c of Array.from(root.querySelectorAll('vscode-collapsible[data-key]'))) {
    const open = openBefore.get(c.getAttribute('data-key')!);
    if (open === true) c.setAttribute('open', '');
    if (open === false) c.removeAttribute('open');
  }
  // Charts measure their containers, so they are drawn once the DOM is in place.
  for (const draw of deferred) draw();

  if (state.focus) document.getElementById('focus')?.scrollIntoView({ block: 'start' });
}

export function renderEmpty(root: HTMLElement, message: string): void {
  disposeCharts();
  root.replaceChildren(el('p', { class: 'empty' }, message));
}

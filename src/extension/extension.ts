// VS Code entry: commands, settings, the engine child process, progress, status bar, results panel and
// editor annotations. Inference always runs in the engine process, never on the extension host thread.
import * as vscode from 'vscode';
import { mkdirSync, writeFileSync, existsSync } from 'node:fs';
import { basename, isAbsolute, join, relative } from 'node:path';
import type { BenchRequest, EngineModelInfo } from '../engine/host/protocol';
import { describeError } from '../engine/errors';
import { EngineClient, type EngineProgress } from './engineClient';
import { EXPORT_EXTENSIONS, exportResults } from './exportFormats';
import { registerAnnotations } from './annotations';
import { ResultsPanel, registerPanelSerializer, type PanelHost } from './panel';
import type { ExportFormat, PanelFocus, PanelToHost } from './panelMessages';
import type { ProfiledResults } from './resultsModel';
import { listResultsFiles, readProfiledResults, resultsFromAnswer } from './resultsFiles';
import { methodsWithRetained } from './retainedMap';
import { METHOD_CATALOG, isMethodSpec, parseSettings, resolveResultsFolder, resultsFileName, type KvlensSettings } from './settings';
import { formatBytes } from '../engine/bench/summary';
import { downloadModel, isRepoId, type DownloadResult } from '../engine/model/download';
import type { RunEstimate } from '../engine/bench/estimate';
import { isRecord } from './validate';

const COMPARE_METHODS_KEY = 'kvlens.compareMethods';
const RECENT_MODELS_KEY = 'kvlens.recentModels';

type Scope =
  | { kind: 'workspace'; methods?: string[] }
  | { kind: 'file'; file: string }
  | { kind: 'selection'; file: string; startLine: number; endLine: number };

class Kvlens implements vscode.Disposable, PanelHost {
  readonly log: vscode.LogOutputChannel;
  readonly extensionUri: vscode.Uri;
  private readonly engine: EngineClient;
  private readonly status: vscode.StatusBarItem;
  private readonly changed = new vscode.EventEmitter<void>();
  private currentResults: { results: ProfiledResults; path: string | null } | null = null;
  private annotationsShown = true;
  private retained: string | null = null;
  private activeRun: { id: number; cancel: () => void } | null = null;

  constructor(private readonly context: vscode.ExtensionContext) {
    this.extensionUri = context.extensionUri;
    this.log = vscode.window.createOutputChannel('kvlens', { log: true });
    this.engine = new EngineClient({ enginePath: context.asAbsolutePath(join('dist', 'engineProcess.js')), log: (line) => this.log.info(line) });
    this.status = vscode.window.createStatusBarItem('kvlens.status', vscode.StatusBarAlignment.Left, 50);
    this.status.name = 'kvlens';
    this.idleStatus();
    this.status.show();
  }

  get onDidChange(): vscode.Event<void> {
    return this.changed.event;
  }

  // ---- state shared with the panel and annotations ----

  current(): { results: ProfiledResults; path: string | null } | null {
    return this.currentResults;
  }

  results(): ProfiledResults | null {
    return this.currentResults?.results ?? null;
  }

  visible(): boolean {
    return this.annotationsShown;
  }

  retainedMethod(): string | null {
    return this.retained;
  }

  adoptSavedPath(path: string): void {
    try {
      this.setResults(readProfiledResults(path), path);
    } catch (error) {
      this.log.warn(`could not reload the results the panel showed: ${describeError(error)}`);
    }
  }

  setResults(results: ProfiledResults, path: string | null): void {
    this.currentResults = { results, path };
    this.annotationsShown = true;
    if (this.retained && !methodsWithRetained(results.rows).includes(this.retained)) this.retained = null;
    this.changed.fire();
    ResultsPanel.refresh();
  }

  onPanelMessage(message: Exclude<PanelToHost, { type: 'ready' } | { type: 'log' }>): void {
    switch (message.type) {
      case 'openSource':
        void this.openSource(message.file, message.line);
        return;
      case 'export':
        void this.exportResults(message.format);
        return;
      case 'showRetained':
        this.retained = message.method === '(none)' ? null : message.method;
        this.annotationsShown = true;
        this.changed.fire();
        return;
    }
  }

  // ---- settings and folders ----

  settings(): KvlensSettings {
    const config = vscode.workspace.getConfiguration('kvlens');
    const { settings, warnings } = parseSettings((key) => config.get(key));
    for (const warning of warnings) this.log.warn(warning);
    if (warnings.length > 0) void vscode.window.showWarningMessage(`kvlens: ${warnings[0]}${warnings.length > 1 ? ` (and ${warnings.length - 1} more in the kvlens output)` : ''}`);
    return settings;
  }

  private folderFor(uri?: vscode.Uri): vscode.WorkspaceFolder | undefined {
    if (uri) {
      const folder = vscode.workspace.getWorkspaceFolder(uri);
      if (folder) return folder;
    }
    return vscode.workspace.workspaceFolders?.[0];
  }

  private resultsFolder(folder: vscode.WorkspaceFolder, settings: KvlensSettings): string {
    return resolveResultsFolder(folder.uri.fsPath, settings.resultsFolder, join, isAbsolute);
  }

  /** Loads the newest results in the results folder, so lenses show up again after a restart. */
  loadLatest(): void {
    const folder = this.folderFor();
    if (!folder || this.currentResults) return;
    const config = vscode.workspace.getConfiguration('kvlens');
    const settings = parseSettings((key) => config.get(key)).settings;
    for (const path of listResultsFiles(this.resultsFolder(folder, settings))) {
      try {
        this.setResults(readProfiledResults(path), path);
        this.log.info(`loaded ${path}`);
        return;
      } catch (error) {
        this.log.warn(describeError(error));
      }
    }
  }

  // ---- status bar ----

  private idleStatus(): void {
    const config = vscode.workspace.getConfiguration('kvlens');
    const settings = parseSettings((key) => config.get(key)).settings;
    const model = settings.model === 'default' ? 'default model' : basename(settings.model);
    this.status.text = `$(pulse) kvlens: ${model} · ${settings.executionProvider}`;
    this.status.tooltip = `kvlens — model ${settings.model}, execution provider ${settings.executionProvider}. Click to show results.`;
    this.status.command = 'kvlens.showResults';
  }

  private progressStatus(progress: EngineProgress): void {
    const eta = progress.etaSeconds !== null ? ` · ${formatEta(progress.etaSeconds)} left` : '';
    this.status.text = `$(sync~spin) kvlens ${progress.done}/${progress.total}${eta}`;
    this.status.tooltip = `kvlens is profiling: ${progress.message}. Click to cancel.`;
    this.status.command = 'kvlens.cancelRun';
  }

  refreshStatus(): void {
    if (!this.activeRun) this.idleStatus();
  }

  // ---- commands ----

  async profile(scope: Scope): Promise<void> {
    if (this.activeRun || this.engine.running) {
      void vscode.window.showWarningMessage('kvlens: a profiling run is already going. Cancel it first (kvlens: Cancel Run).');
      return;
    }
    const editor = vscode.window.activeTextEditor;
    const folder = this.folderFor(editor?.document.uri);
    if (!folder) {
      void vscode.window.showErrorMessage('kvlens: open a folder first; queries are built from the code in the workspace.');
      return;
    }
    const settings = this.settings();
    const resultsDir = this.resultsFolder(folder, settings);
    try {
      mkdirSync(resultsDir, { recursive: true });
    } catch (error) {
      void vscode.window.showErrorMessage(`kvlens: cannot create the results folder ${resultsDir}: ${describeError(error)}`);
      return;
    }
    const label = scope.kind === 'workspace' ? (scope.methods ? 'compare' : 'workspace') : `${scope.kind}-${basename(scope.file)}`;
    const name = resultsFileName(new Date(), label);
    let outFile = join(resultsDir, name);
    for (let n = 2; existsSync(outFile); n++) outFile = join(resultsDir, name.replace(/\.json$/, `-${n}.json`));
    const request: BenchRequest = {
      workspace: folder.uri.fsPath,
      model: settings.model,
      methods: scope.kind === 'workspace' && scope.methods ? scope.methods : settings.methods,
      tasks: settings.tasks,
      lengths: settings.lengths,
      depths: settings.depths,
      samples: settings.samples,
      seed: settings.seed,
      provider: settings.executionProvider,
      weights: settings.weights,
      kvDtype: settings.kvDtype,
      outFile,
    };
    if (scope.kind !== 'workspace') request.files = [scope.file];
    if (scope.kind === 'selection') request.selection = { file: scope.file, startLine: scope.startLine, endLine: scope.endLine };

    if (this.engine.lastCrash) {
      this.log.warn(`the engine crashed last time (${this.engine.lastCrash}); starting a new engine process`);
      this.engine.lastCrash = null;
    }
    this.log.info(`run: ${JSON.stringify(request)}`);
    // Refuse up front, with the numbers, a run that cannot fit; otherwise say what it will take.
    let estimate: RunEstimate;
    try {
      estimate = await this.engine.estimate(request.model, request.lengths, request.methods, { weights: request.weights, kvDtype: request.kvDtype });
    } catch (error) {
      void vscode.window.showErrorMessage(`kvlens: ${describeError(error)}`);
      return;
    }
    this.log.info(`memory estimate: ${estimate.summary}`);
    for (const m of estimate.methods) {
      this.log.info(`  ${m.method}: ${m.kvBytes === null ? `cannot run (${m.problem})` : `KV ≈ ${formatBytes(m.kvBytes)}`}`);
    }
    if (!estimate.fits) {
      void vscode.window.showErrorMessage(`kvlens: this run will not fit in memory: it needs ${estimate.summary}. Use shorter lengths or a smaller model.`);
      return;
    }
    const title = scope.kind === 'workspace' ? 'kvlens: profiling the workspace' : `kvlens: profiling ${scope.kind === 'file' ? scope.file : `${scope.file}:${scope.startLine + 1}-${scope.endLine + 1}`}`;
    await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title, cancellable: true }, async (progress, token) => {
      progress.report({ message: `needs ${estimate.summary}` });
      let reported = 0;
      const handle = this.engine.run(request, (p) => {
        const percent = p.total > 0 ? (100 * p.done) / p.total : 0;
        progress.report({ increment: Math.max(0, percent - reported), message: `${p.done}/${p.total} · ${p.message}${p.etaSeconds !== null ? ` · ${formatEta(p.etaSeconds)} left` : ''}` });
        reported = Math.max(reported, percent);
        this.progressStatus(p);
        ResultsPanel.postRunState(true, `${p.done}/${p.total} · ${p.message}`);
      });
      this.activeRun = { id: handle.id, cancel: () => this.engine.cancel(handle.id) };
      const cancelSubscription = token.onCancellationRequested(() => this.engine.cancel(handle.id));
      this.status.text = '$(sync~spin) kvlens: starting…';
      this.status.command = 'kvlens.cancelRun';
      try {
        const outcome = await handle.done;
        const answer = resultsFromAnswer(outcome.results, outFile);
        let results = answer.results;
        const path = answer.path;
        if (!results && path && existsSync(path)) results = readProfiledResults(path);
        if (outcome.status === 'cancelled') {
          if (results && results.rows.length > 0) {
            this.setResults(results, path);
            void vscode.window.showInformationMessage(`kvlens: run cancelled; showing the ${results.rows.length} rows it finished.`);
          } else {
            void vscode.window.showInformationMessage('kvlens: run cancelled.');
          }
          return;
        }
        if (!results) throw new Error(`the engine finished but left no results file at ${path ?? outFile}`);
        this.setResults(results, path);
        this.log.info(`results saved to ${path}`);
        ResultsPanel.show(this, null);
        if (results.status === 'failed') void vscode.window.showWarningMessage('kvlens: the run failed part-way; the panel shows what finished. See the kvlens output for the engine log.');
      } catch (error) {
        const message = describeError(error);
        this.log.error(`run failed: ${message}`);
        void vscode.window.showErrorMessage(`kvlens: ${message}`, 'Show Log').then((choice) => {
          if (choice === 'Show Log') this.log.show(true);
        });
      } finally {
        cancelSubscription.dispose();
        this.activeRun = null;
        this.idleStatus();
        ResultsPanel.postRunState(false, 'idle');
      }
    });
  }

  cancelRun(): void {
    if (!this.activeRun) {
      void vscode.window.showInformationMessage('kvlens: no run is going.');
      return;
    }
    this.status.text = '$(sync~spin) kvlens: cancelling…';
    this.activeRun.cancel();
  }

  /** Method names and summaries from the engine's registry; the built-in catalogue when the engine cannot say. */
  private async engineMethods(): Promise<Map<string, string>> {
    const summaries = new Map<string, string>();
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error('no answer within 5 s')), 5000);
      });
      const listed = await Promise.race([this.engine.methods(), timeout]);
      for (const m of listed) summaries.set(m.name, m.summary);
    } catch (error) {
      this.log.warn(`could not list the engine's methods: ${describeError(error)}`);
    } finally {
      clearTimeout(timer);
    }
    return summaries;
  }

  async compareMethods(): Promise<void> {
    const settings = this.settings();
    const remembered = this.context.globalState.get<string[]>(COMPARE_METHODS_KEY);
    const chosen = new Set((remembered ?? settings.methods).filter((m) => m !== 'full'));
    const registry = await this.engineMethods();
    const all = [...new Set([...METHOD_CATALOG, ...settings.methods, ...(remembered ?? []), ...registry.keys()])].filter((m) => m !== 'full');
    const describe = (spec: string) => registry.get(spec.split(':')[0]) || describeMethod(spec);
    const custom: vscode.QuickPickItem = { label: '$(add) Another method spec…', alwaysShow: true };
    const items: vscode.QuickPickItem[] = all.map((m) => ({ label: m, description: describe(m), picked: chosen.has(m) }));
    const picked = await vscode.window.showQuickPick([...items, custom], {
      canPickMany: true,
      title: 'kvlens: compare methods',
      placeHolder: 'Methods and ratios to compare (full is always run as the baseline)',
    });
    if (!picked) return;
    const methods = picked.filter((p) => p !== custom).map((p) => p.label);
    if (picked.includes(custom)) {
      const spec = await vscode.window.showInputBox({
        title: 'kvlens: method spec',
        prompt: 'family[:key=value,…], e.g. snapkv:ratio=0.3 or h2o:budget=256',
        validateInput: (value) => (isMethodSpec(value.trim()) ? null : 'Not a method spec like "kivi:bits=2" or "h2o:budget=512"'),
      });
      if (spec) methods.push(spec.trim());
    }
    if (methods.length === 0) {
      void vscode.window.showInformationMessage('kvlens: pick at least one method to compare with full.');
      return;
    }
    await this.context.globalState.update(COMPARE_METHODS_KEY, methods);
    await this.profile({ kind: 'workspace', methods: ['full', ...methods] });
  }

  async selectModel(): Promise<void> {
    const recent = this.context.globalState.get<string[]>(RECENT_MODELS_KEY) ?? [];
    const current = this.settings().model;
    const browse: vscode.QuickPickItem = { label: '$(folder-opened) Choose a model folder…', description: 'a Hugging Face folder (config.json + safetensors) or a GGUF file' };
    const download: vscode.QuickPickItem = { label: '$(cloud-download) Download from Hugging Face…', description: 'by repo id, into the Hugging Face cache' };
    const items: vscode.QuickPickItem[] = [
      { label: 'default', description: 'the embedded model shipped with kvlens', picked: current === 'default' },
      ...recent.filter((m) => m !== 'default').map((m) => ({ label: m, description: m === current ? 'current' : 'recent' })),
      browse,
      download,
    ];
    const pick = await vscode.window.showQuickPick(items, { title: 'kvlens: select model', placeHolder: `Current: ${current}` });
    if (!pick) return;
    if (pick === download) {
      await this.downloadModel();
      return;
    }
    let model = pick.label;
    if (pick === browse) {
      const uris = await vscode.window.showOpenDialog({ canSelectFolders: true, canSelectFiles: true, canSelectMany: false, filters: { 'GGUF or any': ['gguf', '*'] }, openLabel: 'Use this model' });
      if (!uris || uris.length === 0) return;
      model = uris[0].fsPath;
    }
    const provider = this.settings().executionProvider;
    try {
      const info = await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: `kvlens: loading ${model}` }, () => this.engine.info(model, provider));
      const target = vscode.workspace.workspaceFolders ? vscode.ConfigurationTarget.Workspace : vscode.ConfigurationTarget.Global;
      await vscode.workspace.getConfiguration('kvlens').update('model', model, target);
      await this.context.globalState.update(RECENT_MODELS_KEY, [model, ...recent.filter((m) => m !== model)].slice(0, 8));
      this.log.info(`model ${model}: ${JSON.stringify(info)}`);
      void vscode.window.showInformationMessage(`kvlens: using ${model}${describeModelInfo(info)}`);
      this.idleStatus();
    } catch (error) {
      this.log.error(`model ${model}: ${describeError(error)}`);
      void vscode.window.showErrorMessage(`kvlens: cannot use ${model}: ${describeError(error)}`);
    }
  }

  /** Fetches a model by repo id in this process: streaming fetch with async file writes keeps the host responsive. */
  async downloadModel(): Promise<void> {
    const answer = await vscode.window.showInputBox({
      title: 'kvlens: download a model from Hugging Face',
      prompt: 'Repo id (org/name). Only config, tokenizer and safetensors files are fetched, into the Hugging Face cache; HF_TOKEN is used for gated models.',
      placeHolder: 'Qwen/Qwen2.5-0.5B-Instruct',
      ignoreFocusOut: true,
      validateInput: (value) => (isRepoId(value.trim()) ? null : 'A repo id looks like org/name'),
    });
    const repo = answer?.trim();
    if (!repo) return;
    const controller = new AbortController();
    let result: DownloadResult;
    try {
      result = await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: `kvlens: downloading ${repo}`, cancellable: true }, async (progress, token) => {
        const cancellation = token.onCancellationRequested(() => controller.abort());
        let reportedPercent = 0;
        let reportedAt = 0;
        let reportedFile = '';
        try {
          return await downloadModel(repo, {
            signal: controller.signal,
            onProgress: (p) => {
              // A report per network chunk would flood the notification; a few per second is enough.
              if (p.file === reportedFile && Date.now() - reportedAt < 250 && p.bytesDone < p.bytesTotal) return;
              const percent = p.bytesTotal > 0 ? (100 * p.bytesDone) / p.bytesTotal : 0;
              progress.report({ increment: Math.max(0, percent - reportedPercent), message: `${p.file} · ${formatBytes(p.bytesDone)} of ${formatBytes(p.bytesTotal)}` });
              reportedPercent = Math.max(reportedPercent, percent);
              reportedAt = Date.now();
              reportedFile = p.file;
            },
          });
        } finally {
          cancellation.dispose();
        }
      });
    } catch (error) {
      if (controller.signal.aborted) {
        this.log.info(`download ${repo}: cancelled`);
        void vscode.window.showInformationMessage(`kvlens: download of ${repo} cancelled; running it again resumes where it stopped.`);
      } else {
        this.log.error(`download ${repo}: ${describeError(error)}`);
        void vscode.window.showErrorMessage(`kvlens: cannot download ${repo}: ${describeError(error)}`);
      }
      return;
    }
    const reused = result.files.filter((f) => f.reused).length;
    this.log.info(`download ${repo}@${result.commit}: ${result.files.length} files (${reused} already cached), ${formatBytes(result.bytesDownloaded)} fetched → ${result.snapshotDir}`);
    const use = 'Use This Model';
    const choice = await vscode.window.showInformationMessage(`kvlens: ${repo} is ready (${formatBytes(result.bytesDownloaded)} downloaded, ${reused} of ${result.files.length} files from the cache).`, use);
    if (choice !== use) return;
    const target = vscode.workspace.workspaceFolders ? vscode.ConfigurationTarget.Workspace : vscode.ConfigurationTarget.Global;
    await vscode.workspace.getConfiguration('kvlens').update('model', result.snapshotDir, target);
    const recent = this.context.globalState.get<string[]>(RECENT_MODELS_KEY) ?? [];
    await this.context.globalState.update(RECENT_MODELS_KEY, [result.snapshotDir, ...recent.filter((m) => m !== result.snapshotDir)].slice(0, 8));
    this.idleStatus();
  }

  async showResults(focus?: unknown): Promise<void> {
    if (!this.currentResults) this.loadLatest();
    if (!this.currentResults) {
      const uris = await vscode.window.showOpenDialog({ canSelectMany: false, filters: { 'kvlens results': ['json'] }, openLabel: 'Show results' });
      if (!uris || uris.length === 0) return;
      try {
        this.setResults(readProfiledResults(uris[0].fsPath), uris[0].fsPath);
      } catch (error) {
        void vscode.window.showErrorMessage(`kvlens: ${describeError(error)}`);
        return;
      }
    }
    this.annotationsShown = true;
    this.changed.fire();
    ResultsPanel.show(this, asFocus(focus));
  }

  async exportResults(format?: unknown): Promise<void> {
    const current = this.currentResults;
    if (!current) {
      void vscode.window.showErrorMessage('kvlens: no results to export. Run a profile or show saved results first.');
      return;
    }
    let chosen: ExportFormat | undefined = format === 'json' || format === 'csv' || format === 'markdown' ? format : undefined;
    if (!chosen) {
      const pick = await vscode.window.showQuickPick(
        [
          { label: 'JSON', description: 'the results file as stored', format: 'json' as const },
          { label: 'CSV', description: 'one line per sample and method', format: 'csv' as const },
          { label: 'Markdown', description: 'summary and rows as tables', format: 'markdown' as const },
        ],
        { title: 'kvlens: export results' },
      );
      if (!pick) return;
      chosen = pick.format;
    }
    const base = current.path ? current.path.replace(/\.json$/, '') : join(this.folderFor()?.uri.fsPath ?? '', 'kvlens-results');
    const target = await vscode.window.showSaveDialog({ defaultUri: vscode.Uri.file(`${base}.${EXPORT_EXTENSIONS[chosen]}`), saveLabel: 'Export' });
    if (!target) return;
    try {
      writeFileSync(target.fsPath, exportResults(current.results, chosen));
      this.log.info(`exported ${chosen} to ${target.fsPath}`);
      const open = await vscode.window.showInformationMessage(`kvlens: exported to ${target.fsPath}`, 'Open');
      if (open) await vscode.window.showTextDocument(target);
    } catch (error) {
      void vscode.window.showErrorMessage(`kvlens: cannot write ${target.fsPath}: ${describeError(error)}`);
    }
  }

  clearDecorations(): void {
    this.annotationsShown = false;
    this.retained = null;
    this.changed.fire();
  }

  async showRetainedContext(): Promise<void> {
    const results = this.results();
    const methods = results ? methodsWithRetained(results.rows) : [];
    if (methods.length === 0) {
      void vscode.window.showInformationMessage('kvlens: the current results carry no retained-context map.');
      return;
    }
    const pick = await vscode.window.showQuickPick(['(none)', ...methods], { title: 'kvlens: show which lines a method kept' });
    if (!pick) return;
    this.onPanelMessage({ type: 'showRetained', method: pick });
  }

  private async openSource(file: string, line: number): Promise<void> {
    const folder = this.folderFor();
    if (!folder) return;
    const uri = vscode.Uri.joinPath(folder.uri, file);
    if (relative(folder.uri.fsPath, uri.fsPath).startsWith('..')) {
      this.log.warn(`refused to open ${file}: outside the workspace`);
      return;
    }
    try {
      const editor = await vscode.window.showTextDocument(uri, { viewColumn: vscode.ViewColumn.One, preview: true });
      const position = new vscode.Position(Math.min(line, editor.document.lineCount - 1), 0);
      editor.selection = new vscode.Selection(position, position);
      editor.revealRange(new vscode.Range(position, position), vscode.TextEditorRevealType.InCenter);
    } catch (error) {
      void vscode.window.showErrorMessage(`kvlens: cannot open ${file}: ${describeError(error)}`);
    }
  }

  dispose(): void {
    this.engine.dispose();
    this.changed.dispose();
    this.status.dispose();
    this.log.dispose();
  }
}

function formatEta(seconds: number): string {
  if (seconds < 60) return `${Math.max(0, Math.round(seconds))} s`;
  const minutes = Math.floor(seconds / 60);
  return minutes < 60 ? `${minutes} min ${Math.round(seconds % 60)} s` : `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

function describeMethod(spec: string): string {
  const family = spec.split(':')[0];
  switch (family) {
    case 'kivi':
      return 'KV quantization';
    case 'streamingllm':
      return 'attention sinks + recent window';
    case 'snapkv':
    case 'h2o':
      return 'attention-score token dropping';
    default:
      return '';
  }
}

function describeModelInfo(info: EngineModelInfo): string {
  return ` (${info.architecture}, ${(info.parameters / 1e6).toFixed(1)}M parameters, ${formatBytes(info.weightBytesOnDisk)}, on ${info.executionProvider})`;
}

function asFocus(value: unknown): PanelFocus | null {
  if (isRecord(value) && typeof value.task === 'string' && value.task !== '' && typeof value.sampleId === 'string') return { task: value.task, sampleId: value.sampleId };
  return null;
}

function relativeFile(document: vscode.TextDocument): string | null {
  const folder = vscode.workspace.getWorkspaceFolder(document.uri);
  if (!folder || document.uri.scheme !== 'file') return null;
  return relative(folder.uri.fsPath, document.uri.fsPath).split('\\').join('/');
}

export function activate(context: vscode.ExtensionContext): void {
  const kvlens = new Kvlens(context);
  const withFile = (run: (file: string, editor: vscode.TextEditor) => Promise<void>) => async () => {
    const editor = vscode.window.activeTextEditor;
    const file = editor ? relativeFile(editor.document) : null;
    if (!editor || !file) {
      void vscode.window.showErrorMessage('kvlens: open a file from the workspace first.');
      return;
    }
    await run(file, editor);
  };
  context.subscriptions.push(
    kvlens,
    registerPanelSerializer(kvlens),
    ...registerAnnotations(kvlens),
    vscode.commands.registerCommand('kvlens.profileWorkspace', () => kvlens.profile({ kind: 'workspace' })),
    vscode.commands.registerCommand('kvlens.profileCurrentFile', withFile((file) => kvlens.profile({ kind: 'file', file }))),
    vscode.commands.registerCommand(
      'kvlens.profileSelection',
      withFile((file, editor) => {
        const selection = editor.selection;
        if (selection.isEmpty) {
          void vscode.window.showErrorMessage('kvlens: select the lines to profile first.');
          return Promise.resolve();
        }
        const endLine = selection.end.character === 0 && selection.end.line > selection.start.line ? selection.end.line - 1 : selection.end.line;
        return kvlens.profile({ kind: 'selection', file, startLine: selection.start.line, endLine });
      }),
    ),
    vscode.commands.registerCommand('kvlens.compareMethods', () => kvlens.compareMethods()),
    vscode.commands.registerCommand('kvlens.selectModel', () => kvlens.selectModel()),
    vscode.commands.registerCommand('kvlens.downloadModel', () => kvlens.downloadModel()),
    vscode.commands.registerCommand('kvlens.showResults', (focus?: unknown) => kvlens.showResults(focus)),
    vscode.commands.registerCommand('kvlens.exportResults', (format?: unknown) => kvlens.exportResults(format)),
    vscode.commands.registerCommand('kvlens.cancelRun', () => kvlens.cancelRun()),
    vscode.commands.registerCommand('kvlens.clearDecorations', () => kvlens.clearDecorations()),
    vscode.commands.registerCommand('kvlens.showRetainedContext', () => kvlens.showRetainedContext()),
    vscode.workspace.onDidChangeConfiguration((event) => {
      if (event.affectsConfiguration('kvlens')) kvlens.refreshStatus();
    }),
    { dispose: () => ResultsPanel.dispose() },
  );
  kvlens.loadLatest();
}

// Everything, the engine process included, is released through context.subscriptions.
export function deactivate(): void {}

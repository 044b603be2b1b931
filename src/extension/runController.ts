// Profiling runs from the editor: builds the run request from the settings and the command's scope, refuses
// up front a run that will not fit, shows progress (notification, status bar, panel), cancels, and hands the
// finished results to the results host. "Compare Methods" picks the methods of such a run.
import * as vscode from 'vscode';
import { existsSync, mkdirSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { BenchRequest } from '../engine/host/protocol';
import type { MethodInfo } from '../engine/kv';
import type { RunEstimate } from '../engine/bench/estimate';
import { describeError } from '../engine/errors';
import { formatBytes } from '../engine/bench/summary';
import type { EngineClient } from './engineClient';
import { offeredMethods } from './methodCatalog';
import { ResultsPanel } from './panel';
import { readProfiledResults, resultsFromAnswer } from './resultsFiles';
import type { ResultsHost } from './resultsHost';
import { isMethodSpec, resultsFileName, type KvlensSettings } from './settings';
import { formatEta, type StatusBar } from './statusBar';
import { folderFor, readSettings, readSettingsQuietly, resultsFolderOf } from './workspaceSettings';

const COMPARE_METHODS_KEY = 'kvlens.compareMethods';
/** How long "Compare Methods" waits for the engine's registry before offering only the configured methods. */
const REGISTRY_TIMEOUT_MS = 5000;

export type Scope =
  | { kind: 'workspace'; methods?: string[] }
  | { kind: 'file'; file: string }
  | { kind: 'selection'; file: string; startLine: number; endLine: number };

export class RunController {
  private activeRun: { id: number; cancel: () => void } | null = null;

  constructor(
    private readonly engine: EngineClient,
    private readonly results: ResultsHost,
    private readonly status: StatusBar,
    private readonly log: vscode.LogOutputChannel,
    private readonly globalState: vscode.Memento,
  ) {}

  /** The status bar shows the model and provider again, unless a run is showing its progress there. */
  refreshStatus(): void {
    if (!this.activeRun) this.status.idle(readSettingsQuietly());
  }

  async profile(scope: Scope): Promise<void> {
    if (this.activeRun || this.engine.running) {
      void vscode.window.showWarningMessage('kvlens: a profiling run is already going. Cancel it first (kvlens: Cancel Run).');
      return;
    }
    const folder = folderFor(vscode.window.activeTextEditor?.document.uri);
    if (!folder) {
      void vscode.window.showErrorMessage('kvlens: open a folder first; queries are built from the code in the workspace.');
      return;
    }
    const settings = readSettings(this.log);
    const outFile = this.newResultsFile(folder, settings, scope);
    if (!outFile) return;
    const request = runRequest(folder, settings, scope, outFile);

    if (this.engine.lastCrash) {
      this.log.warn(`the engine crashed last time (${this.engine.lastCrash}); starting a new engine process`);
      this.engine.lastCrash = null;
    }
    this.log.info(`run: ${JSON.stringify(request)}`);
    const estimate = await this.checkFits(request);
    if (!estimate) return;
    const title = scope.kind === 'workspace' ? 'kvlens: profiling the workspace' : `kvlens: profiling ${scope.kind === 'file' ? scope.file : `${scope.file}:${scope.startLine + 1}-${scope.endLine + 1}`}`;
    await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title, cancellable: true }, (progress, token) =>
      this.runWithProgress(request, outFile, estimate, progress, token),
    );
  }

  cancelRun(): void {
    if (!this.activeRun) {
      void vscode.window.showInformationMessage('kvlens: no run is going.');
      return;
    }
    this.status.cancelling();
    this.activeRun.cancel();
  }

  async compareMethods(): Promise<void> {
    const settings = readSettings(this.log);
    const remembered = this.globalState.get<string[]>(COMPARE_METHODS_KEY);
    const chosen = new Set((remembered ?? settings.methods).filter((m) => m !== 'full'));
    const offered = offeredMethods(await this.engineMethods(), settings.methods, remembered ?? []);
    const custom: vscode.QuickPickItem = { label: '$(add) Another method spec…', alwaysShow: true };
    const items: vscode.QuickPickItem[] = offered.map((m) => ({ label: m.spec, description: m.description, picked: chosen.has(m.spec) }));
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
    await this.globalState.update(COMPARE_METHODS_KEY, methods);
    await this.profile({ kind: 'workspace', methods: ['full', ...methods] });
  }

  /** A results file name of its own in the results folder (created if needed), or null after saying why not. */
  private newResultsFile(folder: vscode.WorkspaceFolder, settings: KvlensSettings, scope: Scope): string | null {
    const resultsDir = resultsFolderOf(folder, settings);
    try {
      mkdirSync(resultsDir, { recursive: true });
    } catch (error) {
      void vscode.window.showErrorMessage(`kvlens: cannot create the results folder ${resultsDir}: ${describeError(error)}`);
      return null;
    }
    const label = scope.kind === 'workspace' ? (scope.methods ? 'compare' : 'workspace') : `${scope.kind}-${basename(scope.file)}`;
    const name = resultsFileName(new Date(), label);
    let outFile = join(resultsDir, name);
    for (let n = 2; existsSync(outFile); n++) outFile = join(resultsDir, name.replace(/\.json$/, `-${n}.json`));
    return outFile;
  }

  /** Refuses, with the numbers, a run that cannot fit; otherwise logs what it will take. */
  private async checkFits(request: BenchRequest): Promise<RunEstimate | null> {
    let estimate: RunEstimate;
    try {
      estimate = await this.engine.estimate(request.model, request.lengths, request.methods, { weights: request.weights, kvDtype: request.kvDtype });
    } catch (error) {
      void vscode.window.showErrorMessage(`kvlens: ${describeError(error)}`);
      return null;
    }
    this.log.info(`memory estimate: ${estimate.summary}`);
    for (const m of estimate.methods) {
      this.log.info(`  ${m.method}: ${m.kvBytes === null ? `cannot run (${m.problem})` : `KV ≈ ${formatBytes(m.kvBytes)}`}`);
    }
    if (!estimate.fits) {
      void vscode.window.showErrorMessage(`kvlens: this run will not fit in memory: it needs ${estimate.summary}. Use shorter lengths or a smaller model.`);
      return null;
    }
    return estimate;
  }

  private async runWithProgress(
    request: BenchRequest,
    outFile: string,
    estimate: RunEstimate,
    progress: vscode.Progress<{ message?: string; increment?: number }>,
    token: vscode.CancellationToken,
  ): Promise<void> {
    progress.report({ message: `needs ${estimate.summary}` });
    let reported = 0;
    const handle = this.engine.run(request, (p) => {
      const percent = p.total > 0 ? (100 * p.done) / p.total : 0;
      progress.report({ increment: Math.max(0, percent - reported), message: `${p.done}/${p.total} · ${p.message}${p.etaSeconds !== null ? ` · ${formatEta(p.etaSeconds)} left` : ''}` });
      reported = Math.max(reported, percent);
      this.status.progress(p);
      ResultsPanel.postRunState(true, `${p.done}/${p.total} · ${p.message}`);
    });
    this.activeRun = { id: handle.id, cancel: () => this.engine.cancel(handle.id) };
    const cancelSubscription = token.onCancellationRequested(() => this.engine.cancel(handle.id));
    this.status.starting();
    try {
      const outcome = await handle.done;
      const answer = resultsFromAnswer(outcome.results, outFile);
      let results = answer.results;
      const path = answer.path;
      if (!results && path && existsSync(path)) results = readProfiledResults(path);
      if (outcome.status === 'cancelled') {
        if (results && results.rows.length > 0) {
          this.results.setResults(results, path);
          void vscode.window.showInformationMessage(`kvlens: run cancelled; showing the ${results.rows.length} rows it finished.`);
        } else {
          void vscode.window.showInformationMessage('kvlens: run cancelled.');
        }
        return;
      }
      if (!results) throw new Error(`the engine finished but left no results file at ${path ?? outFile}`);
      this.results.setResults(results, path);
      this.log.info(`results saved to ${path}`);
      ResultsPanel.show(this.results, null);
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
      this.status.idle(readSettingsQuietly());
      ResultsPanel.postRunState(false, 'idle');
    }
  }

  /** The engine's method registry; empty (with a warning in the log) when the engine cannot say in time. */
  private async engineMethods(): Promise<MethodInfo[]> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${REGISTRY_TIMEOUT_MS / 1000} s`)), REGISTRY_TIMEOUT_MS);
      });
      return await Promise.race([this.engine.methods(), timeout]);
    } catch (error) {
      this.log.warn(`could not list the engine's methods: ${describeError(error)}`);
      return [];
    } finally {
      clearTimeout(timer);
    }
  }
}

/** The run a command asks for: the settings' sweep over the workspace, the compared methods, or one file or selection. */
export function runRequest(folder: vscode.WorkspaceFolder, settings: KvlensSettings, scope: Scope, outFile: string): BenchRequest {
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
  return request;
}

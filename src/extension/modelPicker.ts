// Choosing the model to profile: the embedded default, a recent one, a folder or GGUF file on disk (loaded
// once by the engine to check it), or a download from Hugging Face into its cache.
import * as vscode from 'vscode';
import { describeError } from '../engine/errors';
import { formatBytes } from '../engine/bench/summary';
import { downloadModel, isRepoId, type DownloadResult } from '../engine/model/download';
import type { EngineModelInfo } from '../engine/host/protocol';
import type { EngineClient } from './engineClient';
import { readSettings, settingsTarget } from './workspaceSettings';

const RECENT_MODELS_KEY = 'kvlens.recentModels';
const RECENT_MODELS_KEPT = 8;

export class ModelPicker {
  constructor(
    private readonly engine: EngineClient,
    private readonly log: vscode.LogOutputChannel,
    private readonly globalState: vscode.Memento,
    /** Called after the model setting changed, so the status bar names the new one. */
    private readonly onModelChanged: () => void,
  ) {}

  async selectModel(): Promise<void> {
    const recent = this.recent();
    const settings = readSettings(this.log);
    const current = settings.model;
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
    try {
      const info = await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: `kvlens: loading ${model}` }, () => this.engine.info(model, settings.executionProvider));
      await this.use(model);
      this.log.info(`model ${model}: ${JSON.stringify(info)}`);
      void vscode.window.showInformationMessage(`kvlens: using ${model}${describeModelInfo(info)}`);
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
        try {
          return await downloadModel(repo, { signal: controller.signal, onProgress: throttledReport(progress) });
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
    await this.use(result.snapshotDir);
  }

  private recent(): string[] {
    return this.globalState.get<string[]>(RECENT_MODELS_KEY) ?? [];
  }

  /** Makes `model` the kvlens.model setting and the most recent model. */
  private async use(model: string): Promise<void> {
    await vscode.workspace.getConfiguration('kvlens').update('model', model, settingsTarget());
    await this.globalState.update(RECENT_MODELS_KEY, [model, ...this.recent().filter((m) => m !== model)].slice(0, RECENT_MODELS_KEPT));
    this.onModelChanged();
  }
}

/** A report per network chunk would flood the notification; a few per second, and each new file, is enough. */
function throttledReport(progress: vscode.Progress<{ message?: string; increment?: number }>): (p: { file: string; bytesDone: number; bytesTotal: number }) => void {
  let reportedPercent = 0;
  let reportedAt = 0;
  let reportedFile = '';
  return (p) => {
    if (p.file === reportedFile && Date.now() - reportedAt < 250 && p.bytesDone < p.bytesTotal) return;
    const percent = p.bytesTotal > 0 ? (100 * p.bytesDone) / p.bytesTotal : 0;
    progress.report({ increment: Math.max(0, percent - reportedPercent), message: `${p.file} · ${formatBytes(p.bytesDone)} of ${formatBytes(p.bytesTotal)}` });
    reportedPercent = Math.max(reportedPercent, percent);
    reportedAt = Date.now();
    reportedFile = p.file;
  };
}

function describeModelInfo(info: EngineModelInfo): string {
  return ` (${info.architecture}, ${(info.parameters / 1e6).toFixed(1)}M parameters, ${formatBytes(info.weightBytesOnDisk)}, on ${info.executionProvider})`;
}

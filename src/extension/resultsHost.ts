// The results the extension shows: the current results file, fed to the results panel and the editor
// annotations, and the commands that show, export and annotate it.
import * as vscode from 'vscode';
import { writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describeError } from '../engine/errors';
import { EXPORT_EXTENSIONS, exportResults } from './exportFormats';
import type { AnnotationSource } from './annotations';
import { ResultsPanel, type PanelHost } from './panel';
import { EXPORT_FORMATS, type ExportFormat, type PanelFocus, type PanelToHost } from './panelMessages';
import type { ProfiledResults } from './resultsModel';
import { listResultsFiles, readProfiledResults } from './resultsFiles';
import { methodsWithRetained } from './retainedMap';
import { isRecord } from './validate';
import { folderFor, readSettingsQuietly, resultsFolderOf } from './workspaceSettings';

export class ResultsHost implements PanelHost, AnnotationSource, vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<void>();
  private currentResults: { results: ProfiledResults; path: string | null } | null = null;
  private annotationsShown = true;
  private retained: string | null = null;

  constructor(
    readonly extensionUri: vscode.Uri,
    readonly log: vscode.LogOutputChannel,
  ) {}

  get onDidChange(): vscode.Event<void> {
    return this.changed.event;
  }

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

  /** Loads the newest results in the results folder, so lenses show up again after a restart. */
  loadLatest(): void {
    const folder = folderFor();
    if (!folder || this.currentResults) return;
    for (const path of listResultsFiles(resultsFolderOf(folder, readSettingsQuietly()))) {
      try {
        this.setResults(readProfiledResults(path), path);
        this.log.info(`loaded ${path}`);
        return;
      } catch (error) {
        this.log.warn(describeError(error));
      }
    }
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
    let chosen: ExportFormat | undefined = (EXPORT_FORMATS as readonly unknown[]).includes(format) ? (format as ExportFormat) : undefined;
    if (!chosen) {
      const pick = await vscode.window.showQuickPick(
        [
          { label: 'JSON', description: 'the results file as stored', format: 'json' as const },
          { label: 'CSV', description: 'one line per sample and method', format: 'csv' as const },
          { label: 'Markdown', description: 'summary and rows as tables', format: 'markdown' as const },
          { label: 'Paper table CSV', description: "LongBench categories and needle per method, in the paper's layout", format: 'paper-csv' as const },
        ],
        { title: 'kvlens: export results' },
      );
      if (!pick) return;
      chosen = pick.format;
    }
    const base = current.path ? current.path.replace(/\.json$/, '') : join(folderFor()?.uri.fsPath ?? '', 'kvlens-results');
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
    const folder = folderFor();
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
    this.changed.dispose();
  }
}

function asFocus(value: unknown): PanelFocus | null {
  if (isRecord(value) && typeof value.task === 'string' && value.task !== '' && typeof value.sampleId === 'string') return { task: value.task, sampleId: value.sampleId };
  return null;
}

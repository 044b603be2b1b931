// VS Code entry: wires the engine child process, the results host (panel and editor annotations), the run
// controller, the model picker and the status bar to the commands. Inference always runs in the engine
// process, never on the extension host thread.
import * as vscode from 'vscode';
import { join, relative } from 'node:path';
import { EngineClient, type EngineCrash } from './engineClient';
import { registerAnnotations } from './annotations';
import { ModelPicker } from './modelPicker';
import { ResultsPanel, registerPanelSerializer } from './panel';
import { ResultsHost } from './resultsHost';
import { RunController } from './runController';
import { StatusBar } from './statusBar';
import { readSettingsQuietly } from './workspaceSettings';

function relativeFile(document: vscode.TextDocument): string | null {
  const folder = vscode.workspace.getWorkspaceFolder(document.uri);
  if (!folder || document.uri.scheme !== 'file') return null;
  return relative(folder.uri.fsPath, document.uri.fsPath).split('\\').join('/');
}

/** A command on the active editor's file, refused with a message when no workspace file is open. */
function withFile(run: (file: string, editor: vscode.TextEditor) => Promise<void>): () => Promise<void> {
  return async () => {
    const editor = vscode.window.activeTextEditor;
    const file = editor ? relativeFile(editor.document) : null;
    if (!editor || !file) {
      void vscode.window.showErrorMessage('kvlens: open a file from the workspace first.');
      return;
    }
    await run(file, editor);
  };
}

/**
 * A crash with nothing waiting on it (requests it served report it themselves) is still told: the next run
 * would otherwise start a fresh engine without a word about why the last one died.
 */
function reportEngineCrash(crash: EngineCrash, log: vscode.LogOutputChannel): void {
  log.error(`engine process ${crash.pid ?? '?'}: ${crash.reason}${crash.stderrTail.length > 0 ? `; its last output:\n${crash.stderrTail.join('\n')}` : ''}`);
  if (crash.interrupted > 0) return;
  const tail = crash.stderrTail.slice(-3).join(' | ');
  void vscode.window.showErrorMessage(`kvlens: ${crash.reason}${tail ? ` (last output: ${tail})` : ''}. The next run starts a new one.`, 'Show Log').then((choice) => {
    if (choice === 'Show Log') log.show();
  });
}

export function activate(context: vscode.ExtensionContext): void {
  const log = vscode.window.createOutputChannel('kvlens', { log: true });
  const engine = new EngineClient({
    enginePath: context.asAbsolutePath(join('dist', 'engineProcess.js')),
    log: (line) => log.info(line),
    onCrash: (crash) => reportEngineCrash(crash, log),
  });
  stopEngine = () => engine.dispose();
  const status = new StatusBar();
  status.idle(readSettingsQuietly());
  status.show();
  const results = new ResultsHost(context.extensionUri, log);
  const runs = new RunController(engine, results, status, log, context.globalState);
  const models = new ModelPicker(engine, log, context.globalState, () => runs.refreshStatus());
  const profileSelection = withFile((file, editor) => {
    const selection = editor.selection;
    if (selection.isEmpty) {
      void vscode.window.showErrorMessage('kvlens: select the lines to profile first.');
      return Promise.resolve();
    }
    // A selection ending at the start of a line does not include that line.
    const endLine = selection.end.character === 0 && selection.end.line > selection.start.line ? selection.end.line - 1 : selection.end.line;
    return runs.profile({ kind: 'selection', file, startLine: selection.start.line, endLine });
  });
  context.subscriptions.push(
    // Released in this order: the engine process first, the output channel last.
    { dispose: () => [engine, results, status, log].forEach((d) => d.dispose()) },
    registerPanelSerializer(results),
    ...registerAnnotations(results),
    vscode.commands.registerCommand('kvlens.profileWorkspace', () => runs.profile({ kind: 'workspace' })),
    vscode.commands.registerCommand('kvlens.profileCurrentFile', withFile((file) => runs.profile({ kind: 'file', file }))),
    vscode.commands.registerCommand('kvlens.profileSelection', profileSelection),
    vscode.commands.registerCommand('kvlens.compareMethods', () => runs.compareMethods()),
    vscode.commands.registerCommand('kvlens.selectModel', () => models.selectModel()),
    vscode.commands.registerCommand('kvlens.downloadModel', () => models.downloadModel()),
    vscode.commands.registerCommand('kvlens.showResults', (focus?: unknown) => results.showResults(focus)),
    vscode.commands.registerCommand('kvlens.exportResults', (format?: unknown) => results.exportResults(format)),
    vscode.commands.registerCommand('kvlens.cancelRun', () => runs.cancelRun()),
    vscode.commands.registerCommand('kvlens.clearDecorations', () => results.clearDecorations()),
    vscode.commands.registerCommand('kvlens.showRetainedContext', () => results.showRetainedContext()),
    vscode.workspace.onDidChangeConfiguration((event) => {
      if (event.affectsConfiguration('kvlens')) runs.refreshStatus();
    }),
    { dispose: () => ResultsPanel.dispose() },
  );
  results.loadLatest();
}

// Everything, the engine process included, is released through context.subscriptions.
/** Set by activate: stops the engine process and resolves once it has exited. */
let stopEngine: (() => Promise<void>) | null = null;

/** VS Code waits for this: the engine gets its SIGTERM (to save a running sweep as cancelled) before the host goes. */
export function deactivate(): Promise<void> | undefined {
  return stopEngine?.();
}

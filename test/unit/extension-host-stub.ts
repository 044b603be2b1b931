// A small stand-in for the `vscode` module, enough to activate the extension outside VS Code and drive its
// commands: it records what the extension asks of the host (messages, webviews, lenses, decorations) and
// lets a test answer quick picks. It stands in for the host only; the extension code runs unchanged.
import Module from 'node:module';
import { isAbsolute, join, relative } from 'node:path';

type Listener<T> = (value: T) => unknown;

export class EventEmitter<T> {
  private listeners = new Set<Listener<T>>();
  event = (listener: Listener<T>) => {
    this.listeners.add(listener);
    return { dispose: () => this.listeners.delete(listener) };
  };
  fire(value: T): void {
    for (const l of [...this.listeners]) l(value);
  }
  dispose(): void {
    this.listeners.clear();
  }
}

export class Uri {
  private constructor(readonly scheme: string, readonly fsPath: string) {}
  static file(path: string): Uri {
    return new Uri('file', path);
  }
  static joinPath(base: Uri, ...parts: string[]): Uri {
    return new Uri(base.scheme, join(base.fsPath, ...parts));
  }
  get path(): string {
    return this.fsPath;
  }
  toString(): string {
    return `${this.scheme}://${this.fsPath}`;
  }
}

export class Position {
  constructor(readonly line: number, readonly character: number) {}
}
export class Range {
  readonly start: Position;
  readonly end: Position;
  constructor(sl: number, sc: number, el: number, ec: number) {
    this.start = new Position(sl, sc);
    this.end = new Position(el, ec);
  }
}
export class Selection extends Range {
  constructor(anchor: Position, active: Position) {
    super(anchor.line, anchor.character, active.line, active.character);
  }
  get isEmpty(): boolean {
    return this.start.line === this.end.line && this.start.character === this.end.character;
  }
}
export class CodeLens {
  constructor(readonly range: Range, readonly command?: { title: string; command: string; arguments?: unknown[] }) {}
}
export class Hover {
  constructor(readonly contents: unknown, readonly range?: Range) {}
}
export class MarkdownString {
  isTrusted = false;
  supportHtml = false;
  constructor(readonly value: string) {}
}
export class ThemeColor {
  constructor(readonly id: string) {}
}

export interface FakeDocument {
  uri: Uri;
  lineCount: number;
  lineAt(line: number): { range: Range };
}

export function fakeDocument(path: string, lineCount: number): FakeDocument {
  return { uri: Uri.file(path), lineCount, lineAt: (line) => ({ range: new Range(line, 0, line, 80) }) };
}

export interface FakeWebview {
  html: string;
  options: unknown;
  cspSource: string;
  posted: unknown[];
  receive(message: unknown): void;
}

export function createHost(workspaceRoot: string, settings: Record<string, unknown>) {
  const messages: Array<{ level: 'info' | 'warning' | 'error'; text: string }> = [];
  const logLines: string[] = [];
  const commands = new Map<string, (...args: unknown[]) => unknown>();
  const codeLensProviders: Array<{ provideCodeLenses(doc: FakeDocument): CodeLens[]; onDidChangeCodeLenses?: unknown }> = [];
  const hoverProviders: Array<{ provideHover(doc: FakeDocument, pos: Position): Hover | undefined }> = [];
  const panels: Array<{ viewType: string; webview: FakeWebview; disposed: boolean; visible: boolean; hide(): void }> = [];
  const quickPickAnswers: Array<(items: Array<{ label: string; picked?: boolean }>) => unknown> = [];
  const decorations: Array<{ editor: string; type: number; ranges: Array<{ range: Range }> }> = [];
  const globalState = new Map<string, unknown>();
  const serializers = new Map<string, { deserializeWebviewPanel(panel: unknown, state: unknown): Promise<void> }>();
  const status = { text: '', tooltip: '', command: '' as string | undefined };
  let decorationTypes = 0;
  const folder = { uri: Uri.file(workspaceRoot), name: 'ws', index: 0 };
  const visibleTextEditors: Array<{ document: FakeDocument; setDecorations(type: { id: number }, ranges: Array<{ range: Range }>): void }> = [];

  const notify = (level: 'info' | 'warning' | 'error') => (text: string) => {
    messages.push({ level, text });
    return Promise.resolve(undefined);
  };

  const vscode = {
    EventEmitter, Uri, Position, Range, Selection, CodeLens, Hover, MarkdownString, ThemeColor,
    StatusBarAlignment: { Left: 1, Right: 2 },
    ProgressLocation: { Notification: 15 },
    ViewColumn: { One: 1, Beside: -2 },
    ConfigurationTarget: { Global: 1, Workspace: 2 },
    OverviewRulerLane: { Left: 1 },
    TextEditorRevealType: { InCenter: 2 },
    window: {
      createOutputChannel: () => ({
        info: (l: string) => logLines.push(`info ${l}`),
        warn: (l: string) => logLines.push(`warn ${l}`),
        error: (l: string) => logLines.push(`error ${l}`),
        show: () => {},
        dispose: () => {},
      }),
      createStatusBarItem: () => ({
        set text(v: string) { status.text = v; },
        get text() { return status.text; },
        set tooltip(v: string) { status.tooltip = v; },
        set command(v: string | undefined) { status.command = v; },
        name: '',
        show: () => {},
        dispose: () => {},
      }),
      showInformationMessage: notify('info'),
      showWarningMessage: notify('warning'),
      showErrorMessage: notify('error'),
      showQuickPick: (items: Array<{ label: string; picked?: boolean }> | string[]) => {
        const answer = quickPickAnswers.shift();
        const normalized = (items as Array<{ label: string } | string>).map((i) => (typeof i === 'string' ? { label: i } : i));
        return Promise.resolve(answer ? answer(normalized as Array<{ label: string; picked?: boolean }>) : undefined);
      },
      showInputBox: () => Promise.resolve(undefined),
      showOpenDialog: () => Promise.resolve(undefined),
      showSaveDialog: () => Promise.resolve(undefined),
      withProgress: async (_options: unknown, task: (progress: { report(v: unknown): void }, token: { onCancellationRequested: (l: () => void) => { dispose(): void } }) => Promise<unknown>) => {
        const cancel = new EventEmitter<void>();
        return task({ report: () => {} }, { onCancellationRequested: (l) => cancel.event(l) });
      },
      createWebviewPanel: (viewType: string, _title: string, _column: unknown, options: unknown) => {
        const received = new EventEmitter<unknown>();
        const disposed = new EventEmitter<void>();
        const viewState = new EventEmitter<{ webviewPanel: { visible: boolean } }>();
        const webview: FakeWebview & Record<string, unknown> = {
          html: '',
          options,
          cspSource: 'https://webview.test',
          posted: [],
          receive: (m: unknown) => received.fire(m),
          asWebviewUri: (uri: Uri) => `https://webview.test${uri.fsPath}`,
          onDidReceiveMessage: received.event,
          postMessage: (m: unknown) => {
            if (!record.visible) return Promise.resolve(false);
            (webview.posted as unknown[]).push(m);
            return Promise.resolve(true);
          },
        };
        // hide() stands for VS Code discarding a hidden panel's page (no retainContextWhenHidden): posts are lost
        // until the reloaded page says ready again.
        const record = {
          viewType,
          webview,
          disposed: false,
          visible: true,
          hide: () => {
            record.visible = false;
            viewState.fire({ webviewPanel: { visible: false } });
          },
        };
        panels.push(record);
        return {
          webview,
          viewColumn: 1,
          reveal: () => {
            if (!record.visible) {
              record.visible = true;
              viewState.fire({ webviewPanel: { visible: true } });
            }
          },
          onDidDispose: disposed.event,
          onDidChangeViewState: viewState.event,
          dispose: () => {
            if (!record.disposed) {
              record.disposed = true;
              disposed.fire();
            }
          },
        };
      },
      registerWebviewPanelSerializer: (viewType: string, serializer: { deserializeWebviewPanel(panel: unknown, state: unknown): Promise<void> }) => {
        serializers.set(viewType, serializer);
        return { dispose: () => serializers.delete(viewType) };
      },
      createTextEditorDecorationType: () => ({ id: ++decorationTypes, dispose: () => {} }),
      visibleTextEditors,
      onDidChangeVisibleTextEditors: new EventEmitter<void>().event,
      activeTextEditor: undefined as unknown,
      showTextDocument: () => Promise.resolve(undefined),
    },
    workspace: {
      workspaceFolders: [folder],
      getWorkspaceFolder: (uri: Uri) => (relative(workspaceRoot, uri.fsPath).startsWith('..') ? undefined : folder),
      asRelativePath: (uri: Uri) => (isAbsolute(uri.fsPath) ? relative(workspaceRoot, uri.fsPath) : uri.fsPath),
      getConfiguration: () => ({
        get: (key: string) => settings[key],
        update: (key: string, value: unknown) => {
          settings[key] = value;
          return Promise.resolve();
        },
      }),
      onDidChangeConfiguration: new EventEmitter<unknown>().event,
    },
    languages: {
      registerCodeLensProvider: (_selector: unknown, provider: (typeof codeLensProviders)[number]) => {
        codeLensProviders.push(provider);
        return { dispose: () => {} };
      },
      registerHoverProvider: (_selector: unknown, provider: (typeof hoverProviders)[number]) => {
        hoverProviders.push(provider);
        return { dispose: () => {} };
      },
    },
    commands: {
      registerCommand: (id: string, run: (...args: unknown[]) => unknown) => {
        commands.set(id, run);
        return { dispose: () => commands.delete(id) };
      },
    },
  };

  function addEditor(document: FakeDocument): void {
    const index = visibleTextEditors.length;
    visibleTextEditors.push({
      document,
      setDecorations: (type, ranges) => {
        const existing = decorations.findIndex((d) => d.editor === `${index}` && d.type === type.id);
        if (existing >= 0) decorations.splice(existing, 1);
        decorations.push({ editor: `${index}`, type: type.id, ranges });
      },
    });
  }

  return { vscode, messages, logLines, commands, codeLensProviders, hoverProviders, panels, quickPickAnswers, decorations, globalState, status, addEditor, serializers };
}

/** Makes `require('vscode')` return the given stub for modules loaded after this call. */
export function installVscodeStub(stub: unknown): void {
  const moduleWithInternals = Module as unknown as {
    _resolveFilename(request: string, ...rest: unknown[]): string;
    _cache: Record<string, unknown>;
  };
  const original = moduleWithInternals._resolveFilename;
  const id = '\u0000vscode-stub';
  moduleWithInternals._resolveFilename = function (request: string, ...rest: unknown[]) {
    if (request === 'vscode') return id;
    return original.call(this, request, ...rest);
  };
  const cached = { id, filename: id, loaded: true, exports: stub, children: [], paths: [] };
  (require.cache as Record<string, unknown>)[id] = cached;
}

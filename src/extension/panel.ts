// Hosts the results webview: strict CSP, resources only from dist/webview and media, every message checked,
// and a serializer so the panel comes back after a window reload.
import * as vscode from 'vscode';
import { randomBytes } from 'node:crypto';
import { makeNonce, panelHtml } from './panelHtml';
import { parsePanelToHost, type HostToPanel, type PanelFocus, type PanelToHost } from './panelMessages';
import type { ProfiledResults } from './resultsModel';
import { isRecord } from './validate';

export const PANEL_VIEW_TYPE = 'kvlens.results';

export interface PanelHost {
  extensionUri: vscode.Uri;
  log: vscode.LogOutputChannel;
  current(): { results: ProfiledResults; path: string | null } | null;
  /** A restored panel remembers which file it showed; the host may load it if it has nothing newer. */
  adoptSavedPath(path: string): void;
  onPanelMessage(message: Exclude<PanelToHost, { type: 'ready' } | { type: 'log' }>): void;
}

export class ResultsPanel implements vscode.Disposable {
  private static instance: ResultsPanel | undefined;
  private readonly disposables: vscode.Disposable[] = [];
  private pendingFocus: PanelFocus | null = null;
  private ready = false;

  static show(host: PanelHost, focus: PanelFocus | null): ResultsPanel {
    const existing = ResultsPanel.instance;
    if (existing) {
      existing.panel.reveal(existing.panel.viewColumn ?? vscode.ViewColumn.Beside, false);
      existing.pendingFocus = focus;
      existing.pushResults();
      return existing;
    }
    const panel = vscode.window.createWebviewPanel(PANEL_VIEW_TYPE, 'kvlens results', { viewColumn: vscode.ViewColumn.Beside, preserveFocus: false }, ResultsPanel.options(host.extensionUri));
    const created = new ResultsPanel(panel, host);
    created.pendingFocus = focus;
    return created;
  }

  static revive(host: PanelHost, panel: vscode.WebviewPanel, state: unknown): ResultsPanel {
    if (isRecord(state) && typeof state.resultsPath === 'string' && !host.current()) host.adoptSavedPath(state.resultsPath);
    panel.webview.options = ResultsPanel.options(host.extensionUri);
    return new ResultsPanel(panel, host);
  }

  /** Pushes the host's current results to the open panel, if there is one. */
  static refresh(): void {
    ResultsPanel.instance?.pushResults();
  }

  static postRunState(running: boolean, message: string): void {
    ResultsPanel.instance?.post({ type: 'runState', running, message });
  }

  static dispose(): void {
    ResultsPanel.instance?.dispose();
  }

  private static options(extensionUri: vscode.Uri): vscode.WebviewOptions & vscode.WebviewPanelOptions {
    return {
      enableScripts: true,
      enableCommandUris: false,
      localResourceRoots: [vscode.Uri.joinPath(extensionUri, 'dist', 'webview'), vscode.Uri.joinPath(extensionUri, 'media')],
    };
  }

  private constructor(
    private readonly panel: vscode.WebviewPanel,
    private readonly host: PanelHost,
  ) {
    ResultsPanel.instance = this;
    const webview = panel.webview;
    const asset = (name: string) => webview.asWebviewUri(vscode.Uri.joinPath(host.extensionUri, 'dist', 'webview', name)).toString();
    webview.html = panelHtml({ cspSource: webview.cspSource, nonce: makeNonce((n) => randomBytes(n)), scriptUri: asset('main.js'), styleUri: asset('main.css') });
    this.disposables.push(
      webview.onDidReceiveMessage((raw: unknown) => this.onMessage(raw)),
      panel.onDidDispose(() => this.dispose()),
      // A hidden panel's page is discarded and reloaded on reveal: hold messages (and the focus to show) until the
      // reloaded page says it is ready again.
      panel.onDidChangeViewState((event) => {
        if (!event.webviewPanel.visible) this.ready = false;
      }),
    );
  }

  private onMessage(raw: unknown): void {
    const parsed = parsePanelToHost(raw);
    if (!parsed.ok) {
      this.host.log.warn(`results panel: dropped a malformed message: ${parsed.problem}`);
      return;
    }
    const message = parsed.message;
    if (message.type === 'ready') {
      this.ready = true;
      this.pushResults();
      return;
    }
    if (message.type === 'log') {
      this.host.log[message.level](`results panel: ${message.message}`);
      return;
    }
    this.host.onPanelMessage(message);
  }

  private pushResults(): void {
    if (!this.ready) return;
    const current = this.host.current();
    if (!current) return;
    this.post({ type: 'results', results: current.results, resultsPath: current.path, focus: this.pendingFocus });
    this.pendingFocus = null;
  }

  private post(message: HostToPanel): void {
    if (!this.ready) return;
    void this.panel.webview.postMessage(message).then(
      (delivered) => {
        if (!delivered) this.host.log.warn(`results panel: ${message.type} message was not delivered`);
      },
      (error: unknown) => this.host.log.warn(`results panel: could not post ${message.type}: ${String(error)}`),
    );
  }

  dispose(): void {
    if (ResultsPanel.instance === this) ResultsPanel.instance = undefined;
    for (const d of this.disposables.splice(0)) d.dispose();
    this.panel.dispose();
  }
}

export function registerPanelSerializer(host: PanelHost): vscode.Disposable {
  return vscode.window.registerWebviewPanelSerializer(PANEL_VIEW_TYPE, {
    async deserializeWebviewPanel(panel: vscode.WebviewPanel, state: unknown) {
      ResultsPanel.revive(host, panel, state);
    },
  });
}

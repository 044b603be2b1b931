// Editor annotations from the current results: a CodeLens above each profiled site, a hover with the
// per-method details, and the retained-context map (which lines a method's compressed cache kept).
import * as vscode from 'vscode';
import { codeLensTitle, normalizeRelativePath, profiledSites, retainedHoverMarkdown, siteHoverMarkdown, type ProfiledSite } from './codeLensText';
import type { ProfiledResults } from './resultsModel';
import { retainedView, type LineRange } from './retainedMap';

export interface AnnotationSource {
  results(): ProfiledResults | null;
  visible(): boolean;
  retainedMethod(): string | null;
  onDidChange: vscode.Event<void>;
}

function relativePath(document: vscode.TextDocument): string {
  return normalizeRelativePath(vscode.workspace.asRelativePath(document.uri, false));
}

function sitesIn(source: AnnotationSource, document: vscode.TextDocument): ProfiledSite[] {
  const results = source.results();
  if (!results || !source.visible()) return [];
  const rel = relativePath(document);
  return profiledSites(results.rows).filter((s) => s.file === rel);
}

class SiteLenses implements vscode.CodeLensProvider {
  readonly onDidChangeCodeLenses: vscode.Event<void>;

  constructor(private readonly source: AnnotationSource) {
    this.onDidChangeCodeLenses = source.onDidChange;
  }

  provideCodeLenses(document: vscode.TextDocument): vscode.CodeLens[] {
    const methods = this.source.results()?.config.methods ?? [];
    return sitesIn(this.source, document).map((site) => {
      const line = Math.min(site.line, Math.max(0, document.lineCount - 1));
      return new vscode.CodeLens(new vscode.Range(line, 0, line, 0), {
        title: `kvlens: ${codeLensTitle(site, methods)}`,
        tooltip: 'Open this sample in the kvlens results panel',
        command: 'kvlens.showResults',
        arguments: [{ task: site.task, sampleId: site.sampleId }],
      });
    });
  }
}

class SiteHovers implements vscode.HoverProvider {
  constructor(private readonly source: AnnotationSource) {}

  provideHover(document: vscode.TextDocument, position: vscode.Position): vscode.Hover | undefined {
    const site = sitesIn(this.source, document).find((s) => s.line === position.line);
    if (!site) return undefined;
    const markdown = new vscode.MarkdownString(siteHoverMarkdown(site, this.source.results()?.config.methods ?? []));
    markdown.isTrusted = false;
    markdown.supportHtml = false;
    return new vscode.Hover(markdown, document.lineAt(position.line).range);
  }
}

class RetainedDecorations implements vscode.Disposable {
  private readonly kept = vscode.window.createTextEditorDecorationType({
    isWholeLine: true,
    backgroundColor: new vscode.ThemeColor('diffEditor.insertedLineBackground'),
    overviewRulerColor: new vscode.ThemeColor('editorOverviewRuler.addedForeground'),
    overviewRulerLane: vscode.OverviewRulerLane.Left,
  });
  private readonly partial = vscode.window.createTextEditorDecorationType({
    isWholeLine: true,
    opacity: '0.8',
    overviewRulerColor: new vscode.ThemeColor('editorOverviewRuler.modifiedForeground'),
    overviewRulerLane: vscode.OverviewRulerLane.Left,
  });
  private readonly dropped = vscode.window.createTextEditorDecorationType({
    isWholeLine: true,
    opacity: '0.5',
    overviewRulerColor: new vscode.ThemeColor('editorOverviewRuler.deletedForeground'),
    overviewRulerLane: vscode.OverviewRulerLane.Left,
  });
  private readonly subscriptions: vscode.Disposable[];

  constructor(private readonly source: AnnotationSource) {
    this.subscriptions = [source.onDidChange(() => this.update()), vscode.window.onDidChangeVisibleTextEditors(() => this.update())];
    this.update();
  }

  update(): void {
    const results = this.source.results();
    const method = this.source.retainedMethod();
    for (const editor of vscode.window.visibleTextEditors) {
      const view = results && method && this.source.visible() ? retainedView(results.rows, method, relativePath(editor.document)) : null;
      if (!view || !method) {
        editor.setDecorations(this.kept, []);
        editor.setDecorations(this.partial, []);
        editor.setDecorations(this.dropped, []);
        continue;
      }
      const last = editor.document.lineCount - 1;
      const toOptions = (ranges: LineRange[], what: string): vscode.DecorationOptions[] =>
        ranges
          .filter(([start]) => start <= last)
          .map(([start, end]) => ({
            range: new vscode.Range(start, 0, Math.min(end, last), 0),
            hoverMessage: new vscode.MarkdownString(retainedHoverMarkdown(method, what, start, end, view.samples)),
          }));
      editor.setDecorations(this.kept, toOptions(view.kept, 'kept'));
      editor.setDecorations(this.partial, toOptions(view.partial, 'kept in only some samples'));
      editor.setDecorations(this.dropped, toOptions(view.dropped, 'evicted'));
    }
  }

  dispose(): void {
    for (const s of this.subscriptions) s.dispose();
    this.kept.dispose();
    this.partial.dispose();
    this.dropped.dispose();
  }
}

export function registerAnnotations(source: AnnotationSource): vscode.Disposable[] {
  const selector: vscode.DocumentSelector = { scheme: 'file' };
  return [
    vscode.languages.registerCodeLensProvider(selector, new SiteLenses(source)),
    vscode.languages.registerHoverProvider(selector, new SiteHovers(source)),
    new RetainedDecorations(source),
  ];
}

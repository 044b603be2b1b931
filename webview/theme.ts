// Chart colours come from VS Code's theme variables, read at render time so a theme switch re-colours the charts.

export interface ChartTheme {
  kind: 'light' | 'dark' | 'high-contrast';
  foreground: string;
  muted: string;
  background: string;
  border: string;
  fontFamily: string;
  fontSize: number;
  series: string[];
  good: string;
  mid: string;
  bad: string;
  frontier: string;
}

function cssVar(style: CSSStyleDeclaration, name: string, fallback: string): string {
  const value = style.getPropertyValue(name).trim();
  return value === '' ? fallback : value;
}

export function themeKind(body: HTMLElement): ChartTheme['kind'] {
  if (body.classList.contains('vscode-high-contrast') || body.classList.contains('vscode-high-contrast-light')) return 'high-contrast';
  return body.classList.contains('vscode-light') ? 'light' : 'dark';
}

export function readTheme(): ChartTheme {
  const style = getComputedStyle(document.body);
  const kind = themeKind(document.body);
  const light = kind === 'light';
  const foreground = cssVar(style, '--vscode-foreground', light ? '#3b3b3b' : '#cccccc');
  const fontSize = Number.parseFloat(cssVar(style, '--vscode-font-size', '13px'));
  const blue = cssVar(style, '--vscode-charts-blue', light ? '#1a85ff' : '#3794ff');
  const orange = cssVar(style, '--vscode-charts-orange', light ? '#d18616' : '#d18616');
  const green = cssVar(style, '--vscode-charts-green', light ? '#388a34' : '#89d185');
  const purple = cssVar(style, '--vscode-charts-purple', light ? '#652d90' : '#b180d7');
  const red = cssVar(style, '--vscode-charts-red', light ? '#e51400' : '#f14c4c');
  const yellow = cssVar(style, '--vscode-charts-yellow', light ? '#bf8803' : '#cca700');
  return {
    kind,
    foreground,
    muted: cssVar(style, '--vscode-descriptionForeground', light ? '#717171' : '#9d9d9d'),
    background: cssVar(style, '--vscode-editor-background', light ? '#ffffff' : '#1e1e1e'),
    border: cssVar(style, '--vscode-panel-border', light ? '#e5e5e5' : '#2b2b2b'),
    fontFamily: cssVar(style, '--vscode-font-family', 'system-ui, sans-serif'),
    fontSize: Number.isFinite(fontSize) ? fontSize : 13,
    series: [blue, orange, green, purple, red, yellow],
    good: green,
    mid: yellow,
    bad: red,
    frontier: cssVar(style, '--vscode-focusBorder', blue),
  };
}

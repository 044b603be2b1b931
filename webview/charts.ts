// ECharts pieces of the panel, tree-shaken from echarts/core. Tooltips render as rich text on the canvas,
// so no HTML is ever built from result strings.
import * as echarts from 'echarts/core';
import { BarChart, HeatmapChart, LineChart, ScatterChart } from 'echarts/charts';
import { GridComponent, LegendComponent, TooltipComponent, VisualMapComponent } from 'echarts/components';
import { CanvasRenderer } from 'echarts/renderers';
import { LabelLayout } from 'echarts/features';
import type { ChartTheme } from './theme';
import { formatBytes, formatNumber, type MethodSummary, type NeedleGrid } from '../src/engine/bench/summary';

echarts.use([ScatterChart, LineChart, HeatmapChart, BarChart, GridComponent, TooltipComponent, LegendComponent, VisualMapComponent, LabelLayout, CanvasRenderer]);

type Chart = ReturnType<typeof echarts.init>;

const live = new Set<Chart>();

export function disposeCharts(): void {
  for (const chart of live) chart.dispose();
  live.clear();
}

export function resizeCharts(): void {
  for (const chart of live) chart.resize();
}

// The container carries its own aria-label (and the panel has data tables beside each chart), so ECharts' generated description is not used.
function makeChart(container: HTMLElement, theme: ChartTheme): Chart {
  const chart = echarts.init(container, null, { renderer: 'canvas' });
  live.add(chart);
  chart.setOption({
    backgroundColor: 'transparent',
    textStyle: { color: theme.foreground, fontFamily: theme.fontFamily, fontSize: theme.fontSize },
    animation: false,
  });
  return chart;
}

function axisStyle(theme: ChartTheme) {
  return {
    axisLine: { lineStyle: { color: theme.muted } },
    axisLabel: { color: theme.foreground },
    splitLine: { lineStyle: { color: theme.border } },
    nameTextStyle: { color: theme.muted },
  };
}

function tooltipStyle(theme: ChartTheme) {
  return {
    renderMode: 'richText' as const,
    backgroundColor: theme.background,
    borderColor: theme.border,
    textStyle: { color: theme.foreground, fontFamily: theme.fontFamily, fontSize: theme.fontSize },
  };
}

export function methodColor(theme: ChartTheme, index: number): string {
  return theme.series[index % theme.series.length];
}

/** Score against bytes held, one point per method; the frontier is drawn as a line through its points. */
export function renderPareto(container: HTMLElement, summaries: MethodSummary[], frontier: string[], theme: ChartTheme): void {
  const chart = makeChart(container, theme);
  const onFrontier = new Set(frontier);
  const usable = summaries.filter((s) => Number.isFinite(s.meanBytesHeld) && Number.isFinite(s.meanScore));
  const byMethod = new Map(usable.map((s) => [s.method, s]));
  chart.setOption({
    grid: { left: 56, right: 24, top: 24, bottom: 48, outerBoundsMode: 'same', outerBoundsContain: 'axisLabel' },
    tooltip: {
      ...tooltipStyle(theme),
      trigger: 'item',
      formatter: (params: unknown) => {
        const method = (params as { name?: string }).name ?? '';
        const s = byMethod.get(method);
        if (!s) return method;
        return [
          `${s.method}${onFrontier.has(s.method) ? '  (Pareto frontier)' : ''}`,
          `score ${formatNumber(s.meanScore)} · exact ${formatNumber(s.exactRate * 100, 1)}%`,
          s.family === 'recurrent'
            ? `carries ${formatBytes(s.meanBytesHeld)} of recurrent state at any context length (no KV cache)`
            : `held ${formatBytes(s.meanBytesHeld)} of ${formatBytes(s.meanBytesFull)} (${formatNumber(s.compressionRatio, 2)}× smaller)`,
          `prefill ${formatNumber(s.meanPrefillMs, 1)} ms · decode ${formatNumber(s.meanDecodeTokensPerSecond, 1)} tok/s`,
          `${s.rows} rows${s.errors ? ` · ${s.errors} errors` : ''}`,
        ].join('\n');
      },
    },
    xAxis: { type: 'value', name: 'bytes held (mean per sample)', nameLocation: 'middle', nameGap: 30, scale: true, axisLabel: { color: theme.foreground, formatter: (v: number) => formatBytes(v) }, axisLine: axisStyle(theme).axisLine, splitLine: axisStyle(theme).splitLine, nameTextStyle: axisStyle(theme).nameTextStyle },
    yAxis: { type: 'value', name: 'mean score', min: 0, max: 1, ...axisStyle(theme) },
    series: [
      {
        type: 'line',
        name: 'Pareto frontier',
        silent: true,
        symbol: 'none',
        z: 1,
        lineStyle: { color: theme.frontier, width: 2, type: 'dashed' },
        data: frontier.filter((m) => byMethod.has(m)).map((m) => [byMethod.get(m)!.meanBytesHeld, byMethod.get(m)!.meanScore]),
      },
      // KV methods and recurrent models (no KV cache: a fixed state) are separate series, as the paper draws them.
      ...[
        { name: 'KV methods', members: usable.filter((s) => s.family !== 'recurrent'), symbol: 'circle' },
        { name: 'recurrent models (constant state)', members: usable.filter((s) => s.family === 'recurrent'), symbol: 'triangle' },
      ]
        .filter((group) => group.members.length > 0)
        .map((group) => ({
          type: 'scatter',
          name: group.name,
          z: 2,
          // Methods often sit on top of each other (every score 0 on a weak model): drop clashing labels
          // rather than print them over each other; the legend colours and tooltips still name every point.
          labelLayout: { hideOverlap: true },
          data: group.members.map((s) => ({
            name: s.method,
            value: [s.meanBytesHeld, s.meanScore],
            symbolSize: onFrontier.has(s.method) ? 16 : group.symbol === 'triangle' ? 14 : 10,
            symbol: onFrontier.has(s.method) ? 'diamond' : group.symbol,
            itemStyle: {
              color: methodColor(theme, summaries.indexOf(s)),
              borderColor: onFrontier.has(s.method) ? theme.frontier : theme.background,
              borderWidth: onFrontier.has(s.method) ? 2 : 1,
              opacity: 1,
            },
            label: { show: true, position: 'right', color: theme.foreground, formatter: s.family === 'recurrent' ? `${s.method} (recurrent)` : s.method },
          })),
        })),
    ],
  });
}

function scoreColors(theme: ChartTheme): string[] {
  return [theme.bad, theme.mid, theme.good];
}

/** One small heatmap: target length (rows) by needle depth (columns), cells labelled with the score. */
export function renderHeatmap(container: HTMLElement, method: string, grid: NeedleGrid, theme: ChartTheme): void {
  const chart = makeChart(container, theme);
  const data: Array<[number, number, number]> = [];
  grid.lengths.forEach((_, li) => grid.depths.forEach((__, di) => {
    const v = grid.cells[li][di];
    if (Number.isFinite(v)) data.push([di, li, v]);
  }));
  chart.setOption({
    grid: { left: 8, right: 8, top: 8, bottom: 8, outerBoundsMode: 'same', outerBoundsContain: 'axisLabel' },
    tooltip: {
      ...tooltipStyle(theme),
      formatter: (params: unknown) => {
        const value = (params as { value?: [number, number, number] }).value;
        if (!value) return method;
        return `${method}\nlength ${grid.lengths[value[1]]} · depth ${Math.round(grid.depths[value[0]] * 100)}%\nscore ${formatNumber(value[2], 2)}`;
      },
    },
    xAxis: { type: 'category', data: grid.depths.map((d) => `${Math.round(d * 100)}%`), name: 'depth', ...axisStyle(theme), splitArea: { show: false } },
    yAxis: { type: 'category', data: grid.lengths.map(String), name: 'length', ...axisStyle(theme) },
    visualMap: { show: false, min: 0, max: 1, inRange: { color: scoreColors(theme) } },
    series: [{
      type: 'heatmap',
      name: method,
      data,
      label: { show: true, color: '#000000', formatter: (p: { value: [number, number, number] }) => formatNumber(p.value[2], 2) },
      itemStyle: { borderColor: theme.background, borderWidth: 2 },
    }],
  });
}

/** Prefill and compression time stacked per method, and decode speed beside it. */
export function renderLatency(container: HTMLElement, summaries: MethodSummary[], theme: ChartTheme): void {
  const chart = makeChart(container, theme);
  const methods = summaries.map((s) => s.method);
  const [prefillColor, compressColor, decodeColor] = [theme.series[0], theme.series[1], theme.series[2]];
  chart.setOption({
    legend: { top: 0, textStyle: { color: theme.foreground }, data: ['prefill ms', 'compress ms', 'decode tok/s'] },
    tooltip: { ...tooltipStyle(theme), trigger: 'axis', axisPointer: { type: 'shadow' } },
    grid: [
      { left: 8, width: '44%', top: 36, bottom: 8, outerBoundsMode: 'same', outerBoundsContain: 'axisLabel' },
      { right: 8, width: '44%', top: 36, bottom: 8, outerBoundsMode: 'same', outerBoundsContain: 'axisLabel' },
    ],
    xAxis: [
      { type: 'value', gridIndex: 0, ...axisStyle(theme) },
      { type: 'value', gridIndex: 1, ...axisStyle(theme) },
    ],
    yAxis: [
      { type: 'category', gridIndex: 0, data: methods, inverse: true, ...axisStyle(theme) },
      { type: 'category', gridIndex: 1, data: methods, inverse: true, ...axisStyle(theme) },
    ],
    series: [
      { type: 'bar', name: 'prefill ms', stack: 'time', xAxisIndex: 0, yAxisIndex: 0, itemStyle: { color: prefillColor }, data: summaries.map((s) => round(s.meanPrefillMs)) },
      { type: 'bar', name: 'compress ms', stack: 'time', xAxisIndex: 0, yAxisIndex: 0, itemStyle: { color: compressColor }, data: summaries.map((s) => round(s.meanCompressMs)) },
      { type: 'bar', name: 'decode tok/s', xAxisIndex: 1, yAxisIndex: 1, itemStyle: { color: decodeColor }, data: summaries.map((s) => round(s.meanDecodeTokensPerSecond)) },
    ],
  });
}

function round(value: number): number | null {
  return Number.isFinite(value) ? Math.round(value * 10) / 10 : null;
}

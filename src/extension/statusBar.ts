// The kvlens status bar item: the model and provider when idle (click: show results), progress and time left
// while a run goes (click: cancel it).
import * as vscode from 'vscode';
import { basename } from 'node:path';
import type { EngineProgress } from './engineClient';
import type { KvlensSettings } from './settings';

export function formatEta(seconds: number): string {
  if (seconds < 60) return `${Math.max(0, Math.round(seconds))} s`;
  const minutes = Math.floor(seconds / 60);
  return minutes < 60 ? `${minutes} min ${Math.round(seconds % 60)} s` : `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

export class StatusBar implements vscode.Disposable {
  private readonly item: vscode.StatusBarItem;

  constructor() {
    this.item = vscode.window.createStatusBarItem('kvlens.status', vscode.StatusBarAlignment.Left, 50);
    this.item.name = 'kvlens';
  }

  show(): void {
    this.item.show();
  }

  idle(settings: Pick<KvlensSettings, 'model' | 'executionProvider'>): void {
    const model = settings.model === 'default' ? 'default model' : basename(settings.model);
    this.item.text = `$(pulse) kvlens: ${model} · ${settings.executionProvider}`;
    this.item.tooltip = `kvlens — model ${settings.model}, execution provider ${settings.executionProvider}. Click to show results.`;
    this.item.command = 'kvlens.showResults';
  }

  starting(): void {
    this.item.text = '$(sync~spin) kvlens: starting…';
    this.item.command = 'kvlens.cancelRun';
  }

  progress(progress: EngineProgress): void {
    const eta = progress.etaSeconds !== null ? ` · ${formatEta(progress.etaSeconds)} left` : '';
    this.item.text = `$(sync~spin) kvlens ${progress.done}/${progress.total}${eta}`;
    this.item.tooltip = `kvlens is profiling: ${progress.message}. Click to cancel.`;
    this.item.command = 'kvlens.cancelRun';
  }

  cancelling(): void {
    this.item.text = '$(sync~spin) kvlens: cancelling…';
  }

  dispose(): void {
    this.item.dispose();
  }
}

// The kvlens.* settings as the commands read them, and the workspace folders a command works in.
import * as vscode from 'vscode';
import { isAbsolute, join } from 'node:path';
import { parseSettings, resolveResultsFolder, type KvlensSettings } from './settings';

/** The settings for a command the user started: each bad value is logged and the first is shown. */
export function readSettings(log: vscode.LogOutputChannel): KvlensSettings {
  const config = vscode.workspace.getConfiguration('kvlens');
  const { settings, warnings } = parseSettings((key) => config.get(key));
  for (const warning of warnings) log.warn(warning);
  if (warnings.length > 0) void vscode.window.showWarningMessage(`kvlens: ${warnings[0]}${warnings.length > 1 ? ` (and ${warnings.length - 1} more in the kvlens output)` : ''}`);
  return settings;
}

/** The settings for background work (the status bar, reloading results): bad values fall back silently. */
export function readSettingsQuietly(): KvlensSettings {
  const config = vscode.workspace.getConfiguration('kvlens');
  return parseSettings((key) => config.get(key)).settings;
}

/** Where a setting chosen by a command is saved: the workspace when one is open, else the user's settings. */
export function settingsTarget(): vscode.ConfigurationTarget {
  return vscode.workspace.workspaceFolders ? vscode.ConfigurationTarget.Workspace : vscode.ConfigurationTarget.Global;
}

/** The workspace folder holding `uri`, else the first one. */
export function folderFor(uri?: vscode.Uri): vscode.WorkspaceFolder | undefined {
  if (uri) {
    const folder = vscode.workspace.getWorkspaceFolder(uri);
    if (folder) return folder;
  }
  return vscode.workspace.workspaceFolders?.[0];
}

export function resultsFolderOf(folder: vscode.WorkspaceFolder, settings: KvlensSettings): string {
  return resolveResultsFolder(folder.uri.fsPath, settings.resultsFolder, join, isAbsolute);
}

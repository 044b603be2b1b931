// The extension's integration scenario in a real VS Code workbench, shared by the two ways of starting one:
// scenario.host.ts (code-server serves the workbench, headless Chromium shows it) and scenario.electron.ts (VS Code
// desktop under @vscode/test-electron, driven over the DevTools protocol). Either installs the packaged .vsix and
// plays the person at the keyboard through one scenario, checked step by step: command palette → progress
// notification and status bar → Cancel Run, and the notification's Cancel → settings changed → a finished run →
// the results panel's chart → CodeLens, hover and retained-context decorations in a profiled file → a lens click
// focusing its sample in the panel. Screenshots of the steps land in test-artifacts/<host>/, with the logs. The
// last line reads `N passed, N failed`.
//
// Environment (both hosts):
//   KVLENS_VSIX         a ready .vsix to test instead of packaging the work tree
//   KVLENS_HOST_KEEP=1  leave the temporary folder (workspace, user data, logs) in place for a look afterwards
import { spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import type { Browser, FrameLocator, Locator, Page } from 'playwright-core';

export const repo = resolve(__dirname, '..', '..');
let artifacts = join(repo, 'test-artifacts', 'host');
const keepTemp = process.env.KVLENS_HOST_KEEP === '1';
// Every process this scenario starts inherits this marker, so cleanup can find the workbench's extension host, the
// engine child and Chromium's helpers by pid even if one of them left the process group.
export const runMarker = `KVLENS_HOST_RUN=${randomBytes(8).toString('hex')}`;
const SCENARIO_TIMEOUT_MS = 15 * 60_000;

const started = Date.now();
const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1)} s`;
export const log = (line: string) => console.log(`[host ${elapsed()}] ${line}`);

// ---------------------------------------------------------------- steps

let passed = 0;
let failed = 0;
let page: Page | undefined;
let shotCount = 0;

async function screenshot(name: string): Promise<string | null> {
  if (!page) return null;
  const file = join(artifacts, `${String(++shotCount).padStart(2, '0')}-${name}.png`);
  try {
    await page.screenshot({ path: file, timeout: 15_000 });
    return file;
  } catch (error) {
    log(`  (screenshot ${name} failed: ${String(error)})`);
    return null;
  }
}

/** Runs one check; a failure is counted and photographed, and a required step's failure stops the scenario. */
export async function step(name: string, body: () => Promise<string | void>, options: { required?: boolean; shot?: string } = {}): Promise<boolean> {
  const t0 = Date.now();
  try {
    const detail = await body();
    passed++;
    log(`ok   ${name}${detail ? ` — ${detail}` : ''} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
    if (options.shot) await screenshot(options.shot);
    return true;
  } catch (error) {
    failed++;
    log(`FAIL ${name}: ${error instanceof Error ? error.message : String(error)}`);
    await screenshot(`FAILED-${name.replace(/[^a-z0-9]+/gi, '-').toLowerCase()}`);
    if (options.required) throw new StopScenario(name);
    return false;
  }
}

class StopScenario extends Error {
  constructor(readonly stepName: string) {
    super(`stopped after "${stepName}" failed`);
  }
}

// ---------------------------------------------------------------- processes

/** Processes a host started, each the leader of its own group (spawned with detached: true). */
export const children: ChildProcess[] = [];
let browser: Browser | undefined;

export function markerEnv(): NodeJS.ProcessEnv {
  const [key, value] = runMarker.split('=');
  return { ...process.env, [key]: value };
}

/** Pids (other than ours) whose environment carries this run's marker. */
function markedPids(): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${entry}/environ`, 'latin1').split('\0').includes(runMarker)) pids.push(Number(entry));
    } catch {
      // gone already, or not ours to read
    }
  }
  return pids;
}

async function stopEverything(): Promise<void> {
  if (browser) {
    await Promise.race([browser.close().catch(() => undefined), new Promise((r) => setTimeout(r, 10_000))]);
    browser = undefined;
  }
  for (const child of children) {
    if (child.pid && child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(-child.pid, 'SIGTERM'); // the whole group started with detached: true
      } catch {
        // already gone
      }
    }
  }
  for (let i = 0; i < 20 && markedPids().length > 0; i++) await new Promise((r) => setTimeout(r, 250));
  const stragglers = markedPids();
  for (const pid of stragglers) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // exited meanwhile
    }
  }
  if (stragglers.length > 0) log(`killed ${stragglers.length} leftover process(es): ${stragglers.join(', ')}`);
}

/** Last resort on exit: no waiting is possible there, so everything still marked gets SIGKILL. */
function killMarkedNow(): void {
  for (const pid of markedPids()) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // exited meanwhile
    }
  }
}

export function run(command: string, args: string[], options: { cwd?: string; logFile: string; timeoutMs: number }): string {
  const result = spawnSync(command, args, { cwd: options.cwd ?? repo, env: markerEnv(), encoding: 'utf8', timeout: options.timeoutMs, maxBuffer: 64 * 1024 * 1024 });
  writeFileSync(options.logFile, `$ ${command} ${args.join(' ')}\n--- stdout\n${result.stdout ?? ''}\n--- stderr\n${result.stderr ?? ''}\n`);
  if (result.error) throw new Error(`${command} ${args.join(' ')}: ${result.error.message} (log: ${options.logFile})`);
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} exited with ${result.status ?? result.signal} (log: ${options.logFile})`);
  return result.stdout;
}

export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolvePort(port));
    });
  });
}

/** Waits for `url` to answer; `gone` says why the server can no longer answer (it exited), or null while it runs. */
export async function waitForHttp(url: string, timeoutMs: number, gone: () => string | null): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const reason = gone();
    if (reason) throw new Error(`${reason} before ${url} answered`);
    try {
      const response = await fetch(url);
      if (response.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`${url} did not answer within ${timeoutMs / 1000} s`);
}

// ---------------------------------------------------------------- workbench helpers

/** Runs a command from the palette; `picker` names the title of a quick pick the command opens in its place. */
async function runCommand(title: string, timeoutMs = 15_000, picker?: string): Promise<void> {
  const p = page!;
  const input = p.locator('.quick-input-widget input.input');
  const row = p.locator('.quick-input-list .monaco-list-row', { hasText: title }).first();
  const deadline = Date.now() + timeoutMs;
  // The palette takes its command list when it opens; right after start-up, before the extension host has
  // registered every extension, kvlens's commands are missing, so reopen until they are there.
  for (;;) {
    await focusWorkbench();
    await p.keyboard.press('F1');
    await input.waitFor({ state: 'visible', timeout: 15_000 });
    await input.fill(`>${title}`);
    try {
      await row.waitFor({ state: 'visible', timeout: Math.min(5_000, Math.max(1, deadline - Date.now())) });
      break;
    } catch (error) {
      await p.keyboard.press('Escape');
      if (Date.now() >= deadline) throw new Error(`the command palette never offered "${title}": ${error instanceof Error ? error.message.split('\n')[0] : String(error)}`);
      await p.waitForTimeout(1000);
    }
  }
  // Enter before the list has filtered would run whatever command was on top before.
  const first = p.locator('.quick-input-list .monaco-list-row').first();
  const label = (await first.getAttribute('aria-label')) ?? (await first.innerText());
  if (!label.toLowerCase().includes(title.toLowerCase())) throw new Error(`the palette's first match for "${title}" is "${label}"`);
  await input.press('Enter');
  if (picker) await p.locator('.quick-input-widget .quick-input-title', { hasText: picker }).waitFor({ state: 'visible', timeout: 10_000 });
  else await p.locator('.quick-input-widget').waitFor({ state: 'hidden', timeout: 10_000 });
}

/** Keys typed while a webview has the focus go to its page, not to the workbench's keybindings. */
async function focusWorkbench(): Promise<void> {
  const p = page!;
  if (await p.evaluate(() => document.activeElement?.tagName === 'IFRAME')) await p.locator('.part.sidebar .composite.title').first().click();
}

async function openFile(relativePath: string, options: { beside?: boolean } = {}): Promise<void> {
  const p = page!;
  await focusWorkbench();
  await p.keyboard.press('F1');
  const input = p.locator('.quick-input-widget input.input');
  await input.waitFor({ state: 'visible', timeout: 15_000 });
  await input.fill(relativePath);
  const fileName = relativePath.split('/').pop()!;
  await p.locator('.quick-input-list .monaco-list-row', { hasText: fileName }).first().waitFor({ state: 'visible', timeout: 20_000 });
  // Quick Open's Ctrl+Enter opens the pick in an editor group to the side.
  await input.press(options.beside ? 'Control+Enter' : 'Enter');
  await p.locator('.tabs-container .tab.active', { hasText: fileName }).waitFor({ state: 'visible', timeout: 20_000 });
}

async function goToLine(oneBasedLine: number): Promise<void> {
  const p = page!;
  await p.keyboard.press('F1');
  const input = p.locator('.quick-input-widget input.input');
  await input.waitFor({ state: 'visible', timeout: 15_000 });
  await input.fill(`:${oneBasedLine}`);
  await p.waitForTimeout(300);
  await input.press('Enter');
  await p.locator('.quick-input-widget').waitFor({ state: 'hidden', timeout: 10_000 });
}

/** The results panel's page: VS Code nests it in a frame inside the visible webview's frame. */
function panelFrame(): FrameLocator {
  return page!.locator('iframe.webview.ready').filter({ visible: true }).first().contentFrame().frameLocator('iframe#active-frame');
}

async function notificationText(pattern: RegExp, timeoutMs: number): Promise<string> {
  const toast = page!.locator('.notification-toast', { hasText: pattern }).first();
  await toast.waitFor({ state: 'visible', timeout: timeoutMs });
  return (await toast.innerText()).replace(/\s+/g, ' ').trim();
}

async function dismissNotifications(): Promise<void> {
  const p = page!;
  // "Clear All Notifications" exists in every workbench since 1.3x; it leaves progress notifications of running work.
  await runCommand('Notifications: Clear All Notifications').catch(() => undefined);
  await p.waitForTimeout(300);
}

/** Painted (non-transparent) pixels over every canvas layer in `selector` inside the panel's frame. */
async function canvasPaint(frame: FrameLocator, selector: string): Promise<{ painted: number; width: number; height: number; layers: number }> {
  return frame.locator(selector).first().evaluate((container) => {
    let painted = 0;
    let width = 0;
    let height = 0;
    const canvases = Array.from(container.querySelectorAll('canvas'));
    for (const canvas of canvases) {
      const context = canvas.getContext('2d');
      if (!context || canvas.width === 0 || canvas.height === 0) continue;
      width = Math.max(width, canvas.width);
      height = Math.max(height, canvas.height);
      const data = context.getImageData(0, 0, canvas.width, canvas.height).data;
      for (let i = 3; i < data.length; i += 4) if (data[i] !== 0) painted++;
    }
    return { painted, width, height, layers: canvases.length };
  });
}

/** The editor showing `file` (by its tab), focused so keyboard commands apply to it. */
async function focusEditorOf(file: string): Promise<void> {
  await page!.locator('.tabs-container .tab', { hasText: basename(file) }).first().click();
}

/**
 * 0-based line numbers of the visible editor of `file` carrying kvlens's retained-context decorations: a whole-line
 * background (rendered in the view overlays) for kept lines, dimmed text (an inline class on the line's spans) for
 * lines kept in only some samples and, dimmer, for evicted ones. Each decoration gets a generated "ced-" class.
 */
async function decoratedLines(file: string): Promise<{ kept: Set<number>; partial: Set<number>; dropped: Set<number> }> {
  const editor = page!.locator('.editor-group-container', { has: page!.locator('.tab.active', { hasText: basename(file) }) }).locator('.monaco-editor').first();
  const found = await editor.evaluate((root) => {
    const lineAt = new Map<string, number>();
    for (const number of Array.from(root.querySelectorAll('.margin-view-overlays > div'))) {
      const text = (number.querySelector('.line-numbers') as HTMLElement | null)?.textContent?.trim();
      if (text) lineAt.set((number as HTMLElement).style.top, Number(text) - 1);
    }
    const kept: number[] = [];
    const partial: number[] = [];
    const dropped: number[] = [];
    for (const row of Array.from(root.querySelectorAll('.view-overlays > div'))) {
      const line = lineAt.get((row as HTMLElement).style.top);
      if (line !== undefined && row.querySelector('[class*="ced-"]')) kept.push(line);
    }
    for (const row of Array.from(root.querySelectorAll('.view-lines > .view-line'))) {
      const line = lineAt.get((row as HTMLElement).style.top);
      const span = row.querySelector('span[class*="ced-"]');
      if (line === undefined || !span) continue;
      // Evicted lines are dimmed harder than lines kept in only some samples.
      const opacity = Number(getComputedStyle(span).opacity);
      (opacity <= 0.65 ? dropped : partial).push(line);
    }
    return { kept, partial, dropped };
  });
  return { kept: new Set(found.kept), partial: new Set(found.partial), dropped: new Set(found.dropped) };
}

/**
 * What the results file says `method` did to each line of `file`, worked out from the raw rows: a sample's context
 * is the lines full kept of the file (all the prompt held); a line counts as kept when the method kept it in every
 * sample whose context held it, as evicted when it kept it in none, as partly kept otherwise.
 */
function expectedRetained(resultsPath: string, file: string, method: string): { kept: Set<number>; partial: Set<number>; dropped: Set<number> } {
  const saved = JSON.parse(readFileSync(resultsPath, 'utf8')) as ResultsFile;
  const linesOf = (row: ResultsRow, who: string): Set<number> | null => {
    const entries = (row.retained ?? []).filter((e) => e.method === who && e.file === file);
    if (entries.length === 0) return null;
    const lines = new Set<number>();
    for (const entry of entries) for (const [start, end] of entry.keptLines) for (let l = start; l <= end; l++) lines.add(l);
    return lines;
  };
  const keptCount = new Map<number, number>();
  const seenCount = new Map<number, number>();
  for (const fullRow of saved.rows.filter((r) => r.method === 'full')) {
    const context = linesOf(fullRow, 'full');
    const methodRow = saved.rows.find((r) => r.method === method && r.sampleId === fullRow.sampleId && r.task === fullRow.task);
    const kept = methodRow ? linesOf(methodRow, method) : null;
    if (!context || !kept) continue;
    for (const line of context) {
      seenCount.set(line, (seenCount.get(line) ?? 0) + 1);
      if (kept.has(line)) keptCount.set(line, (keptCount.get(line) ?? 0) + 1);
    }
  }
  const kept = new Set<number>();
  const partial = new Set<number>();
  const dropped = new Set<number>();
  for (const [line, seen] of seenCount) {
    const k = keptCount.get(line) ?? 0;
    (k === seen ? kept : k === 0 ? dropped : partial).add(line);
  }
  return { kept, partial, dropped };
}

interface ResultsRow {
  method: string;
  task: string;
  sampleId: string;
  retained?: Array<{ method: string; file: string; keptLines: Array<[number, number]> }>;
  source?: { file: string; line: number };
}
interface ResultsFile {
  status?: string;
  config?: { samples?: number; methods?: string[]; lengths?: number[] };
  rows: ResultsRow[];
}

/** The results file, or null while the engine is still writing it. */
function readResultsIfWhole(path: string): ResultsFile | null {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as ResultsFile;
  } catch {
    return null;
  }
}

function resultsFiles(workspace: string): string[] {
  const folder = join(workspace, '.kvlens');
  if (!existsSync(folder)) return [];
  return readdirSync(folder)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => join(folder, f));
}

// ---------------------------------------------------------------- scenario

/** The scratch folders of one run. */
export interface ScenarioLayout {
  scratch: string;
  /** A copy of test/fixtures/codebase, the folder the workbench opens. */
  workspace: string;
  userData: string;
  extensions: string;
  /** Installer, packaging and workbench logs, kept beside the screenshots. */
  logs: string;
}

/** What differs between the ways of starting a workbench; the scenario around it is the same. */
export interface WorkbenchHost {
  /** Who runs the workbench, in step names: "code-server", "VS Code". */
  label: string;
  /** The folder under test-artifacts/ for screenshots and logs. */
  artifactsName: string;
  /** Makes the workbench's launcher ready (downloading or installing it); returns its path for the log. */
  install(layout: ScenarioLayout): Promise<string>;
  /** The command line that installs a .vsix into layout.extensions. */
  installExtensionCommand(layout: ScenarioLayout, vsix: string): { command: string; args: string[] };
  /** Starts the workbench on layout.workspace, with steps of its own where starting has several parts. */
  start(layout: ScenarioLayout): Promise<void>;
  /** The browser (launched or connected) and the page that shows the started workbench. */
  connect(layout: ScenarioLayout): Promise<{ browser: Browser; page: Page }>;
  /** Closes the workbench gracefully at the end, before whatever is left is killed. */
  stop?(): Promise<void>;
}

async function scenario(host: WorkbenchHost, scratch: string): Promise<void> {
  const workspace = join(scratch, 'workspace');
  const userData = join(scratch, 'user-data');
  const extensions = join(scratch, 'extensions');
  const logs = join(scratch, 'logs');
  const layout: ScenarioLayout = { scratch, workspace, userData, extensions, logs };
  for (const dir of [userData, join(userData, 'User'), extensions, logs]) mkdirSync(dir, { recursive: true });
  cpSync(join(repo, 'test', 'fixtures', 'codebase'), workspace, { recursive: true });

  const fixtureModel = (name: string) => join(repo, 'test', 'fixtures', 'models', name);
  const longRunModel = fixtureModel('llama-gqa-tied-rope3-f32');
  // The finished run uses the shipped model when the installed extension carries its weights; a second fixture
  // model otherwise (decided once the .vsix is installed). A different model from the cancelled run's also shows in
  // the status bar, which is how the scenario knows the changed settings reached the extension.
  let shortRunModel = fixtureModel('qwen2-bias-untied-f32');
  const modelLabel = (model: string) => (model === 'default' ? 'default model' : basename(model));
  writeFileSync(
    join(userData, 'User', 'settings.json'),
    JSON.stringify(
      {
        'workbench.startupEditor': 'none',
        'workbench.tips.enabled': false,
        'workbench.enableExperiments': false,
        'extensions.ignoreRecommendations': true,
        'extensions.autoCheckUpdates': false,
        'extensions.autoUpdate': false,
        'update.mode': 'none',
        'telemetry.telemetryLevel': 'off',
        'security.workspace.trust.enabled': false,
        'git.enabled': false,
        'editor.codeLens': true,
      },
      null,
      2,
    ),
  );
  // kvlens's own settings go in the workspace's .vscode/settings.json: the workbench watches the workspace folder
  // closely, whereas an edit of the user settings file behind its back was not picked up in code-server.
  const workspaceSettings = join(workspace, '.vscode', 'settings.json');
  mkdirSync(join(workspace, '.vscode'));
  // Long enough that the cancel lands mid-run even on a fast machine: thousands of rows.
  const longRun = {
    'kvlens.model': longRunModel,
    'kvlens.executionProvider': 'cpu',
    'kvlens.methods': ['full', 'kivi:bits=2', 'snapkv:ratio=0.5', 'h2o:budget=128'],
    'kvlens.tasks': ['needle', 'multikey', 'vartrack', 'completion', 'crossfile'],
    'kvlens.lengths': [2048],
    'kvlens.samples': 40,
  };
  // A few seconds of work that still fills every chart: several methods, tasks that point at source lines.
  const shortRun = {
    'kvlens.model': shortRunModel,
    'kvlens.executionProvider': 'cpu',
    'kvlens.methods': ['full', 'kivi:bits=2', 'snapkv:ratio=0.5', 'streamingllm:ratio=0.5'],
    'kvlens.tasks': ['needle', 'completion', 'crossfile'],
    'kvlens.lengths': [256],
    'kvlens.depths': [0.5],
    'kvlens.samples': 1,
  };
  writeFileSync(workspaceSettings, JSON.stringify(longRun, null, 2));

  await step(
    `${host.label} is installed`,
    async () => {
      const launcher = await host.install(layout);
      if (!existsSync(launcher)) throw new Error(`the installer gave "${launcher}", which does not exist`);
      return launcher;
    },
    { required: true },
  );

  let vsix = process.env.KVLENS_VSIX ?? '';
  await step(
    'the extension is packaged',
    async () => {
      if (vsix) {
        if (!existsSync(vsix)) throw new Error(`KVLENS_VSIX=${vsix} does not exist`);
        return `given ${vsix}`;
      }
      // This machine's platform only: the package script builds one .vsix per platform into dist/vsix/.
      const target = `${process.platform}-${process.arch}`;
      const version = (JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as { version: string }).version;
      vsix = join(repo, 'dist', 'vsix', `kvlens-${target}-${version}.vsix`);
      rmSync(vsix, { force: true });
      run('npm', ['run', 'package', '--', target], { logFile: join(logs, 'package.log'), timeoutMs: 10 * 60_000 });
      if (!existsSync(vsix)) throw new Error(`npm run package -- ${target} wrote no ${vsix}`);
      return vsix;
    },
    { required: true },
  );

  await step(
    `${host.label} installs the .vsix`,
    async () => {
      const { command, args } = host.installExtensionCommand(layout, vsix);
      const out = run(command, args, { logFile: join(logs, 'install-extension.log'), timeoutMs: 5 * 60_000 });
      const installed = readdirSync(extensions).filter((d) => d.startsWith('kvlens.kvlens-'));
      if (installed.length !== 1) throw new Error(`expected one kvlens.kvlens-* folder in ${extensions}, found [${installed.join(', ')}]: ${out.trim()}`);
      if (existsSync(join(extensions, installed[0], 'models', 'default', 'model.safetensors'))) {
        shortRunModel = 'default';
        shortRun['kvlens.model'] = shortRunModel;
      }
      return `${installed[0]}; the finished run will use ${shortRunModel === 'default' ? 'its default model' : basename(shortRunModel)}`;
    },
    { required: true },
  );

  await host.start(layout);

  await step(
    'the workbench opens the workspace folder',
    async () => {
      const connected = await host.connect(layout);
      browser = connected.browser;
      page = connected.page;
      page.setDefaultTimeout(30_000);
      await page.locator('.monaco-workbench').waitFor({ state: 'visible', timeout: 120_000 });
      // The explorer lists the fixture's top-level folders once the file system answers.
      await page.locator('.explorer-folders-view .monaco-list-row', { hasText: 'scripts' }).waitFor({ state: 'visible', timeout: 120_000 });
      // kvlens activates on its first command (or saved results), so nothing of it shows yet; its contributed
      // commands are listed from package.json alone.
      return page.url();
    },
    { required: true, shot: 'workbench' },
  );

  /** Starts the long run from the palette and waits until its notification counts finished rows. */
  async function startLongRun(): Promise<string> {
    await runCommand('kvlens: Profile Workspace', 120_000);
    await notificationText(/kvlens: profiling the workspace/, 30_000);
    // Progress counts like "3/2720" appear once the engine has built the queries and finished a row.
    return notificationText(/kvlens: profiling the workspace.*\b[1-9]\d*\/\d+/, 180_000);
  }

  /** After a cancel: the notification, the idle status bar, and a saved file holding exactly the rows it names. */
  async function checkCancelled(filesBefore: Set<string>, shot: string): Promise<string> {
    const text = await notificationText(/kvlens: run cancelled/, 120_000);
    await page!.waitForTimeout(800); // toasts slide in
    await screenshot(shot);
    await page!.locator('.notification-toast', { hasText: /kvlens: profiling the workspace/ }).waitFor({ state: 'hidden', timeout: 60_000 });
    await page!.locator('.statusbar-item', { hasText: /kvlens: .*·/ }).first().waitFor({ state: 'visible', timeout: 30_000 });
    const match = /showing the (\d+) rows/.exec(text);
    if (!match) return `${text} (cancelled before any row finished)`;
    const fresh = resultsFiles(workspace).filter((f) => !filesBefore.has(f));
    if (fresh.length !== 1) throw new Error(`"${text}" but ${fresh.length} new results files in ${join(workspace, '.kvlens')}`);
    const saved = JSON.parse(readFileSync(fresh[0], 'utf8')) as ResultsFile;
    if (saved.status !== 'cancelled') throw new Error(`${fresh[0]} has status ${saved.status}, expected cancelled`);
    if (saved.rows.length !== Number(match[1])) throw new Error(`the notification counts ${match[1]} rows, ${fresh[0]} holds ${saved.rows.length}`);
    if (saved.config?.samples !== longRun['kvlens.samples']) throw new Error(`${fresh[0]} has samples=${saved.config?.samples}, not the ${longRun['kvlens.samples']} from settings`);
    return text;
  }

  let filesBefore = new Set(resultsFiles(workspace));
  await step(
    '"kvlens: Profile Workspace" from the palette shows a progress notification',
    () => startLongRun(),
    { required: true, shot: 'progress' },
  );

  await step('the status bar follows the run', async () => {
    const item = page!.locator('.statusbar-item', { hasText: /kvlens \d+\/\d+/ }).first();
    await item.waitFor({ state: 'visible', timeout: 30_000 });
    return (await item.innerText()).trim();
  });

  await step('"kvlens: Cancel Run" stops the run and keeps the finished rows', async () => {
    await runCommand('kvlens: Cancel Run');
    return checkCancelled(filesBefore, 'cancelled-by-command');
  });

  await dismissNotifications();
  filesBefore = new Set(resultsFiles(workspace));
  await step('the progress notification\'s Cancel button stops a run too', async () => {
    await startLongRun();
    const toast = page!.locator('.notification-toast', { hasText: /kvlens: profiling the workspace/ }).first();
    await toast.hover();
    await toast.locator('.monaco-button', { hasText: 'Cancel' }).first().click();
    return checkCancelled(filesBefore, 'cancelled-by-notification');
  });

  await dismissNotifications();
  await step(
    'changed settings reach the extension (status bar names the new model)',
    async () => {
      const before = (await page!.locator('.statusbar-item', { hasText: 'kvlens:' }).first().innerText()).trim();
      if (!before.includes(modelLabel(longRunModel))) throw new Error(`the status bar says "${before}", not the model of the cancelled run`);
      writeFileSync(workspaceSettings, JSON.stringify(shortRun, null, 2));
      const after = page!.locator('.statusbar-item', { hasText: `kvlens: ${modelLabel(shortRunModel)}` }).first();
      await after.waitFor({ state: 'visible', timeout: 60_000 });
      return `"${before}" → "${(await after.innerText()).trim()}"`;
    },
    { required: true },
  );

  let finishedFile = '';
  await step(
    'a second run finishes and opens the results panel',
    async () => {
      const before = new Set(resultsFiles(workspace));
      await runCommand('kvlens: Profile Workspace');
      await notificationText(/kvlens: profiling the workspace/, 30_000);
      // A failed run says so in an error toast with a Show Log button; no need to wait out the timeout then.
      const panelTab = page!.locator('.tab', { hasText: 'kvlens results' }).first();
      const errorToast = page!.locator('.notification-toast', { hasText: 'Show Log' }).first();
      await Promise.race([panelTab.waitFor({ state: 'visible', timeout: 300_000 }), errorToast.waitFor({ state: 'visible', timeout: 300_000 })]);
      if (await errorToast.isVisible()) throw new Error(`the run failed: ${(await errorToast.innerText()).replace(/\s+/g, ' ')}`);
      const fresh = resultsFiles(workspace).filter((f) => !before.has(f));
      if (fresh.length !== 1) throw new Error(`expected one new results file, found ${fresh.length}`);
      finishedFile = fresh[0];
      const saved = JSON.parse(readFileSync(finishedFile, 'utf8')) as ResultsFile;
      if (saved.config?.samples !== 1 || saved.config?.lengths?.[0] !== 256) {
        throw new Error(`the run did not use the updated settings.json: samples=${saved.config?.samples}, lengths=${JSON.stringify(saved.config?.lengths)}`);
      }
      if (saved.status !== 'complete') throw new Error(`results status is ${saved.status}`);
      return `${saved.rows.length} rows in ${finishedFile}`;
    },
  );

  await step(
    'the panel draws the Pareto chart',
    async () => {
      const panel = panelFrame();
      await panel.locator('#pareto-chart canvas').first().waitFor({ state: 'attached', timeout: 60_000 });
      // ECharts animates the first paint; wait for it to settle rather than sample a half-drawn frame.
      let paint = await canvasPaint(panel, '#pareto-chart');
      for (let i = 0; i < 20 && paint.painted < 2000; i++) {
        await page!.waitForTimeout(500);
        paint = await canvasPaint(panel, '#pareto-chart');
      }
      if (paint.width < 200 || paint.height < 150) throw new Error(`the chart canvas is ${paint.width}×${paint.height}`);
      if (paint.painted < 2000) throw new Error(`the chart canvas looks blank: ${paint.painted} painted pixels over ${paint.layers} layer(s)`);
      await page!.waitForTimeout(1000);
      return `${paint.painted} painted pixels on a ${paint.width}×${paint.height} canvas`;
    },
    { shot: 'panel' },
  );

  await step('the panel lists every method of the run', async () => {
    const text = await panelFrame().locator('#app').innerText({ timeout: 30_000 });
    const missing = shortRun['kvlens.methods'].filter((m) => !text.includes(m));
    if (missing.length > 0) throw new Error(`the panel never names ${missing.join(', ')}`);
    return shortRun['kvlens.methods'].join(', ');
  });

  // The profiled file with the most source sites (lines with a lens), its sites in line order; two of them let the
  // clicks below tell which sample the panel focused.
  let file = '';
  let sites: Array<{ line: number; sampleId: string }> = [];
  if (finishedFile) {
    const saved = JSON.parse(readFileSync(finishedFile, 'utf8')) as ResultsFile;
    const byFile = new Map<string, Map<number, string>>();
    for (const row of saved.rows) {
      if (!row.source) continue;
      const lines = byFile.get(row.source.file) ?? new Map<number, string>();
      if (!lines.has(row.source.line)) lines.set(row.source.line, row.sampleId);
      byFile.set(row.source.file, lines);
    }
    const [best] = [...byFile.entries()].sort((a, b) => b[1].size - a[1].size);
    if (best) {
      file = best[0];
      sites = [...best[1].entries()].map(([line, sampleId]) => ({ line, sampleId })).sort((a, b) => a.line - b.line);
    }
  }
  const lenses = page!.locator('.monaco-editor .codelens-decoration', { hasText: 'kvlens:' });
  /** The kvlens lenses of the active editor, top to bottom (the DOM keeps them in no particular order). */
  async function lensesTopDown(): Promise<Locator[]> {
    const all = await lenses.all();
    const placed = await Promise.all(all.map(async (l) => ({ l, y: (await l.boundingBox())?.y ?? Number.POSITIVE_INFINITY })));
    return placed.sort((a, b) => a.y - b.y).map((p) => p.l);
  }
  async function clickLensAndReadFocus(index: number): Promise<string> {
    await page!.keyboard.press('Control+Home');
    await lenses.first().waitFor({ state: 'visible', timeout: 60_000 });
    const ordered = await lensesTopDown();
    if (ordered.length !== sites.length) throw new Error(`${file} shows ${ordered.length} kvlens lenses, the results name ${sites.length} sites in it`);
    await ordered[index].locator('a').first().click();
    const heading = panelFrame().locator('#focus-heading');
    await page!.locator('.tab', { hasText: 'kvlens results' }).first().waitFor({ state: 'visible', timeout: 30_000 });
    const expected = sites[index].sampleId;
    const detail = panelFrame().locator('#focus', { hasText: expected });
    try {
      await detail.waitFor({ state: 'attached', timeout: 30_000 });
    } catch {
      const shown = (await heading.count()) > 0 ? await panelFrame().locator('#focus').innerText() : '(no selected-sample section)';
      throw new Error(`the panel should focus ${expected} (line ${sites[index].line + 1}) but shows: ${shown.split('\n').slice(0, 2).join(' / ')}`);
    }
    return `${expected}: ${(await detail.innerText()).split('\n').slice(0, 2).join(' / ')}`;
  }

  await step(
    'a profiled file opened beside the panel shows kvlens CodeLenses',
    async () => {
      if (sites.length === 0) throw new Error('no row of the finished run names a source line');
      await dismissNotifications();
      await openFile(file, { beside: true });
      await lenses.first().waitFor({ state: 'visible', timeout: 60_000 });
      const texts = await Promise.all((await lensesTopDown()).map(async (l) => (await l.innerText()).trim()));
      for (const text of texts) {
        const missing = shortRun['kvlens.methods'].filter((m) => !text.includes(m));
        if (missing.length > 0) throw new Error(`the lens "${text}" gives no verdict for ${missing.join(', ')}`);
      }
      return `${file}, ${texts.length} lens(es): ${texts[0]}`;
    },
    { shot: 'codelens' },
  );

  await step(
    'hovering a profiled line shows every method\'s answer',
    async () => {
      if (sites.length === 0) throw new Error('no profiled line');
      await goToLine(sites[0].line + 1);
      await runCommand('Show or Focus Hover');
      const hover = page!.locator('.monaco-hover', { hasText: 'kvlens' }).first();
      await hover.waitFor({ state: 'visible', timeout: 30_000 });
      const text = await hover.innerText();
      const missing = shortRun['kvlens.methods'].filter((m) => !text.includes(m));
      if (missing.length > 0) throw new Error(`the hover names no row of ${missing.join(', ')}: ${text.slice(0, 300)}`);
      await page!.waitForTimeout(500); // the hover fades in
      return `${text.split('\n')[0]}`;
    },
    { shot: 'hover' },
  );
  await page!.keyboard.press('Escape');

  await step(
    'clicking a CodeLens focuses its sample in the panel beside',
    async () => {
      if (sites.length < 2) throw new Error(`${file || 'no file'} has ${sites.length} profiled site(s); the click checks need two`);
      return clickLensAndReadFocus(sites.length - 1);
    },
    { shot: 'codelens-click-beside' },
  );

  await step(
    '"kvlens: Show Retained Context…" marks the lines a method kept and evicted',
    async () => {
      const method = 'snapkv:ratio=0.5';
      const expected = expectedRetained(finishedFile, file, method);
      if (expected.kept.size === 0 || expected.dropped.size === 0) {
        throw new Error(`the results give ${method} ${expected.kept.size} kept and ${expected.dropped.size} evicted lines in ${file}; the check needs both`);
      }
      await focusEditorOf(file);
      await runCommand('kvlens: Show Retained Context…', 15_000, 'kvlens: show which lines a method kept');
      const input = page!.locator('.quick-input-widget input.input');
      await input.fill(method);
      await page!.locator('.quick-input-list .monaco-list-row', { hasText: method }).first().waitFor({ state: 'visible', timeout: 15_000 });
      await input.press('Enter');
      await page!.keyboard.press('Control+Home');
      let seen = await decoratedLines(file);
      for (let i = 0; i < 20 && seen.kept.size === 0; i++) {
        await page!.waitForTimeout(500);
        seen = await decoratedLines(file);
      }
      // Dimmed text cannot show on a blank line, so blank lines are left out of the dimmed comparisons.
      const text = readFileSync(join(workspace, file), 'utf8').split('\n');
      for (const set of [expected.partial, expected.dropped]) for (const line of [...set]) if ((text[line] ?? '').trim() === '') set.delete(line);
      const show = (lines: Set<number>) => [...lines].sort((a, b) => a - b).map((l) => l + 1).join(',');
      for (const kind of ['kept', 'partial', 'dropped'] as const) {
        if (show(seen[kind]) !== show(expected[kind])) throw new Error(`${kind} lines shown ${show(seen[kind]) || 'none'}, the results say ${show(expected[kind]) || 'none'}`);
      }
      return `${method} in ${file}: kept ${show(seen.kept)}; partly kept ${show(seen.partial) || 'none'}; evicted ${show(seen.dropped)}`;
    },
    { shot: 'retained-context' },
  );

  await step(
    'clicking another CodeLens focuses its sample when the panel was hidden behind the editor',
    async () => {
      if (sites.length < 2) throw new Error(`${file || 'no file'} has ${sites.length} profiled site(s); the click checks need two`);
      // One editor group: the file covers the panel's tab, so the click has to bring the panel back.
      await runCommand('View: Join All Editor Groups');
      await page!.locator('.tabs-container .tab', { hasText: basename(file) }).first().click();
      await page!.locator('.tabs-container .tab.active', { hasText: basename(file) }).waitFor({ state: 'visible', timeout: 20_000 });
      if (await page!.locator('iframe.webview.ready').filter({ visible: true }).count()) throw new Error('the panel is still visible after its tab was covered');
      return clickLensAndReadFocus(0);
    },
    { shot: 'codelens-click-hidden' },
  );

  await step(
    '"kvlens: Profile Current File" profiles the file in the active editor',
    async () => {
      await dismissNotifications();
      await focusEditorOf(file);
      const before = new Set(resultsFiles(workspace));
      await runCommand('kvlens: Profile Current File');
      const title = await notificationText(new RegExp(`kvlens: profiling ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`), 30_000);
      let fresh: string[] = [];
      for (let i = 0; i < 240 && fresh.length === 0; i++) {
        await page!.waitForTimeout(500);
        fresh = resultsFiles(workspace).filter((f) => !before.has(f) && readResultsIfWhole(f)?.status === 'complete');
      }
      if (fresh.length !== 1) throw new Error(`expected one finished results file for the file run, found ${fresh.length}`);
      if (!basename(fresh[0]).includes(`file-${basename(file).replace(/[^A-Za-z0-9_-]+/g, '-')}`)) throw new Error(`the results file ${basename(fresh[0])} is not labelled with ${basename(file)}`);
      const saved = JSON.parse(readFileSync(fresh[0], 'utf8')) as ResultsFile;
      const completions = saved.rows.filter((r) => r.task === 'completion');
      if (completions.length === 0) {
        const byTask = [...new Set(saved.rows.map((r) => r.task))].map((t) => `${t}: ${saved.rows.filter((r) => r.task === t).length}`);
        throw new Error(`the file run (${basename(fresh[0])}, ${saved.rows.length} rows, status ${saved.status}) has no completion rows; rows by task: ${byTask.join(', ') || 'none'}`);
      }
      const elsewhere = completions.filter((r) => r.source?.file !== file);
      if (elsewhere.length > 0) throw new Error(`${elsewhere.length} completion row(s) target ${elsewhere[0].source?.file ?? 'no file'}, not ${file}`);
      return `${title.replace(/^.*?(kvlens: profiling)/, '$1')} → ${basename(fresh[0])}, ${saved.rows.length} rows`;
    },
    { shot: 'profile-current-file' },
  );
}

/** Keeps the logs next to the screenshots (the scratch folder goes): installer, packaging, the workbench, kvlens. */
function saveLogs(scratch: string): void {
  try {
    for (const old of readdirSync(artifacts)) if (old.endsWith('.log')) rmSync(join(artifacts, old));
    const logs = join(scratch, 'logs');
    if (existsSync(logs)) for (const name of readdirSync(logs)) cpSync(join(logs, name), join(artifacts, name));
    const sessions = join(scratch, 'user-data', 'logs');
    if (!existsSync(sessions)) return;
    // code-server keeps an output channel under <session>/exthost1/, VS Code desktop under <session>/window1/exthost/.
    for (const session of readdirSync(sessions)) {
      for (const channel of [join(sessions, session, 'exthost1', 'kvlens.kvlens'), join(sessions, session, 'window1', 'exthost', 'kvlens.kvlens')]) {
        if (!existsSync(channel)) continue;
        for (const name of readdirSync(channel)) cpSync(join(channel, name), join(artifacts, `kvlens-output-${session}-${name}`));
      }
    }
  } catch (error) {
    log(`(could not keep the logs: ${String(error)})`);
  }
}

/** Runs the scenario on `host` within a time limit, always cleaning up; resolves to the process's exit code. */
async function main(host: WorkbenchHost): Promise<number> {
  artifacts = join(repo, 'test-artifacts', host.artifactsName);
  mkdirSync(artifacts, { recursive: true });
  for (const old of readdirSync(artifacts)) if (old.endsWith('.png')) rmSync(join(artifacts, old));
  const scratch = mkdtempSync(join(tmpdir(), `kvlens-${host.artifactsName}-`));
  log(`scratch folder ${scratch}; screenshots in ${artifacts}`);
  // tsx relays the terminal's Ctrl+C a second time, so every later signal must be caught too (a default action
  // would end this process before cleanup), and whatever happens the exit still ends what was started.
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    log(`${signal}: stopping`);
    void stopEverything().finally(() => {
      if (!keepTemp) rmSync(scratch, { recursive: true, force: true });
      console.log(`${passed} passed, ${failed + 1} failed`);
      process.exit(1);
    });
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('exit', killMarkedNow);
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      scenario(host, scratch),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`the scenario ran past ${SCENARIO_TIMEOUT_MS / 60_000} min`)), SCENARIO_TIMEOUT_MS);
      }),
    ]);
  } catch (error) {
    if (!(error instanceof StopScenario)) {
      failed++;
      log(`FAIL ${error instanceof Error ? error.message : String(error)}`);
      await screenshot('FAILED-scenario');
    } else {
      log(error.message);
    }
  } finally {
    clearTimeout(timer);
    saveLogs(scratch);
    if (host.stop) await host.stop().catch((error: unknown) => log(`(${host.label} did not close by itself: ${String(error)})`));
    await stopEverything();
    if (keepTemp) log(`kept ${scratch}`);
    else rmSync(scratch, { recursive: true, force: true });
  }
  log(`done in ${elapsed()}`);
  console.log(`${passed} passed, ${failed} failed`);
  return failed === 0 && passed > 0 ? 0 : 1;
}

/** The entry of a host's script: runs the scenario and exits with its verdict. */
export function runWorkbenchScenario(host: WorkbenchHost): void {
  main(host).then(
    (code) => process.exit(code),
    (error) => {
      console.error(error);
      console.log(`${passed} passed, ${failed + 1} failed`);
      process.exit(1);
    },
  );
}

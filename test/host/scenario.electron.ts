// The integration scenario (workbench.ts) in VS Code desktop: @vscode/test-electron downloads VS Code and starts it
// with the installed .vsix as the extension under development; the scenario drives its window over the DevTools
// protocol. Needs a display (xvfb-run on Linux) and a machine that can download VS Code, as the CI workflow in
// .github/workflows/ has; where the download cannot be had it says so in one line and exits 0.
// Screenshots in test-artifacts/electron/.
//
// Run with `npm run test:electron`. Environment, besides workbench.ts's:
//   KVLENS_VSCODE          a VS Code executable to use instead of downloading one
//   KVLENS_VSCODE_VERSION  the VS Code to download (default 1.100.3, the workbench code-server 4.100.3 serves)
//   KVLENS_VSCODE_CACHE    where downloads are kept (default ~/.cache/kvlens-host/vscode-test)
//   KVLENS_ELECTRON_REQUIRED=1  a failed download fails the run instead of skipping it (set by the CI workflow)
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { downloadAndUnzipVSCode, ProgressReportStage, resolveCliArgsFromVSCodeExecutablePath, runTests, type ProgressReporter } from '@vscode/test-electron';
import type { Browser, Page } from 'playwright-core';
import { freePort, log, repo, runMarker, runWorkbenchScenario, step, waitForHttp } from './workbench';

const version = process.env.KVLENS_VSCODE_VERSION ?? '1.100.3';
const cachePath = process.env.KVLENS_VSCODE_CACHE ?? join(homedir(), '.cache', 'kvlens-host', 'vscode-test');

/** Download progress as a few log lines (the default reporter's spinner would bury the one-line skip). */
function downloadReporter(): ProgressReporter {
  let reportedQuarter = -1;
  return {
    report(report) {
      if (report.stage === ProgressReportStage.FoundMatchingInstall) log(`VS Code ${version} found in ${report.downloadedPath}`);
      else if (report.stage === ProgressReportStage.ResolvingCDNLocation) log(`downloading VS Code ${version} from ${report.url}`);
      else if (report.stage === ProgressReportStage.Retrying) log(`download failed (${report.error.message}), attempt ${report.attempt} of ${report.totalAttempts}`);
      else if (report.stage === ProgressReportStage.NewInstallComplete) log(`VS Code ${version} unpacked in ${report.downloadedPath}`);
      else if (report.stage === ProgressReportStage.Downloading && report.totalBytes > 0) {
        const quarter = Math.floor((4 * report.bytesSoFar) / report.totalBytes);
        if (quarter > reportedQuarter) log(`  ${25 * quarter}% of ${(report.totalBytes / 2 ** 20).toFixed(0)} MiB`);
        reportedQuarter = Math.max(reportedQuarter, quarter);
      }
    },
    error: () => undefined,
  };
}

/** The VS Code executable, or the reason it cannot be had on this machine. */
async function vscodeExecutable(): Promise<{ path: string } | { skip: string }> {
  if (process.env.KVLENS_VSCODE) return { path: process.env.KVLENS_VSCODE };
  mkdirSync(cachePath, { recursive: true });
  try {
    return { path: await downloadAndUnzipVSCode({ version, cachePath, timeout: 30_000, reporter: downloadReporter() }) };
  } catch (error) {
    const reason = (error instanceof Error ? error.message : String(error)).split('\n')[0];
    return { skip: `VS Code ${version} cannot be downloaded on this machine (${reason})` };
  }
}

let vscodePath = '';
let debugPort = 0;
let doneFile = '';
let session: { exit: Promise<string | null>; exited: string | null } | undefined;

async function main(): Promise<void> {
  const found = await vscodeExecutable();
  if ('skip' in found) {
    if (process.env.KVLENS_ELECTRON_REQUIRED === '1') throw new Error(found.skip);
    console.log(`test:electron skipped: ${found.skip}; npm run test:host runs the same scenario in code-server`);
    process.exit(0);
  }
  vscodePath = found.path;
  runWorkbenchScenario({
    label: 'VS Code',
    artifactsName: 'electron',
    install: async () => vscodePath,
    installExtensionCommand(layout, vsix) {
      const [cli, ...cliArgs] = resolveCliArgsFromVSCodeExecutablePath(vscodePath);
      return { command: cli, args: [...cliArgs, `--extensions-dir=${layout.extensions}`, `--user-data-dir=${layout.userData}`, '--install-extension', vsix] };
    },
    async start(layout) {
      debugPort = await freePort();
      doneFile = join(layout.scratch, 'scenario-done');
      await step(
        'VS Code starts on the workspace with the installed extension under test',
        async () => {
          const [installed] = readdirSync(layout.extensions).filter((d) => d.startsWith('kvlens.kvlens-'));
          const [markerKey, markerValue] = runMarker.split('=');
          const state = { exited: null as string | null, exit: Promise.resolve<string | null>(null) };
          state.exit = runTests({
            vscodeExecutablePath: vscodePath,
            // The packaged extension as installed, so what runs is the .vsix's content, not the work tree.
            extensionDevelopmentPath: join(layout.extensions, installed),
            extensionTestsPath: join(repo, 'test', 'host', 'electron-idle.js'),
            extensionTestsEnv: { [markerKey]: markerValue, KVLENS_ELECTRON_DONE: doneFile },
            launchArgs: [
              layout.workspace,
              `--user-data-dir=${layout.userData}`,
              `--extensions-dir=${layout.extensions}`,
              `--remote-debugging-port=${debugPort}`,
              '--disable-telemetry',
            ],
          }).then(
            () => (state.exited = 'VS Code closed'),
            (error: unknown) => (state.exited = `VS Code exited (${error instanceof Error ? error.message : String(error)})`),
          );
          session = state;
          await waitForHttp(`http://127.0.0.1:${debugPort}/json/version`, 120_000, () => state.exited);
          return `DevTools on 127.0.0.1:${debugPort}`;
        },
        { required: true },
      );
    },
    async connect() {
      const { chromium } = await import('playwright-core');
      const browser: Browser = await chromium.connectOverCDP(`http://127.0.0.1:${debugPort}`);
      const page = await workbenchPage(browser);
      // The window opens at VS Code's default size; the scenario lays editors side by side.
      await page.setViewportSize({ width: 1600, height: 1000 }).catch((error: unknown) => log(`(window size left as it is: ${String(error)})`));
      return { browser, page };
    },
    async stop() {
      if (!session) return;
      // The extension host's test module returns once this file exists, and VS Code then closes itself.
      writeFileSync(doneFile, '');
      const closed = await Promise.race([session.exit, new Promise<null>((r) => setTimeout(() => r(null), 30_000))]);
      if (!closed) throw new Error('still running 30 s after the scenario ended');
    },
  });
}

/** The window showing the workbench (VS Code may open other targets first). */
async function workbenchPage(browser: Browser): Promise<Page> {
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline) {
    for (const context of browser.contexts()) {
      for (const page of context.pages()) {
        if (page.url().includes('workbench') && (await page.locator('.monaco-workbench').count()) > 0) return page;
      }
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`no workbench window among ${browser.contexts().flatMap((c) => c.pages().map((p) => p.url())).join(', ') || 'no pages'}`);
}

main().catch((error: unknown) => {
  console.error(error);
  console.log('0 passed, 1 failed');
  process.exit(1);
});

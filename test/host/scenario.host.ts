// The integration scenario (workbench.ts) with code-server serving the workbench and headless Chromium showing it:
// no download beyond the npm registry and Debian, so it runs here and in CI. Screenshots in test-artifacts/host/.
//
// Run with `npm run test:host`. Environment, besides workbench.ts's:
//   KVLENS_HOST_CACHE   where tools/install-code-server.sh keeps code-server (default ~/.cache/kvlens-host)
//   KVLENS_CHROMIUM     the browser (default /usr/bin/chromium)
import { spawn } from 'node:child_process';
import { existsSync, openSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { children, freePort, markerEnv, repo, run, runWorkbenchScenario, step, waitForHttp, type ScenarioLayout } from './workbench';

const chromiumPath = process.env.KVLENS_CHROMIUM ?? '/usr/bin/chromium';

let codeServer = '';
let origin = '';

function serverArgs(layout: ScenarioLayout): string[] {
  const configFile = join(layout.scratch, 'code-server.yaml');
  if (!existsSync(configFile)) writeFileSync(configFile, 'auth: none\ncert: false\n');
  return ['--config', configFile, '--user-data-dir', layout.userData, '--extensions-dir', layout.extensions];
}

runWorkbenchScenario({
  label: 'code-server',
  artifactsName: 'host',
  async install(layout) {
    const out = run('bash', [join(repo, 'tools', 'install-code-server.sh')], { logFile: join(layout.logs, 'install-code-server.log'), timeoutMs: 20 * 60_000 });
    codeServer = out.trim().split('\n').pop() ?? '';
    return codeServer;
  },
  installExtensionCommand: (layout, vsix) => ({ command: codeServer, args: [...serverArgs(layout), '--install-extension', vsix] }),
  async start(layout) {
    const port = await freePort();
    origin = `http://127.0.0.1:${port}`;
    await step(
      'code-server serves the workbench on 127.0.0.1',
      async () => {
        const serverLog = openSync(join(layout.logs, 'code-server.log'), 'w');
        const server = spawn(
          codeServer,
          [
            ...serverArgs(layout),
            '--auth', 'none',
            '--bind-addr', `127.0.0.1:${port}`,
            '--disable-telemetry',
            '--disable-update-check',
            '--disable-workspace-trust',
            '--disable-getting-started-override',
            '--ignore-last-opened',
            layout.workspace,
          ],
          { env: markerEnv(), detached: true, stdio: ['ignore', serverLog, serverLog] },
        );
        children.push(server);
        await waitForHttp(`${origin}/healthz`, 120_000, () => (server.exitCode === null ? null : `code-server exited with ${server.exitCode}`));
        return origin;
      },
      { required: true },
    );
  },
  async connect() {
    const { chromium } = await import('playwright-core');
    if (!existsSync(chromiumPath)) throw new Error(`no browser at ${chromiumPath}; apt-get install -y chromium, or set KVLENS_CHROMIUM`);
    const browser = await chromium.launch({
      executablePath: chromiumPath,
      env: markerEnv(),
      // Playwright's own handlers would exit this process on a signal before the cleanup here has run.
      handleSIGINT: false,
      handleSIGTERM: false,
      handleSIGHUP: false,
      args: ['--no-sandbox', '--headless', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-sync'],
    });
    const context = await browser.newContext({ viewport: { width: 1600, height: 1000 } });
    const page = await context.newPage();
    await page.goto(origin, { waitUntil: 'domcontentloaded', timeout: 120_000 });
    return { browser, page };
  },
});

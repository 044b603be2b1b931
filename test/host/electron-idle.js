// The --extensionTestsPath module of test/host/scenario.electron.ts, loaded in VS Code's extension host. The scenario
// drives the window from outside, so this only keeps VS Code open until the scenario writes KVLENS_ELECTRON_DONE;
// VS Code closes itself when run() returns.
const { existsSync } = require('node:fs');

const LONGEST_MS = 30 * 60_000;

exports.run = async function run() {
  const doneFile = process.env.KVLENS_ELECTRON_DONE;
  if (!doneFile) throw new Error('KVLENS_ELECTRON_DONE is not set: start VS Code through npm run test:electron');
  const deadline = Date.now() + LONGEST_MS;
  while (!existsSync(doneFile)) {
    if (Date.now() > deadline) throw new Error(`${doneFile} did not appear within ${LONGEST_MS / 60_000} min`);
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
};

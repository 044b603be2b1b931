#!/usr/bin/env node
// Runs the bundled CLI when it exists (an installed package), else the TypeScript source through tsx (a checkout).
const { existsSync } = require('node:fs');
const { join } = require('node:path');
const bundled = join(__dirname, '..', 'dist', 'cli.js');
if (existsSync(bundled)) {
  require(bundled).runFromProcess();
} else {
  require('tsx/cjs');
  require(join(__dirname, '..', 'src', 'engine', 'cli.ts')).runFromProcess();
}

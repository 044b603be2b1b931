#!/usr/bin/env node
// In a checkout, runs the TypeScript source through tsx (never a stale bundle); in a package, the bundled CLI.
const { existsSync } = require('node:fs');
const { join } = require('node:path');
const source = join(__dirname, '..', 'src', 'engine', 'cli.ts');
if (existsSync(source) && existsSync(join(__dirname, '..', 'node_modules', 'tsx'))) {
  require('tsx/cjs');
  require(source).runFromProcess();
} else {
  require(join(__dirname, '..', 'dist', 'cli.js')).runFromProcess();
}

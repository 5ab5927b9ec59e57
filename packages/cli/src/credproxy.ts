#!/usr/bin/env node
// The `credproxy` command: this file bundled as CommonJS (dist/credproxy.cjs, by
// scripts/bundle-cli.mjs). A plain `credproxy token …` is answered by fast.ts; any other command
// loads the full CLI, dist/bin.js — an ES module whose own top level runs it.
import { runFast } from './fast.js';

const fast = runFast(process.argv.slice(2));
if (fast !== undefined) {
  void fast.then((code) => {
    process.exitCode = code;
  });
} else {
  // A specifier the bundler leaves alone: the full CLI stays its own ES module bundle.
  const fullCli = './bin.js';
  import(fullCli).catch((err: unknown) => {
    process.stderr.write(`credproxy: cannot load ${fullCli} beside this file (${err instanceof Error ? err.message : String(err)}) — reinstall credproxy\n`);
    process.exitCode = 1;
  });
}

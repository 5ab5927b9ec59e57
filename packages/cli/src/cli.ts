#!/usr/bin/env node
// The CLI's entry as TypeScript emits it. The `credproxy` command (dist/bin.js) is this file
// bundled by scripts/bundle-cli.mjs, so `credproxy token` loads a few files instead of ~16 modules.
import { main } from './main.js';

process.exitCode = await main(process.argv.slice(2));

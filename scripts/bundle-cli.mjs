#!/usr/bin/env node
// Build the `credproxy` command (packages/cli/dist/bin.js) from what tsc emitted
// (packages/cli/dist/cli.js): the static graph of the CLI and of @credproxy/core/client in one
// file, each command's module a chunk under dist/bundle/ loaded when that command runs.
// `credproxy token` runs once per request in scripts, and an ES module costs ~1 ms to load
// (project-plans/06-bench-hardening.md). The full @credproxy/core (the server, loaded only by
// `serve` and `provider`) and the third-party packages stay imports of their packages.
import { rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const cliDir = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'packages', 'cli');
const dist = path.join(cliDir, 'dist');
rmSync(path.join(dist, 'bundle'), { recursive: true, force: true });
await build({
  entryPoints: { bin: path.join(dist, 'cli.js') },
  outdir: dist,
  chunkNames: 'bundle/[name]-[hash]',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  // Only the exact names: '@credproxy/core/client' is bundled, '@credproxy/core' and '@credproxy/core/server' are not.
  external: ['commander', 'open', 'uqr'],
  plugins: [
    {
      name: 'full-core-stays-a-package',
      setup(b) {
        b.onResolve({ filter: /^@credproxy\/core(\/server)?$/ }, (args) => ({ path: args.path, external: true }));
      },
    },
  ],
  logLevel: 'warning',
});

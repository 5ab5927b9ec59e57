#!/usr/bin/env node
// Build the CLI's two entries from what tsc emitted:
// - dist/bin.js, the full CLI (from dist/cli.js): the static graph of the CLI and of
//   @credproxy/core/client in one ES module, each command's module a chunk under dist/bundle/
//   loaded when that command runs;
// - dist/credproxy.cjs, the `credproxy` command (from dist/credproxy.js): CommonJS, one file,
//   the plain forms of `credproxy token` and what they need; anything else imports dist/bin.js.
// `credproxy token` runs once per request in scripts, and an ES module costs ~1 ms to load
// (project-plans/06-bench-hardening.md). The full @credproxy/core (the server, loaded only by
// `serve` and `provider`) and the third-party packages stay imports of their packages.
import { chmodSync, rmSync } from 'node:fs';
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

// The `credproxy` command. CommonJS, so `credproxy token` starts without the ES module loader.
// What the token path reaches is inside, its rare paths included (the "did you mean" of an
// error), so an error class is one class. Command modules that other helpers of proxy.ts load
// on demand (serve, to start a proxy) stay the ES modules beside it: the token path never
// loads them. A warning (import.meta in CommonJS, a module it cannot bundle) fails the build.
const fast = await build({
  entryPoints: [path.join(dist, 'credproxy.js')],
  outfile: path.join(dist, 'credproxy.cjs'),
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  logLevel: 'silent',
  plugins: [
    {
      name: 'commands-stay-modules',
      setup(b) {
        b.onResolve({ filter: /^\.\.?\/commands\// }, (args) => {
          if (args.kind !== 'dynamic-import') return undefined;
          const target = path.resolve(args.resolveDir, args.path);
          return { path: `./${path.relative(dist, target)}`, external: true };
        });
      },
    },
  ],
});
if (fast.warnings.length > 0 || fast.errors.length > 0) {
  throw new Error(`bundling dist/credproxy.cjs: ${[...fast.errors, ...fast.warnings].map((w) => w.text).join('; ')}`);
}
chmodSync(path.join(dist, 'credproxy.cjs'), 0o755);

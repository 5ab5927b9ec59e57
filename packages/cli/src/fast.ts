/**
 * The plain forms of `credproxy token`, without the ES module loader. Scripts and sandboxes run
 * `credproxy token` once per request: the `credproxy` command (dist/credproxy.cjs, this module
 * and credproxy.ts bundled as CommonJS by scripts/bundle-cli.mjs) answers them here, and saves
 * the ~13 ms an ES module entry costs at start (the loader, and the facades it builds for node's
 * built-in modules). Everything else goes to the full CLI (main.ts), which answers these forms
 * the same way.
 */
import { runFast as runTokenFast } from './commands/token-fast.js';
import { reportError } from './exit-codes.js';
import { type CliIO, processIO } from './output.js';

/** The exit code of a plain `token …`; undefined when `argv` is anything else. */
export function runFast(argv: readonly string[], io: CliIO = processIO()): Promise<number> | undefined {
  if (argv[0] !== 'token') return undefined;
  const json = argv.includes('--json');
  let running: Promise<number> | undefined;
  try {
    running = runTokenFast(argv.slice(1), io);
  } catch (err) {
    return Promise.resolve(reportError(err, io, { json }));
  }
  return running?.catch((err: unknown) => reportError(err, io, { json }));
}

// proxy-child.mjs plus a memory probe and serve's collection of relayed garbage: run with --expose-gc; each "mem" line on stdin is answered
// with "mem <json>": process.memoryUsage() in bytes after two full garbage collections, so a
// test can tell memory the proxy still holds from garbage not yet collected. Warnings and errors
// go to stderr (tests scan them). Optional upstream timeouts for routes (routes-abuse.test.ts: a
// stalled upstream is answered within the test's time).
// argv: SOCKET DATA_DIR CONFIG [UPSTREAM_HEADERS_TIMEOUT_MS UPSTREAM_BODY_TIMEOUT_MS].
// Prints "ready <pid>" once listening.
import readline from 'node:readline';
import { resolvePaths, startProxy, streamLogger } from '@credproxy/core';
// What `credproxy serve` adds for routes, at a small threshold: collections in the middle of every
// kind of relay the abuse tests make (streams, cut bodies, resets) — they must change nothing.
import { collectRelayedGarbage } from '../../packages/cli/dist/stream-garbage.js';

const [socketPath, dataDir, configFile, headersTimeoutMs, bodyTimeoutMs] = process.argv.slice(2);
const paths = resolvePaths({ env: { CREDPROXY_DATA_DIR: dataDir, CREDPROXY_CONFIG: configFile }, socketPath });
// Warnings and errors on stderr (the test reads them); info lines would only fill the pipe.
const proxy = await startProxy({
  paths,
  logger: streamLogger(process.stderr, 'warn'),
  relayed: collectRelayedGarbage({ everyBytes: 64 * 1024 }),
  ...(headersTimeoutMs !== undefined ? { upstream: { headersTimeoutMs: Number(headersTimeoutMs), bodyTimeoutMs: Number(bodyTimeoutMs) } } : {}),
});
process.stdout.write(`ready ${process.pid}\n`);
process.on('SIGTERM', () => void proxy.stop().then(() => process.exit(0)));

const lines = readline.createInterface({ input: process.stdin });
lines.on('line', (line) => {
  if (line.trim() !== 'mem') return;
  globalThis.gc?.();
  globalThis.gc?.();
  process.stdout.write(`mem ${JSON.stringify({ gc: typeof globalThis.gc === 'function', ...process.memoryUsage() })}\n`);
});
// The test runner is gone (stdin closed): do not linger.
lines.on('close', () => void proxy.stop().then(() => process.exit(0)));

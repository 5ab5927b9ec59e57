// A proxy in its own process for routes-abuse.test.ts: the built @credproxy/core, warnings and
// errors on stderr (the test scans them for the injected secret), and short upstream timeouts so
// a stalled upstream is answered within the test's time. Run with --expose-gc: each "mem" line on
// stdin is answered with "mem <json>", process.memoryUsage() in bytes after two full GCs.
// argv: SOCKET DATA_DIR CONFIG UPSTREAM_HEADERS_TIMEOUT_MS UPSTREAM_BODY_TIMEOUT_MS
// stdout: "ready <pid>" once listening.
import readline from 'node:readline';
import { resolvePaths, startProxy, streamLogger } from '@credproxy/core';

const [socketPath, dataDir, configFile, headersTimeoutMs, bodyTimeoutMs] = process.argv.slice(2);
const paths = resolvePaths({ env: { CREDPROXY_DATA_DIR: dataDir, CREDPROXY_CONFIG: configFile }, socketPath });
const proxy = await startProxy({
  paths,
  logger: streamLogger(process.stderr, 'warn'),
  upstream: { headersTimeoutMs: Number(headersTimeoutMs), bodyTimeoutMs: Number(bodyTimeoutMs) },
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

// proxy-child.mjs plus a memory probe: run with --expose-gc; each "mem" line on stdin is answered
// with "mem <json>": process.memoryUsage() in bytes after two full garbage collections, so a
// test can tell memory the proxy still holds from garbage not yet collected.
// argv: SOCKET DATA_DIR CONFIG. Prints "ready <pid>" once listening.
import readline from 'node:readline';
import { resolvePaths, startProxy, streamLogger } from '@credproxy/core';

const [socketPath, dataDir, configFile] = process.argv.slice(2);
const paths = resolvePaths({ env: { CREDPROXY_DATA_DIR: dataDir, CREDPROXY_CONFIG: configFile }, socketPath });
// Warnings and errors on stderr (the test reads them); info lines would only fill the pipe.
const proxy = await startProxy({ paths, logger: streamLogger(process.stderr, 'warn') });
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

// A proxy in its own process, for tests that need two proxies on one data dir or a kill -9.
// argv: SOCKET DATA_DIR CONFIG. Prints "ready <pid>" once listening.
import { resolvePaths, startProxy } from '@credproxy/core';

const [socketPath, dataDir, configFile] = process.argv.slice(2);
const paths = resolvePaths({ env: { CREDPROXY_DATA_DIR: dataDir, CREDPROXY_CONFIG: configFile }, socketPath });
const proxy = await startProxy({ paths });
process.stdout.write(`ready ${process.pid}\n`);
process.on('SIGTERM', () => void proxy.stop().then(() => process.exit(0)));

// Refreshes one account in a loop, as fast as it can, until killed. Used to kill -9 a process
// at random instants during refreshes and check the store afterwards.
// argv: DATA_DIR CONFIG PROVIDER BUCKET
import path from 'node:path';
import { resolvePaths, startProxy, ProxyClient } from '@credproxy/core';

const [dataDir, configFile, provider, bucket, socketPath] = process.argv.slice(2);
const paths = resolvePaths({ env: { CREDPROXY_DATA_DIR: dataDir, CREDPROXY_CONFIG: configFile }, socketPath });
const proxy = await startProxy({ paths });
const client = await ProxyClient.connect({ socketPath: proxy.socketPath });
// One refresh before "ready", so the parent's random kill lands among warm refreshes.
await client.call('refresh_token', { provider, bucket });
process.stdout.write('ready\n');
for (;;) {
  await client.call('refresh_token', { provider, bucket });
}

// One fleet member in its own process, for kill -9 tests: a proxy on the Redis store the config
// names (CREDPROXY_KEY_FILE from the environment), built from dist like the other children.
// argv: MODE SOCKET DATA_DIR CONFIG [PROVIDER BUCKET]
//   serve         start and print "ready"
//   refresh-loop  refresh the account once, print "ready", then refresh in a loop until killed
import { ProxyClient, resolvePaths, startProxy } from '@credproxy/core';

const [mode, socketPath, dataDir, configFile, provider, bucket] = process.argv.slice(2);
const paths = resolvePaths({ env: { CREDPROXY_DATA_DIR: dataDir, CREDPROXY_CONFIG: configFile }, socketPath });
const proxy = await startProxy({ paths, env: process.env });
if (mode === 'serve') {
  process.stdout.write('ready\n');
} else if (mode === 'refresh-loop') {
  const client = await ProxyClient.connect({ socketPath: proxy.socketPath });
  try {
    await client.call('refresh_token', { provider, bucket });
  } catch (err) {
    // needs_login (a grant revoked by an earlier crash): say so and stay up; the parent decides.
    process.stdout.write(`failed ${err.code}\n`);
  }
  process.stdout.write('ready\n');
  for (;;) {
    try {
      await client.call('refresh_token', { provider, bucket });
    } catch {
      await new Promise((r) => setTimeout(r, 5));
    }
  }
} else {
  throw new Error(`unknown mode ${mode}`);
}

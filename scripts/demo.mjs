#!/usr/bin/env node
// npm run demo: a real OpenID Connect provider (oidc-provider) on 127.0.0.1 with a demo user,
// and a credproxy on a temporary socket configured with one demo provider per login flow, so a
// newcomer can try `credproxy login demo` offline. Ctrl-C stops both and removes the files.
//
// --smoke: log in through every flow with a scripted user, check each token at the provider's
// userinfo endpoint, print the result and exit (used by the tests).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ProxyClient, resolvePaths, startProxy, streamLogger } from '@credproxy/core';
import { createScriptedUser, startTestAuthServer } from '@credproxy/testkit';

const smoke = process.argv.includes('--smoke');
const bin = path.relative(process.cwd(), fileURLToPath(new URL('../packages/cli/dist/bin.js', import.meta.url)));

const as = await startTestAuthServer({ deviceInterval: smoke ? 0.05 : 1, accessTokenTtl: 600 });
const dir = mkdtempSync(path.join(os.tmpdir(), 'credproxy-demo-'));
const env = {
  CREDPROXY_SOCKET: path.join(dir, 'proxy.sock'),
  CREDPROXY_DATA_DIR: path.join(dir, 'data'),
  CREDPROXY_CONFIG: path.join(dir, 'config.json'),
};
const scopes = ['openid', 'offline_access', 'profile', 'email'];
writeFileSync(
  env.CREDPROXY_CONFIG,
  JSON.stringify(
    {
      providers: {
        demo: { issuer: as.issuer, client_id: as.clients.native.clientId, scopes, flow: 'pkce_redirect' },
        'demo-device': { issuer: as.issuer, client_id: as.clients.native.clientId, scopes, flow: 'device_code' },
        'demo-paste': { issuer: as.issuer, client_id: as.clients.paste.clientId, scopes, flow: 'browser_redirect', redirect_uri: as.clients.paste.redirectUri },
      },
    },
    null,
    2,
  ),
  { mode: 0o600 },
);
const proxy = await startProxy({
  paths: resolvePaths({ env, socketPath: env.CREDPROXY_SOCKET }),
  logger: streamLogger(process.stderr, smoke ? 'warn' : 'info'),
});

async function shutdown(code = 0) {
  await proxy.stop();
  await as.close();
  rmSync(dir, { recursive: true, force: true });
  process.exit(code);
}
process.on('SIGINT', () => void shutdown(0));
process.on('SIGTERM', () => void shutdown(0));

if (smoke) {
  const client = await ProxyClient.connect({ socketPath: proxy.socketPath });
  const user = createScriptedUser('demo-user');
  const results = {};
  try {
    let init = await client.call('oauth_initiate', { provider: 'demo' });
    await user.followRedirect(await user.authorize(init.auth_url));
    await waitComplete(client, init.session_id);
    init = await client.call('oauth_initiate', { provider: 'demo-device' });
    await user.approveDevice(as.issuer, init.user_code);
    await waitComplete(client, init.session_id);
    init = await client.call('oauth_initiate', { provider: 'demo-paste' });
    await client.call('oauth_exchange', { session_id: init.session_id, code: await user.readPastedCode(await user.authorize(init.auth_url)) });
    for (const provider of ['demo', 'demo-device', 'demo-paste']) {
      const token = await client.call('get_token', { provider });
      const info = await as.userinfo(token.access_token);
      results[provider] = info.status === 200 ? `ok (${info.body.email})` : `userinfo answered ${info.status}`;
    }
    process.stdout.write(JSON.stringify(results) + '\n');
    client.close();
    await shutdown(Object.values(results).every((r) => r.startsWith('ok')) ? 0 : 1);
  } catch (err) {
    process.stderr.write(`demo smoke test failed: ${err instanceof Error ? err.message : String(err)}\n`);
    client.close();
    await shutdown(1);
  }
} else {
  const exports = Object.entries(env).map(([k, v]) => `export ${k}=${v}`).join('\n');
  process.stdout.write(`
credproxy demo is running.

  authorization server  ${as.issuer}   (any login name and password work)
  proxy socket          ${env.CREDPROXY_SOCKET}

In another terminal:

${exports}
node ${bin} provider list
node ${bin} login demo            # PKCE + loopback redirect: opens your browser (or prints the URL)
node ${bin} login demo-device     # device code: open ${as.issuer}/device and enter the code
node ${bin} login demo-paste      # paste the code#state the provider's page shows
node ${bin} status
node ${bin} token demo
node ${bin} client add agent --provider demo     # a sandbox client with its own capability token

Ctrl-C here stops the demo and removes its files.
`);
}

async function waitComplete(client, sessionId) {
  for (let i = 0; i < 200; i++) {
    const r = await client.call('oauth_poll', { session_id: sessionId });
    if (r.status === 'complete') return;
    if (r.status !== 'pending') throw new Error(`login ended ${r.status}: ${r.error ?? ''}`);
    await new Promise((res) => setTimeout(res, 50));
  }
  throw new Error('login did not complete');
}

/**
 * The authorization server dies mid-refresh (kill -9 while the token endpoint holds the request)
 * or is down when a refresh is needed: the caller gets a clear UPSTREAM_UNAVAILABLE, the stored
 * token is kept byte for byte, the account is not marked needs_login, the proxy keeps serving, and
 * once the server is back — restarted on the same port with the same state — the next refresh
 * works without a new login (with refresh-token rotation on, the sharpest case).
 *
 * The server runs in a child process (test/support/as-child.mjs) so it can really be killed; its
 * state file makes the restarted server honour the refresh token it issued before the kill.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { ProxyClient, resolvePaths, startProxy, type RunningProxy } from '@credproxy/core';
import { createScriptedUser } from '@credproxy/testkit';
import { afterEach, describe, expect, it } from 'vitest';
import { startAsChild, stopAsChildren, type AsChild, type AsChildOptions } from '../support/as-process.js';
import { removeTempDirs, tempDir, waitUntil } from '../support/temp.js';

const proxies: RunningProxy[] = [];
const connections: ProxyClient[] = [];

afterEach(async () => {
  for (const c of connections.splice(0)) c.close();
  await stopAsChildren();
  for (const p of proxies.splice(0)) await p.stop();
  await removeTempDirs();
});

interface Setup {
  dir: string;
  stateFile: string;
  dataDir: string;
  configFile: string;
  tokenFile: string;
}

/** A temp dir (short: sockets live in it), the state file path, and a config naming the server. */
async function setup(as: AsChild, dir: string): Promise<Setup> {
  const dataDir = path.join(dir, 'data');
  const configFile = path.join(dir, 'config.json');
  await fs.writeFile(
    configFile,
    JSON.stringify({
      // These tests read and compare the token file directly (encryption: store-encryption.test.ts).
      encryption: 'none',
      providers: {
        acme: {
          issuer: as.info.issuer,
          client_id: as.info.clients.paste.clientId,
          scopes: ['openid', 'offline_access'],
          flow: 'browser_redirect',
          redirect_uri: as.info.clients.paste.redirectUri,
        },
      },
    }),
  );
  return { dir, stateFile: path.join(dir, 'as.json'), dataDir, configFile, tokenFile: path.join(dataDir, 'tokens', 'acme', 'default.json') };
}

async function proxyIn(s: Setup, name: string): Promise<RunningProxy> {
  const paths = resolvePaths({ env: { CREDPROXY_DATA_DIR: s.dataDir, CREDPROXY_CONFIG: s.configFile }, socketPath: path.join(s.dir, `${name}.sock`) });
  const p = await startProxy({ paths });
  proxies.push(p);
  return p;
}

async function connect(socketPath: string): Promise<ProxyClient> {
  const c = await ProxyClient.connect({ socketPath });
  connections.push(c);
  return c;
}

/** A real login through the proxy (paste flow), leaving tokens on disk. */
async function login(c: ProxyClient): Promise<void> {
  const init = await c.call('oauth_initiate', { provider: 'acme' });
  const user = createScriptedUser();
  const code = await user.readPastedCode(await user.authorize(init.auth_url));
  await c.call('oauth_exchange', { session_id: init.session_id, code });
}

/** Start the server child on a fresh state file in a fresh temp dir. */
async function firstStart(options: AsChildOptions): Promise<{ as: AsChild; s: Setup }> {
  const dir = await tempDir('car-');
  const stateFile = path.join(dir, 'as.json');
  const as = await startAsChild({ ...options, stateFile });
  expect(as.info.restored).toBe(false);
  return { as, s: await setup(as, dir) };
}

/** Start the server again on the same port and state file (options may differ, e.g. the TTL). */
async function restart(previous: AsChild, s: Setup, options: AsChildOptions): Promise<AsChild> {
  const as = await startAsChild({ ...options, stateFile: s.stateFile, port: previous.info.port });
  expect(as.info.restored).toBe(true);
  expect(as.info.issuer).toBe(previous.info.issuer);
  return as;
}

/** The settled outcome of a call: its result, or the error it was rejected with. */
function settle<T>(p: Promise<T>): Promise<{ ok: true; value: T } | { ok: false; error: Error & { code?: string } }> {
  return p.then(
    (value) => ({ ok: true as const, value }),
    (error: Error & { code?: string }) => ({ ok: false as const, error }),
  );
}

const readToken = async (s: Setup) => JSON.parse(await fs.readFile(s.tokenFile, 'utf8')) as { token: Record<string, unknown> & { access_token: string; refresh_token: string; expiry: number }; needs_login?: boolean };

/** What an UPSTREAM_UNAVAILABLE for this outage must tell the user. */
function expectClearOutageError(error: Error & { code?: string }): void {
  expect(error.code).toBe('UPSTREAM_UNAVAILABLE');
  expect(error.message).toContain('acme');
  // It says the token is safe and what to do — and not to log in again.
  expect(error.message).toMatch(/unchanged|unreachable/);
  expect(error.message).toMatch(/try again/);
  expect(error.message).not.toMatch(/credproxy login/);
}

describe('authorization server killed mid-refresh', () => {
  it('kill -9 during an in-flight refresh: clear error, token kept byte for byte, proxy serves on, recovery after restart', async () => {
    // TTL 120 s: the access token stays valid through the test (and far from background renewal).
    const options = { rotateRefreshToken: true, accessTokenTtl: 120 } as const;
    let { as, s } = await firstStart({ ...options, holdRefreshMs: 60_000 });
    const p = await proxyIn(s, 'p');
    const c = await connect(p.socketPath);
    await login(c);
    await c.call('set_api_key', { name: 'other', key: 'sk-other-123' });
    const before = await fs.readFile(s.tokenFile);
    const old = (await readToken(s)).token;
    expect(await as.userinfoStatus(old.access_token)).toBe(200);

    // A forced refresh, and a get_token asking for more validity than the token has (it joins the
    // same single-flight refresh); the server holds the grant request ...
    const forced = settle(c.call('refresh_token', { provider: 'acme' }));
    await as.waitFor((e) => e.event === 'held' && e.grantType === 'refresh_token');
    const demanding = settle(c.call('get_token', { provider: 'acme', min_valid_seconds: 100_000 }));
    await new Promise((r) => setTimeout(r, 50));
    // ... and dies with it in flight.
    const killedAt = Date.now();
    await as.kill9();

    const forcedOutcome = await forced;
    const waited = Date.now() - killedAt;
    expect(forcedOutcome.ok).toBe(false);
    if (forcedOutcome.ok) return;
    expectClearOutageError(forcedOutcome.error);
    // The answer comes after the proxy's few quick retries, not after a long timeout.
    expect(waited).toBeLessThan(5_000);
    // get_token gets the old token, which still works: a hiccup must not take it away.
    const demandingOutcome = await demanding;
    expect(demandingOutcome).toMatchObject({ ok: true, value: { access_token: old.access_token } });

    // Token kept: the file is byte-identical; the account is not marked needs_login.
    expect(await fs.readFile(s.tokenFile)).toEqual(before);
    const status = await c.call('status', {});
    expect(status.accounts).toEqual([expect.objectContaining({ provider: 'acme', bucket: 'default' })]);
    expect(status.accounts[0]!.state).not.toBe('needs_login');

    // The proxy stays up and serves: ping, API keys, the still-valid token (from memory, and
    // through a failing refresh), on the existing connection and on a new one.
    await expect(c.call('ping', {})).resolves.toBeTruthy();
    await expect(c.call('get_api_key', { name: 'other' })).resolves.toEqual({ key: 'sk-other-123' });
    await expect(c.call('get_token', { provider: 'acme' })).resolves.toMatchObject({ access_token: old.access_token });
    const c2 = await connect(p.socketPath);
    await expect(c2.call('get_token', { provider: 'acme', min_valid_seconds: 100_000 })).resolves.toMatchObject({ access_token: old.access_token });
    const again = await settle(c2.call('refresh_token', { provider: 'acme' }));
    expect(again.ok).toBe(false);
    if (!again.ok) expectClearOutageError(again.error);
    expect(await fs.readFile(s.tokenFile)).toEqual(before);

    // The server comes back on the same port with the same state (no hold this time).
    as = await restart(as, s, options);
    // The server never acted on the held request, so the old grant is intact.
    expect(await as.isActive(old.refresh_token)).toBe(true);

    const fresh = await c.call('refresh_token', { provider: 'acme' });
    expect(fresh.access_token).not.toBe(old.access_token);
    expect(await as.userinfoStatus(fresh.access_token)).toBe(200);
    // Rotation: the new refresh token is on disk and live; the old one was consumed.
    const stored = await readToken(s);
    expect(stored.needs_login).toBeUndefined();
    expect(stored.token.access_token).toBe(fresh.access_token);
    expect(stored.token.refresh_token).not.toBe(old.refresh_token);
    expect(await as.isActive(stored.token.refresh_token)).toBe(true);
    expect(await as.isActive(old.refresh_token)).toBe(false);
    // Recovered without a new login: one refresh grant, no code exchange.
    expect(as.events.filter((e) => e.event === 'token')).toEqual([{ event: 'token', grantType: 'refresh_token', status: 200 }]);
    await expect(c.call('get_token', { provider: 'acme' })).resolves.toMatchObject({ access_token: fresh.access_token });
    expect((await c.call('status', {})).accounts[0]!.state).not.toBe('needs_login');
  });
});

describe('authorization server down when an expired token needs a refresh', () => {
  it('connection refused: clear error, no needs_login, token kept; recovery after restart without a new login', async () => {
    // TTL 2 s so the token expires during the outage; the restarted server issues long-lived ones.
    let { as, s } = await firstStart({ rotateRefreshToken: true, accessTokenTtl: 2 });
    let p = await proxyIn(s, 'p');
    let c = await connect(p.socketPath);
    await login(c);
    const old = (await readToken(s)).token;
    await as.kill9();
    await waitUntil(() => Date.now() >= old.expiry * 1000 + 50, 5_000, 50);
    const before = await fs.readFile(s.tokenFile);

    const first = await settle(c.call('get_token', { provider: 'acme' }));
    expect(first.ok).toBe(false);
    if (first.ok) return;
    expectClearOutageError(first.error);
    // Not just undici's "fetch failed": the reason.
    expect(first.error.message).toContain('connection refused (ECONNREFUSED)');
    // The account is expired, not needs_login; the file is untouched.
    const status = await c.call('status', {});
    expect(status.accounts).toEqual([expect.objectContaining({ provider: 'acme', state: 'expired' })]);
    expect(await fs.readFile(s.tokenFile)).toEqual(before);

    // Asking again (and forcing) still says "unavailable", never degrading into REAUTH_REQUIRED.
    const second = await settle(c.call('get_token', { provider: 'acme', min_valid_seconds: 0 }));
    expect(second.ok || second.error.code).toBe('UPSTREAM_UNAVAILABLE');
    const forced = await settle(c.call('refresh_token', { provider: 'acme' }));
    expect(forced.ok || forced.error.code).toBe('UPSTREAM_UNAVAILABLE');

    // A proxy started during the outage has no cached discovery document: same answer.
    c.close();
    await p.stop();
    proxies.length = 0;
    p = await proxyIn(s, 'q');
    c = await connect(p.socketPath);
    const fromNewProxy = await settle(c.call('get_token', { provider: 'acme' }));
    expect(fromNewProxy.ok).toBe(false);
    if (!fromNewProxy.ok) {
      expectClearOutageError(fromNewProxy.error);
      expect(fromNewProxy.error.message).toContain('connection refused (ECONNREFUSED)');
    }
    expect((await c.call('status', {})).accounts[0]!.state).toBe('expired');
    expect(await fs.readFile(s.tokenFile)).toEqual(before);
    await expect(c.call('ping', {})).resolves.toBeTruthy();

    // The server returns on the same port with the same state.
    as = await restart(as, s, { rotateRefreshToken: true, accessTokenTtl: 3600 });
    const served = await c.call('get_token', { provider: 'acme' });
    expect(served.access_token).not.toBe(old.access_token);
    expect(served.expiry).toBeGreaterThan(Date.now() / 1000 + 3000);
    expect(await as.userinfoStatus(served.access_token)).toBe(200);
    const stored = await readToken(s);
    expect(stored.needs_login).toBeUndefined();
    expect(stored.token.access_token).toBe(served.access_token);
    expect(stored.token.refresh_token).not.toBe(old.refresh_token);
    expect(await as.isActive(stored.token.refresh_token)).toBe(true);
    expect(as.events.filter((e) => e.event === 'token')).toEqual([{ event: 'token', grantType: 'refresh_token', status: 200 }]);
    expect((await c.call('status', {})).accounts[0]!.state).toBe('valid');
  });
});

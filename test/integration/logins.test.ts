/**
 * Logins through the proxy against a real authorization server (oidc-provider on loopback) with a
 * scripted user. A fetch tap records every secret the proxy exchanged upstream (PKCE verifier,
 * device code, refresh token, client secret) so the byte scan at the end can prove none of them
 * reached a client frame, the proxy log or the audit log.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { startProxy, resolvePaths, streamLogger, type RunningProxy } from '@credproxy/core';
import { readStoredAccounts } from '../support/stored-records.js';
import { createScriptedUser, startTestAuthServer, type TestAuthServer } from '@credproxy/testkit';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { RawClient } from '../support/raw-client.js';
import { removeTempDirs, tempDir, waitUntil } from '../support/temp.js';

const CONFIDENTIAL_SECRET_ENV = 'CP_TEST_CONFIDENTIAL_SECRET';

let as: TestAuthServer;
let proxy: RunningProxy;
let dir: string;
let configFile: string;
const log: string[] = [];
/** Every secret the proxy sent or received upstream. */
const secrets = new Set<string>();
/** Every client connection opened, for the byte scan. */
const clients: RawClient[] = [];
/** Every auth_url handed out: state and nonce may appear only inside these. */
const authUrls = new Set<string>();
const states = new Set<string>();
const nonces = new Set<string>();

function noteSecret(value: string | null | undefined): void {
  if (value && value.length >= 8) secrets.add(value);
}

const tapFetch: typeof fetch = async (input, init) => {
  const body = init?.body;
  if (body instanceof URLSearchParams || typeof body === 'string') {
    const params = new URLSearchParams(body.toString());
    for (const key of ['code_verifier', 'device_code', 'refresh_token', 'client_secret']) noteSecret(params.get(key));
    if (params.get('token_type_hint') === 'refresh_token') noteSecret(params.get('token'));
  }
  const headers = new Headers(init?.headers);
  const auth = headers.get('authorization');
  if (auth?.startsWith('Basic ')) {
    const decoded = Buffer.from(auth.slice(6), 'base64').toString();
    noteSecret(decodeURIComponent(decoded.slice(decoded.indexOf(':') + 1)));
  }
  const response = await fetch(input, init);
  const text = await response.clone().text();
  try {
    const json = JSON.parse(text) as Record<string, unknown>;
    for (const key of ['refresh_token', 'device_code']) if (typeof json[key] === 'string') noteSecret(json[key] as string);
  } catch {
    // not JSON: nothing to note
  }
  return response;
};

async function writeConfig(extra: Record<string, unknown> = {}, settings: Record<string, unknown> = {}): Promise<void> {
  const providers = {
    demo: { issuer: as.issuer, client_id: as.clients.native.clientId, scopes: ['openid', 'offline_access', 'profile'], flow: 'pkce_redirect' },
    'demo-device': { issuer: as.issuer, client_id: as.clients.native.clientId, scopes: ['openid', 'offline_access'], flow: 'device_code' },
    'demo-paste': { issuer: as.issuer, client_id: as.clients.paste.clientId, scopes: ['openid', 'offline_access'], flow: 'browser_redirect', redirect_uri: as.clients.paste.redirectUri },
    'demo-conf': { issuer: as.issuer, client_id: as.clients.confidential.clientId, client_secret_env: CONFIDENTIAL_SECRET_ENV, scopes: ['openid', 'offline_access'], flow: 'pkce_redirect' },
    ...extra,
  };
  await fs.writeFile(configFile, JSON.stringify({ providers, ...settings }, null, 2));
}

async function owner(): Promise<RawClient> {
  const c = await RawClient.connect(proxy.socketPath);
  clients.push(c);
  const hs = await c.handshake();
  expect(hs.value.ok).toBe(true);
  return c;
}

async function ok(c: RawClient, op: string, payload: Record<string, unknown> = {}): Promise<any> {
  const f = await c.request(op, payload, 15_000);
  if (!f.value.ok) throw new Error(`${op} failed: ${f.value.code} ${f.value.error}`);
  return f.value.data;
}

async function fails(c: RawClient, op: string, payload: Record<string, unknown>): Promise<{ code: string; error: string }> {
  const f = await c.request(op, payload, 15_000);
  expect(f.value.ok).toBe(false);
  return f.value;
}

function remember(init: { auth_url: string }): URL {
  authUrls.add(init.auth_url);
  const url = new URL(init.auth_url);
  const state = url.searchParams.get('state');
  const nonce = url.searchParams.get('nonce');
  if (state) states.add(state);
  if (nonce) nonces.add(nonce);
  return url;
}

async function pollUntilDone(c: RawClient, sessionId: string, timeoutMs = 10_000): Promise<any> {
  let last: any;
  await waitUntil(async () => {
    last = await ok(c, 'oauth_poll', { session_id: sessionId });
    return last.status !== 'pending';
  }, timeoutMs, 25);
  return last;
}

async function tokenWorksAtServer(c: RawClient, provider: string, bucket?: string): Promise<void> {
  const token = await ok(c, 'get_token', bucket ? { provider, bucket } : { provider });
  expect(token.token_type).toBe('Bearer');
  expect(token).not.toHaveProperty('refresh_token');
  const info = await as.userinfo(token.access_token);
  expect(info.status).toBe(200);
  expect((info.body as { sub: string }).sub).toBeTruthy();
}

beforeAll(async () => {
  as = await startTestAuthServer({ deviceInterval: 0.05 });
  dir = await tempDir('cpl-');
  configFile = path.join(dir, 'config.json');
  await writeConfig();
  const paths = resolvePaths({ env: { CREDPROXY_DATA_DIR: path.join(dir, 'data'), CREDPROXY_CONFIG: configFile }, socketPath: path.join(dir, 'run', 'p.sock') });
  proxy = await startProxy({
    paths,
    fetch: tapFetch,
    env: { [CONFIDENTIAL_SECRET_ENV]: as.clients.confidential.clientSecret },
    logger: streamLogger({ write: (line: string) => log.push(line) }, 'debug'),
  });
  noteSecret(as.clients.confidential.clientSecret);
});

afterEach(() => as.setSlowDownCount(0));

afterAll(async () => {
  for (const c of clients) c.close();
  await proxy?.stop();
  await as?.close();
  await removeTempDirs();
});

describe('pkce_redirect', () => {
  it('logs in through the loopback callback and the token works at the server', async () => {
    const c = await owner();
    const init = await ok(c, 'oauth_initiate', { provider: 'demo' });
    expect(init).toMatchObject({ flow_type: 'pkce_redirect', pollIntervalMs: expect.any(Number), expires_at: expect.any(Number) });
    expect(init.session_id).toMatch(/^[0-9a-f]{32}$/);
    const url = remember(init);
    expect(url.searchParams.get('code_challenge_method')).toBe('S256');
    const redirect = new URL(url.searchParams.get('redirect_uri')!);
    expect(redirect.hostname).toBe('127.0.0.1');
    expect(redirect.pathname).toBe('/callback');

    const user = createScriptedUser();
    const location = await user.authorize(init.auth_url);
    expect(new URL(location).origin).toBe(redirect.origin);
    const page = await user.followRedirect(location);
    expect(page.status).toBe(200);
    expect(page.body).toMatch(/return to the terminal/i);

    const done = await pollUntilDone(c, init.session_id);
    expect(done).toMatchObject({ status: 'complete', provider: 'demo', bucket: 'default' });
    await tokenWorksAtServer(c, 'demo');
    // The listener served the callback once and is closed now.
    await expect(fetch(location)).rejects.toThrow();
    const st = await ok(c, 'status');
    expect(st.accounts).toContainEqual(expect.objectContaining({ provider: 'demo', bucket: 'default', state: 'valid' }));
  });

  it('keeps waiting when a callback carries the wrong state, then completes with the right one', async () => {
    const c = await owner();
    const init = await ok(c, 'oauth_initiate', { provider: 'demo', bucket: 'wrongstate' });
    remember(init);
    const user = createScriptedUser();
    const location = new URL(await user.authorize(init.auth_url));
    const forged = new URL(location);
    forged.searchParams.set('state', 'not-the-state');
    const bad = await fetch(forged);
    expect(bad.status).toBe(400);
    expect((await ok(c, 'oauth_poll', { session_id: init.session_id })).status).toBe('pending');
    expect((await user.followRedirect(location)).status).toBe(200);
    expect((await pollUntilDone(c, init.session_id)).status).toBe('complete');
  });

  it('reports a denial at the provider as denied', async () => {
    const c = await owner();
    const init = await ok(c, 'oauth_initiate', { provider: 'demo', bucket: 'denied' });
    remember(init);
    const user = createScriptedUser();
    const location = await user.authorize(init.auth_url, { deny: true });
    expect(new URL(location).searchParams.get('error')).toBe('access_denied');
    const page = await user.followRedirect(location);
    expect(page.status).toBe(403);
    const done = await pollUntilDone(c, init.session_id);
    expect(done.status).toBe('denied');
    expect(done.error).toMatch(/denied/);
    expect((await fails(c, 'get_token', { provider: 'demo', bucket: 'denied' })).code).toBe('NOT_FOUND');
  });

  it('starts a login of its own for every initiate, even for the same account (two terminals never share a session)', async () => {
    const c = await owner();
    const a = await ok(c, 'oauth_initiate', { provider: 'demo', bucket: 'join' });
    const b = await ok(c, 'oauth_initiate', { provider: 'demo', bucket: 'join' });
    remember(a);
    remember(b);
    expect(b.session_id).not.toBe(a.session_id);
    // Cancelling one (a Ctrl-C in its terminal) leaves the other pending, and it still completes.
    expect(await ok(c, 'oauth_cancel', { session_id: a.session_id })).toEqual({ status: 'cancelled' });
    expect((await ok(c, 'oauth_poll', { session_id: a.session_id })).status).toBe('cancelled');
    expect((await ok(c, 'oauth_poll', { session_id: b.session_id })).status).toBe('pending');
    const user = createScriptedUser();
    expect((await user.followRedirect(await user.authorize(b.auth_url))).status).toBe(200);
    expect((await pollUntilDone(c, b.session_id)).status).toBe('complete');
  });

  it('authenticates a confidential client with its secret from the environment', async () => {
    const c = await owner();
    const init = await ok(c, 'oauth_initiate', { provider: 'demo-conf' });
    remember(init);
    const user = createScriptedUser();
    await user.followRedirect(await user.authorize(init.auth_url));
    expect((await pollUntilDone(c, init.session_id)).status).toBe('complete');
    await tokenWorksAtServer(c, 'demo-conf');
  });
});

describe('browser_redirect (paste)', () => {
  it('swaps a pasted code#state for tokens', async () => {
    const c = await owner();
    const init = await ok(c, 'oauth_initiate', { provider: 'demo-paste' });
    expect(init.flow_type).toBe('browser_redirect');
    remember(init);
    const user = createScriptedUser();
    const pasted = await user.readPastedCode(await user.authorize(init.auth_url));
    expect(pasted).toContain('#');
    const done = await ok(c, 'oauth_exchange', { session_id: init.session_id, code: pasted });
    expect(done).toMatchObject({ status: 'complete', provider: 'demo-paste', bucket: 'default', expiry: expect.any(Number) });
    await tokenWorksAtServer(c, 'demo-paste');
    // Single use.
    expect((await fails(c, 'oauth_exchange', { session_id: init.session_id, code: pasted })).code).toBe('SESSION_ALREADY_USED');
  });

  it('refuses a code with the wrong state and keeps the session open', async () => {
    const c = await owner();
    const init = await ok(c, 'oauth_initiate', { provider: 'demo-paste', bucket: 'state' });
    remember(init);
    const user = createScriptedUser();
    const pasted = await user.readPastedCode(await user.authorize(init.auth_url));
    const [code] = pasted.split('#');
    const mismatch = await fails(c, 'oauth_exchange', { session_id: init.session_id, code: `${code}#forged-state` });
    expect(mismatch.code).toBe('STATE_MISMATCH');
    expect((await ok(c, 'oauth_exchange', { session_id: init.session_id, code: pasted })).status).toBe('complete');
  });

  it('lets exactly one of two racing exchanges win', async () => {
    const a = await owner();
    const b = await owner();
    const init = await ok(a, 'oauth_initiate', { provider: 'demo-paste', bucket: 'race' });
    remember(init);
    const user = createScriptedUser();
    const pasted = await user.readPastedCode(await user.authorize(init.auth_url));
    const results = await Promise.all([a, b].map((c) => c.request('oauth_exchange', { session_id: init.session_id, code: pasted }, 15_000)));
    const wins = results.filter((r) => r.value.ok);
    const losses = results.filter((r) => !r.value.ok);
    expect(wins).toHaveLength(1);
    expect(losses.map((r) => r.value.code)).toEqual(['SESSION_ALREADY_USED']);
    expect(as.grantCounts.authorization_code).toBeGreaterThan(0);
  });

  it('expires sessions after the configured TTL', async () => {
    await writeConfig({}, { session_ttl_seconds: 1 });
    try {
      const c = await owner();
      const init = await ok(c, 'oauth_initiate', { provider: 'demo-paste', bucket: 'ttl' });
      remember(init);
      expect(init.expires_at - Math.floor(Date.now() / 1000)).toBeLessThanOrEqual(1);
      await new Promise((r) => setTimeout(r, 1_300));
      expect((await ok(c, 'oauth_poll', { session_id: init.session_id })).status).toBe('expired');
      expect((await fails(c, 'oauth_exchange', { session_id: init.session_id, code: 'x#y' })).code).toBe('SESSION_EXPIRED');
    } finally {
      await writeConfig();
    }
  });
});

describe('device_code', () => {
  it('polls in the background until the user approves; the token works', async () => {
    const c = await owner();
    const init = await ok(c, 'oauth_initiate', { provider: 'demo-device' });
    expect(init.flow_type).toBe('device_code');
    expect(init.user_code).toBeTruthy();
    expect(init.verification_uri).toBe(`${as.issuer}/device`);
    remember(init);
    const before = as.grantCounts.device_code;
    await new Promise((r) => setTimeout(r, 200));
    // The proxy polls by itself; oauth_poll only reads.
    expect(as.grantCounts.device_code).toBeGreaterThan(before);
    const polled = await ok(c, 'oauth_poll', { session_id: init.session_id });
    expect(polled).toMatchObject({ status: 'pending', interval: 0.05 });
    await createScriptedUser().approveDevice(as.issuer, init.user_code);
    expect((await pollUntilDone(c, init.session_id)).status).toBe('complete');
    await tokenWorksAtServer(c, 'demo-device');
  });

  it('reports denial', async () => {
    const c = await owner();
    const init = await ok(c, 'oauth_initiate', { provider: 'demo-device', bucket: 'deny' });
    remember(init);
    await createScriptedUser().approveDevice(as.issuer, init.user_code, { deny: true });
    const done = await pollUntilDone(c, init.session_id);
    expect(done.status).toBe('denied');
  });

  it('honours slow_down by adding 5 s to the interval', async () => {
    const c = await owner();
    as.setSlowDownCount(1);
    const before = as.grantCounts.device_code;
    const init = await ok(c, 'oauth_initiate', { provider: 'demo-device', bucket: 'slow' });
    remember(init);
    await waitUntil(() => as.grantCounts.device_code > before, 2_000, 10);
    await new Promise((r) => setTimeout(r, 1_000));
    // One poll was answered slow_down; the next waits 5.05 s, so nothing more in this second.
    expect(as.grantCounts.device_code - before).toBe(1);
    expect((await ok(c, 'oauth_poll', { session_id: init.session_id })).interval).toBeCloseTo(5.05, 5);
    await ok(c, 'oauth_cancel', { session_id: init.session_id });
  });
});

describe('device code expiry', () => {
  it('ends the session as expired when the device code expires', async () => {
    const shortAs = await startTestAuthServer({ deviceInterval: 0.05, deviceCodeTtl: 1 });
    try {
      await writeConfig({ short: { issuer: shortAs.issuer, client_id: 'native', scopes: ['openid'], flow: 'device_code' } });
      const c = await owner();
      const init = await ok(c, 'oauth_initiate', { provider: 'short' });
      remember(init);
      const done = await pollUntilDone(c, init.session_id, 5_000);
      expect(done.status).toBe('expired');
    } finally {
      await writeConfig();
      await shortAs.close();
    }
  });
});

describe('sessions and identities', () => {
  it('hides a session from every identity but the one that started it', async () => {
    const c = await owner();
    const added = await ok(c, 'client_add', { name: 'loginbot', scopes: [{ provider: 'demo-paste' }], allow_login: true });
    const bot = await RawClient.connect(proxy.socketPath);
    clients.push(bot);
    expect((await bot.handshake(added.capability_token)).value.ok).toBe(true);

    const ownerSession = await ok(c, 'oauth_initiate', { provider: 'demo-paste', bucket: 'mine' });
    remember(ownerSession);
    for (const op of ['oauth_poll', 'oauth_cancel']) {
      expect((await fails(bot, op, { session_id: ownerSession.session_id })).code).toBe('SESSION_NOT_FOUND');
    }
    expect((await fails(bot, 'oauth_exchange', { session_id: ownerSession.session_id, code: 'c#s' })).code).toBe('SESSION_NOT_FOUND');

    const botSession = await ok(bot, 'oauth_initiate', { provider: 'demo-paste', bucket: 'bots' });
    remember(botSession);
    expect((await fails(c, 'oauth_poll', { session_id: botSession.session_id })).code).toBe('SESSION_NOT_FOUND');
    expect((await ok(bot, 'oauth_poll', { session_id: botSession.session_id })).status).toBe('pending');
    // Outside its scope a client may not log in, whether or not the provider exists.
    expect((await fails(bot, 'oauth_initiate', { provider: 'demo' })).code).toBe('FORBIDDEN');
    expect((await fails(bot, 'oauth_initiate', { provider: 'nope' })).code).toBe('FORBIDDEN');
    await ok(bot, 'oauth_cancel', { session_id: botSession.session_id });
    await ok(c, 'oauth_cancel', { session_id: ownerSession.session_id });
  });

  it('needs allow_login for a client to start a login', async () => {
    const c = await owner();
    const added = await ok(c, 'client_add', { name: 'nologin', scopes: [{ provider: 'demo-paste' }] });
    const bot = await RawClient.connect(proxy.socketPath);
    clients.push(bot);
    await bot.handshake(added.capability_token);
    const err = await fails(bot, 'oauth_initiate', { provider: 'demo-paste' });
    expect(err.code).toBe('FORBIDDEN');
    expect(err.error).toMatch(/allow-login/);
  });

  it('answers PROVIDER_NOT_CONFIGURED naming the fix, and sees providers added while running', async () => {
    const c = await owner();
    const err = await fails(c, 'oauth_initiate', { provider: 'later' });
    expect(err.code).toBe('PROVIDER_NOT_CONFIGURED');
    expect(err.error).toContain('credproxy provider add later');
    await writeConfig({ later: { issuer: as.issuer, client_id: 'paste', flow: 'browser_redirect', redirect_uri: as.clients.paste.redirectUri } });
    try {
      expect((await ok(c, 'list_providers')).providers).toContain('later');
      const init = await ok(c, 'oauth_initiate', { provider: 'later' });
      remember(init);
      await ok(c, 'oauth_cancel', { session_id: init.session_id });
    } finally {
      await writeConfig();
    }
  });
});

describe('logout', () => {
  it('revokes the refresh token at the provider, then forgets the account', async () => {
    const c = await owner();
    const init = await ok(c, 'oauth_initiate', { provider: 'demo-paste', bucket: 'bye' });
    remember(init);
    const user = createScriptedUser();
    await ok(c, 'oauth_exchange', { session_id: init.session_id, code: await user.readPastedCode(await user.authorize(init.auth_url)) });
    const token = await ok(c, 'get_token', { provider: 'demo-paste', bucket: 'bye' });
    // Encrypted at rest: read the record as the proxy does.
    const stored = (await readStoredAccounts({ CREDPROXY_DATA_DIR: path.join(dir, 'data'), CREDPROXY_CONFIG: configFile })).find((r) => r.provider === 'demo-paste' && r.bucket === 'bye')!;
    const refresh: string = stored.token.refresh_token!;
    expect(refresh).toBeTruthy();
    expect(await as.isActive(refresh)).toBe(true);
    expect(await as.isActive(token.access_token)).toBe(true);
    expect(await ok(c, 'logout', { provider: 'demo-paste', bucket: 'bye' })).toEqual({ revoked: true });
    expect(await as.isActive(refresh)).toBe(false);
    expect(await as.isActive(token.access_token)).toBe(false);
    const records = await fs.readdir(path.join(dir, 'data', 'tokens', 'demo-paste'));
    expect(records).not.toContain('bye.json');
    expect((await fails(c, 'logout', { provider: 'demo-paste', bucket: 'bye' })).code).toBe('NOT_LOGGED_IN');
  });
});

describe('byte scan', () => {
  it('never lets a verifier, device code, refresh token or client secret out, and state/nonce only inside auth_url', async () => {
    // Every login above ran in this file; let the audit log's batched writes land.
    await new Promise((r) => setTimeout(r, 200));
    const auditLog = await fs.readFile(path.join(dir, 'data', 'audit.log'), 'utf8').catch(() => '');
    const received = Buffer.concat(clients.map((c) => c.received)).toString('utf8');
    const logs = log.join('');
    expect(secrets.size).toBeGreaterThan(5);
    expect(received.length).toBeGreaterThan(1000);
    for (const secret of secrets) {
      expect(received.includes(secret), `a client frame contains a secret (${secret.slice(0, 4)}…)`).toBe(false);
      expect(logs.includes(secret), 'the proxy log contains a secret').toBe(false);
      expect(auditLog.includes(secret), 'the audit log contains a secret').toBe(false);
    }
    // state and nonce: strip every auth_url (as JSON-escaped in the frames), then none may remain.
    let rest = received;
    for (const url of authUrls) rest = rest.split(JSON.stringify(url).slice(1, -1)).join('');
    expect(states.size).toBeGreaterThan(5);
    for (const value of [...states, ...nonces]) {
      expect(rest.includes(value), 'state/nonce outside auth_url').toBe(false);
      expect(logs.includes(value)).toBe(false);
      expect(auditLog.includes(value)).toBe(false);
    }
  });
});

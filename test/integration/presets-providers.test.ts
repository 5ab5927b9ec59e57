/**
 * The presets of SPEC §7 against emulations that enforce each provider's documented dialect
 * (packages/testkit/src/emulations): `provider add --preset` through the CLI's handler, a login,
 * the account's identity, refresh, and logout/revocation — and no deviation recorded.
 */
import { createServer } from 'node:net';
import {
  startGitHubEmulation,
  startGitLabEmulation,
  startGoogleEmulation,
  startMicrosoftEmulation,
  type ProviderEmulation,
} from '@credproxy/testkit';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { followToCallback, pollUntilDone, startPresetProxy, type PresetProxy } from '../support/preset-harness.js';
import { removeTempDirs } from '../support/temp.js';

const opened: Array<{ close(): Promise<void> }> = [];
const proxies: PresetProxy[] = [];
const allEmulations: ProviderEmulation[] = [];
afterAll(async () => {
  for (const o of opened.reverse()) await o.close().catch(() => undefined);
  await removeTempDirs();
});

let emulations: ProviderEmulation[] = [];
afterEach(() => {
  // Every emulation enforces its provider's dialect: a deviation fails the test that caused it.
  for (const e of emulations) expect(e.violations).toEqual([]);
  emulations = [];
});

async function track<T extends { close(): Promise<void> }>(x: T): Promise<T> {
  opened.push(x);
  return x;
}

async function emulation<T extends ProviderEmulation>(p: Promise<T>): Promise<T> {
  const e = await track(await p);
  emulations.push(e);
  allEmulations.push(e);
  return e;
}

async function presetProxy(secrets: Record<string, string> = {}): Promise<PresetProxy> {
  const p = await track(await startPresetProxy(secrets));
  proxies.push(p);
  return p;
}

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

async function loopbackLogin(p: PresetProxy, emu: ProviderEmulation, provider: string, extra: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
  const init = await p.owner.call('oauth_initiate', { provider, ...extra });
  expect(init.flow_type).toBe('pkce_redirect');
  const location = await emu.authorize(init.auth_url);
  const page = await followToCallback(location);
  expect(page.status, page.text).toBe(200);
  const done = await pollUntilDone(p.owner, init.session_id);
  expect(done.status, String(done.error)).toBe('complete');
  return done;
}

describe('github preset', () => {
  it('logs in with the device flow (form/JSON answers, errors as HTTP 200, slow_down), names the account, revokes with DELETE and Basic', async () => {
    const emu = await emulation(startGitHubEmulation({ deviceInterval: 0.05, slowDownOnce: true }));
    const p = await presetProxy({ GH_SECRET: emu.clientSecret });
    const added = await p.addProvider({ name: 'gh', preset: 'github', issuer: emu.base, clientId: emu.clientId, clientSecretEnv: 'GH_SECRET' });
    expect(added.out).toMatch(/preset github, flow device_code/);

    const init = await p.owner.call('oauth_initiate', { provider: 'gh' });
    expect(init.flow_type).toBe('device_code');
    expect(init.verification_uri).toBe(`${emu.base}/login/device`);
    // Polls get authorization_pending (as HTTP 200) first, and one slow_down with a new interval.
    await new Promise((r) => setTimeout(r, 300));
    expect((await p.owner.call('oauth_poll', { session_id: init.session_id })).status).toBe('pending');
    emu.approveDevice(init.user_code!);
    const done = await pollUntilDone(p.owner, init.session_id, 20_000);
    expect(done).toMatchObject({ status: 'complete', account: emu.user.login });

    const status = await p.owner.call('status', {});
    const account = status.accounts.find((a) => a.provider === 'gh')!;
    expect(account).toMatchObject({ account: emu.user.login, state: 'valid' });
    // An OAuth-app token does not expire: it is not reported as expiring within the hour.
    expect(account.expiry! - Date.now() / 1000).toBeGreaterThan(300 * 86400);

    const token = await p.owner.call('get_token', { provider: 'gh' });
    expect(token.access_token).toMatch(/^gho_/);
    expect(emu.isActive(token.access_token)).toBe(true);

    expect(await p.owner.call('logout', { provider: 'gh' })).toEqual({ revoked: true });
    expect(emu.isActive(token.access_token)).toBe(false);
    expect(emu.hits[`DELETE /api/v3/applications/${emu.clientId}/token`]).toBe(1);
  }, 40_000);

  it('finds the API at the root of --issuer too (an API served like api.github.com): identity and revocation', async () => {
    const emu = await emulation(startGitHubEmulation({ deviceInterval: 0.05, apiPrefix: '' }));
    const p = await presetProxy({ GH_SECRET: emu.clientSecret });
    await p.addProvider({ name: 'gh', preset: 'github', issuer: emu.base, clientId: emu.clientId, clientSecretEnv: 'GH_SECRET' });
    const init = await p.owner.call('oauth_initiate', { provider: 'gh' });
    emu.approveDevice(init.user_code!);
    expect(await pollUntilDone(p.owner, init.session_id)).toMatchObject({ status: 'complete', account: emu.user.login });
    const token = await p.owner.call('get_token', { provider: 'gh' });
    expect(await p.owner.call('logout', { provider: 'gh' })).toEqual({ revoked: true });
    expect(emu.isActive(token.access_token)).toBe(false);
    expect(emu.hits[`DELETE /applications/${emu.clientId}/token`]).toBe(1);
  });

  it('without the client secret, logout forgets locally and says the token still works at GitHub', async () => {
    const emu = await emulation(startGitHubEmulation({ deviceInterval: 0.05 }));
    const p = await presetProxy();
    await p.addProvider({ name: 'gh', preset: 'github', issuer: emu.base, clientId: emu.clientId });
    const init = await p.owner.call('oauth_initiate', { provider: 'gh' });
    emu.approveDevice(init.user_code!);
    expect((await pollUntilDone(p.owner, init.session_id)).status).toBe('complete');
    const token = await p.owner.call('get_token', { provider: 'gh' });
    const out = await p.owner.call('logout', { provider: 'gh' });
    expect(out.revoked).toBe(false);
    expect(out.reason).toMatch(/client secret/);
    expect(out.reason).toMatch(/github\.com\/settings\/applications/);
    expect(emu.isActive(token.access_token)).toBe(true);
    await expect(p.owner.call('get_token', { provider: 'gh' })).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  it('logs in with the loopback web flow (client secret in the body), and GitHub-App tokens refresh with rotation', async () => {
    const emu = await emulation(startGitHubEmulation({ expiringTokens: true, accessTokenTtl: 600 }));
    const p = await presetProxy({ GH_SECRET: emu.clientSecret });
    await p.addProvider({ name: 'ghapp', preset: 'github', issuer: emu.base, clientId: emu.clientId, clientSecretEnv: 'GH_SECRET', flow: 'pkce_redirect' });
    const done = await loopbackLogin(p, emu, 'ghapp');
    expect(done.account).toBe(emu.user.login);
    const before = await p.owner.call('get_token', { provider: 'ghapp' });
    expect(before.access_token).toMatch(/^ghu_/);
    const after = await p.owner.call('refresh_token', { provider: 'ghapp' });
    expect(after.access_token).not.toBe(before.access_token);
    expect(emu.isActive(after.access_token)).toBe(true);
    // A second refresh works only if the rotated refresh token was kept.
    const again = await p.owner.call('refresh_token', { provider: 'ghapp' });
    expect(again.access_token).not.toBe(after.access_token);
    expect((await p.owner.call('status', {})).accounts[0]).toMatchObject({ account: emu.user.login });
  });
});

describe('google preset', () => {
  it('sends access_type=offline and prompt=consent, uses the secret, accepts the scheme-less iss, refreshes without rotation and revokes (RFC 7009)', async () => {
    const emu = await emulation(startGoogleEmulation());
    const p = await presetProxy({ GOOGLE_SECRET: emu.clientSecret });
    await p.addProvider({ name: 'google', preset: 'google', issuer: emu.base, clientId: emu.clientId, clientSecretEnv: 'GOOGLE_SECRET' });
    const done = await loopbackLogin(p, emu, 'google');
    expect(done.account).toBe(emu.user.email);
    expect((await p.owner.call('status', {})).accounts[0]).toMatchObject({ provider: 'google', account: emu.user.email });

    const first = await p.owner.call('get_token', { provider: 'google' });
    const refreshed = await p.owner.call('refresh_token', { provider: 'google' });
    expect(refreshed.access_token).not.toBe(first.access_token);
    // The refresh token did not rotate and still works.
    const again = await p.owner.call('refresh_token', { provider: 'google' });
    expect(again.access_token).not.toBe(refreshed.access_token);

    expect(await p.owner.call('logout', { provider: 'google' })).toEqual({ revoked: true });
    expect(emu.isActive(again.access_token)).toBe(false);
    expect(emu.hits['POST /revoke']).toBeGreaterThanOrEqual(1);
  });

  it('a hand-configured Google provider without access_type/prompt is refused by the emulation (the dialect is enforced)', async () => {
    const emu = await track(await startGoogleEmulation());
    const p = await presetProxy({ GOOGLE_SECRET: emu.clientSecret });
    await p.addProvider({ name: 'plain', issuer: emu.base, clientId: emu.clientId, clientSecretEnv: 'GOOGLE_SECRET', scope: ['openid', 'email'] });
    const init = await p.owner.call('oauth_initiate', { provider: 'plain' });
    await expect(emu.authorize(init.auth_url)).rejects.toThrow(/access_type=offline/);
    expect(emu.violations.length).toBe(1);
  });
});

describe('microsoft preset', () => {
  it('takes the tenant into the issuer, accepts the {tenantid} template and the real tenant in the id token, rotates refresh tokens, and says there is no revocation', async () => {
    const emu = await emulation(startMicrosoftEmulation());
    const p = await presetProxy();
    await p.addProvider({ name: 'ms', preset: 'microsoft', issuer: emu.base, clientId: emu.clientId });
    const done = await loopbackLogin(p, emu, 'ms');
    expect(done.account).toBe(emu.user.email);
    expect(emu.hits['GET /organizations/v2.0/.well-known/openid-configuration'], JSON.stringify(emu.hits)).toBe(1);

    const first = await p.owner.call('get_token', { provider: 'ms' });
    expect(first.scope).toMatch(/offline_access/);
    const second = await p.owner.call('refresh_token', { provider: 'ms' });
    const third = await p.owner.call('refresh_token', { provider: 'ms' });
    expect(new Set([first.access_token, second.access_token, third.access_token]).size).toBe(3);

    const out = await p.owner.call('logout', { provider: 'ms' });
    expect(out.revoked).toBe(false);
    expect(out.reason).toMatch(/no token revocation endpoint/);
  });

  it('logs in with the device flow and a GUID tenant', async () => {
    const emu = await emulation(startMicrosoftEmulation());
    const p = await presetProxy();
    await p.addProvider({ name: 'ms-dev', preset: 'microsoft', issuer: emu.base, clientId: emu.clientId, tenant: emu.tenantId, flow: 'device_code' });
    const init = await p.owner.call('oauth_initiate', { provider: 'ms-dev' });
    expect(init.flow_type).toBe('device_code');
    emu.approveDevice(init.user_code!);
    const done = await pollUntilDone(p.owner, init.session_id);
    expect(done).toMatchObject({ status: 'complete', account: emu.user.email });
    expect(emu.hits[`POST /${emu.tenantId}/oauth2/v2.0/devicecode`]).toBe(1);
  });

  it('a provider configured by hand at the multi-tenant issuer fails discovery (the quirk is what makes it work)', async () => {
    const emu = await track(await startMicrosoftEmulation());
    const p = await presetProxy();
    await p.addProvider({ name: 'raw', issuer: `${emu.base}/organizations/v2.0`, clientId: emu.clientId, scope: ['openid', 'offline_access'] });
    await expect(p.owner.call('oauth_initiate', { provider: 'raw' })).rejects.toMatchObject({ code: 'FLOW_INITIATION_FAILED' });
  });
});

describe('gitlab preset', () => {
  it('uses the fixed callback port GitLab matches exactly, rotates refresh tokens without reusing one, revokes (RFC 7009), and logs in with the device flow', async () => {
    const port = await freePort();
    const emu = await emulation(startGitLabEmulation({ redirectUri: `http://127.0.0.1:${port}/callback` }));
    const p = await presetProxy();
    await p.addProvider({ name: 'gl', preset: 'gitlab', issuer: emu.base, clientId: emu.clientId, callbackPort: String(port) });
    const done = await loopbackLogin(p, emu, 'gl');
    expect(done.account).toBe(emu.user.email);
    const t0 = await p.owner.call('get_token', { provider: 'gl' });
    expect(t0.expiry! - Date.now() / 1000).toBeGreaterThan(7000);
    const t1 = await p.owner.call('refresh_token', { provider: 'gl' });
    const t2 = await p.owner.call('refresh_token', { provider: 'gl' });
    expect(new Set([t0.access_token, t1.access_token, t2.access_token]).size).toBe(3);
    expect(emu.isActive(t2.access_token)).toBe(true);
    expect(await p.owner.call('logout', { provider: 'gl' })).toEqual({ revoked: true });
    expect(emu.isActive(t2.access_token)).toBe(false);

    const device = await p.owner.call('oauth_initiate', { provider: 'gl', flow: 'device_code', bucket: 'ci' });
    emu.approveDevice(device.user_code!);
    expect(await pollUntilDone(p.owner, device.session_id)).toMatchObject({ status: 'complete', account: emu.user.email });
    expect(emu.hits['POST /oauth/authorize_device']).toBe(1);
  });
});

describe('gitlab: a reused refresh token ends the grant', () => {
  it('the emulation revokes the grant on reuse, and the proxy then reports needs_login instead of failing silently', async () => {
    const port = await freePort();
    const emu = await track(await startGitLabEmulation({ redirectUri: `http://127.0.0.1:${port}/callback` }));
    const p = await presetProxy();
    await p.addProvider({ name: 'gl', preset: 'gitlab', issuer: emu.base, clientId: emu.clientId, callbackPort: String(port) });
    await loopbackLogin(p, emu, 'gl');
    const firstRefresh = emu.secrets().filter((x) => !x.startsWith('dc_') && x !== emu.clientSecret);
    expect(firstRefresh).toHaveLength(1);
    await p.owner.call('refresh_token', { provider: 'gl' });
    // Someone (not credproxy) presents the rotated-away refresh token: GitLab ends the whole grant.
    const reuse = await fetch(`${emu.base}/oauth/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: firstRefresh[0]!, client_id: emu.clientId }),
    });
    expect(reuse.status).toBe(400);
    expect(emu.violations).toHaveLength(1);
    await expect(p.owner.call('refresh_token', { provider: 'gl' })).rejects.toMatchObject({ code: 'REAUTH_REQUIRED' });
    expect((await p.owner.call('status', {})).accounts[0]).toMatchObject({ provider: 'gl', state: 'needs_login', account: emu.user.email });
  });
});

describe('provider add --preset: what a user is told', () => {
  it('without --client-id says where to register, what to tick, the redirect URI, and the next command; google also needs the secret', async () => {
    const p = await presetProxy();
    await expect(p.addProvider({ name: 'gh', preset: 'github' })).rejects.toThrow(/github\.com\/settings\/applications\/new[\s\S]*http:\/\/127\.0\.0\.1\/callback[\s\S]*Enable Device Flow[\s\S]*credproxy provider add gh --preset github --client-id/);
    await expect(p.addProvider({ name: 'gl', preset: 'gitlab' })).rejects.toThrow(/user_settings\/applications[\s\S]*http:\/\/127\.0\.0\.1:48361\/callback[\s\S]*Confidential/);
    await expect(p.addProvider({ name: 'ms', preset: 'microsoft' })).rejects.toThrow(/App registrations[\s\S]*Allow public client flows/);
    await expect(p.addProvider({ name: 'g', preset: 'google' })).rejects.toThrow(/console\.cloud\.google\.com[\s\S]*Desktop app/);
    // Google without the secret: added, with a warning that names the fix (its token endpoint would refuse the login).
    expect((await p.addProvider({ name: 'g', preset: 'google', clientId: 'x' })).err).toMatch(/warning: google needs --client-secret-env VAR[\s\S]*credproxy provider add g --preset google --client-id x --client-secret-env GOOGLE_OAUTH_SECRET/);
    await expect(p.addProvider({ name: 'x', preset: 'nope', clientId: 'x' })).rejects.toThrow(/github, google, microsoft, gitlab/);
    await expect(p.addProvider({ name: 'gh', preset: 'github', clientId: 'x', flow: 'pkce_redirect' })).rejects.toThrow(/needs the client secret[\s\S]*--client-secret-env VAR, or use --flow device_code/);
    await expect(p.addProvider({ name: 'g', preset: 'google', clientId: 'x', clientSecretEnv: 'S', flow: 'device_code' })).rejects.toThrow(/not offered by google/);
  });
});

describe('byte scan', () => {
  it('no refresh token, device code or client secret in any answer the owner got or any log line', async () => {
    const { readFile } = await import('node:fs/promises');
    const path = await import('node:path');
    const secrets = allEmulations.flatMap((e) => e.secrets());
    expect(secrets.length).toBeGreaterThan(10);
    expect(proxies.reduce((n, p) => n + p.responses.length, 0)).toBeGreaterThan(30);
    for (const p of proxies) {
      const audit = await readFile(path.join(p.dir, 'data', 'audit.log'), 'utf8').catch(() => '');
      const seen = [...p.responses, ...p.log, audit].join('\n');
      for (const secret of secrets) expect(seen.includes(secret), 'a secret left the proxy').toBe(false);
    }
  });
});

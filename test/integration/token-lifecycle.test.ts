/**
 * Token lifecycle against a real authorization server with short-lived access tokens and refresh
 * rotation on: single-flight refresh inside one proxy and across two proxy processes on one data
 * dir, crash safety under kill -9, invalid_grant → needs_login, background renewal.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ProxyClient, resolvePaths, startProxy, type RunningProxy } from '@credproxy/core';
import { createScriptedUser, startTestAuthServer, type TestAuthServer } from '@credproxy/testkit';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { removeTempDirs, tempDir, waitUntil } from '../support/temp.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const children: ChildProcess[] = [];
const servers: TestAuthServer[] = [];
const proxies: RunningProxy[] = [];
const connections: ProxyClient[] = [];

afterEach(async () => {
  for (const c of connections.splice(0)) c.close();
  for (const child of children.splice(0)) child.kill('SIGKILL');
  for (const p of proxies.splice(0)) await p.stop();
});
afterAll(async () => {
  for (const s of servers) await s.close();
  await removeTempDirs();
});

interface Setup {
  as: TestAuthServer;
  dir: string;
  dataDir: string;
  configFile: string;
  tokenFile: (bucket?: string) => string;
}

async function setup(options: Parameters<typeof startTestAuthServer>[0]): Promise<Setup> {
  const as = await startTestAuthServer(options);
  servers.push(as);
  const dir = await tempDir('cpt-');
  const dataDir = path.join(dir, 'data');
  const configFile = path.join(dir, 'config.json');
  await fs.writeFile(
    configFile,
    // encryption "none": these tests read and edit the token file directly (encryption: store-encryption.test.ts).
    JSON.stringify({ encryption: 'none', providers: { acme: { issuer: as.issuer, client_id: 'paste', scopes: ['openid', 'offline_access'], flow: 'browser_redirect', redirect_uri: as.clients.paste.redirectUri } } }),
  );
  return { as, dir, dataDir, configFile, tokenFile: (bucket = 'default') => path.join(dataDir, 'tokens', 'acme', `${bucket}.json`) };
}

async function proxyIn(s: Setup, name = 'p'): Promise<RunningProxy> {
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
async function login(s: Setup, socketPath: string, bucket = 'default'): Promise<void> {
  const c = await connect(socketPath);
  const init = await c.call('oauth_initiate', { provider: 'acme', bucket });
  const user = createScriptedUser();
  const code = await user.readPastedCode(await user.authorize(init.auth_url));
  await c.call('oauth_exchange', { session_id: init.session_id, code });
  c.close();
}

/** Make the stored access token look expired, so the next get_token must refresh. */
async function expireOnDisk(file: string): Promise<{ refresh_token: string; access_token: string }> {
  const record = JSON.parse(await fs.readFile(file, 'utf8'));
  record.token.expiry = Math.floor(Date.now() / 1000) - 5;
  await fs.writeFile(file, JSON.stringify(record));
  return record.token;
}

function spawnChild(script: string, args: string[]): Promise<ChildProcess> {
  const child = spawn(process.execPath, [path.join(here, '..', 'support', script), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  child.once('exit', () => children.splice(children.indexOf(child), 1));
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('ready')) resolve(child);
    });
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    child.once('exit', (code) => reject(new Error(`${script} exited ${code}: ${err}`)));
  });
}

describe('single flight', () => {
  it('100 concurrent get_token on an expired token cause exactly one refresh grant', async () => {
    const s = await setup({ rotateRefreshToken: true });
    const first = await proxyIn(s, 'a');
    await login(s, first.socketPath);
    await first.stop();
    proxies.length = 0;
    await expireOnDisk(s.tokenFile());
    const p = await proxyIn(s, 'b');
    // 10 connections x 10 requests: within the 16-in-flight cap of each connection.
    const clients = await Promise.all(Array.from({ length: 10 }, () => connect(p.socketPath)));
    s.as.resetCounts();
    const results = await Promise.all(Array.from({ length: 100 }, (_, i) => clients[i % 10]!.call('get_token', { provider: 'acme' })));
    expect(s.as.grantCounts.refresh_token).toBe(1);
    expect(new Set(results.map((r) => r.access_token)).size).toBe(1);
    expect((await s.as.userinfo(results[0]!.access_token)).status).toBe(200);
  });

  it('two proxy processes on one data dir refresh once, and the rotated grant survives', async () => {
    const s = await setup({ rotateRefreshToken: true });
    const first = await proxyIn(s, 'a');
    await login(s, first.socketPath);
    await first.stop();
    proxies.length = 0;
    const old = await expireOnDisk(s.tokenFile());
    await Promise.all([
      spawnChild('proxy-child.mjs', [path.join(s.dir, 'x.sock'), s.dataDir, s.configFile]),
      spawnChild('proxy-child.mjs', [path.join(s.dir, 'y.sock'), s.dataDir, s.configFile]),
    ]);
    const conns = await Promise.all(Array.from({ length: 8 }, (_, i) => connect(path.join(s.dir, i % 2 ? 'x.sock' : 'y.sock'))));
    s.as.resetCounts();
    const results = await Promise.all(Array.from({ length: 40 }, (_, i) => conns[i % 8]!.call('get_token', { provider: 'acme' })));
    // A second refresh would have reused the rotated refresh token and the server would have
    // revoked the whole grant.
    expect(s.as.grantCounts.refresh_token).toBe(1);
    const tokens = new Set(results.map((r) => r.access_token));
    expect(tokens.size).toBe(1);
    const [token] = [...tokens];
    expect(token).not.toBe(old.access_token);
    expect((await s.as.userinfo(token!)).status).toBe(200);
    const stored = JSON.parse(await fs.readFile(s.tokenFile(), 'utf8'));
    expect(stored.token.refresh_token).not.toBe(old.refresh_token);
    expect(await s.as.isActive(stored.token.refresh_token)).toBe(true);
  });
});

describe('failures', () => {
  it('invalid_grant marks the account needs_login and answers REAUTH_REQUIRED naming the fix', async () => {
    const s = await setup({ rotateRefreshToken: true });
    const p = await proxyIn(s);
    await login(s, p.socketPath);
    const token = JSON.parse(await fs.readFile(s.tokenFile(), 'utf8')).token;
    await s.as.revoke(token.refresh_token, 'refresh_token');
    const c = await connect(p.socketPath);
    const err = await c.call('get_token', { provider: 'acme', min_valid_seconds: 10_000_000 }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'REAUTH_REQUIRED' });
    expect((err as Error).message).toContain('credproxy login acme');
    const status = await c.call('status', {});
    expect(status.accounts).toContainEqual(expect.objectContaining({ provider: 'acme', state: 'needs_login' }));
    // The refused refresh token is not deleted (only marked).
    expect(JSON.parse(await fs.readFile(s.tokenFile(), 'utf8')).token.refresh_token).toBe(token.refresh_token);
  });

  it('a token endpoint outage leaves the stored token untouched and a still-valid token is served', async () => {
    const s = await setup({ rotateRefreshToken: true });
    const p = await proxyIn(s);
    await login(s, p.socketPath);
    const before = await fs.readFile(s.tokenFile(), 'utf8');
    s.as.setTokenEndpointFault(() => ({ status: 503, body: 'maintenance' }));
    try {
      const c = await connect(p.socketPath);
      // Asking for more validity than the token has forces a refresh, which fails; the token
      // still works, so it is served.
      const served = await c.call('get_token', { provider: 'acme', min_valid_seconds: 10_000_000 });
      expect(served.access_token).toBe(JSON.parse(before).token.access_token);
      const forced = await c.call('refresh_token', { provider: 'acme' }).catch((e: unknown) => e);
      expect(forced).toMatchObject({ code: 'UPSTREAM_UNAVAILABLE' });
      expect(await fs.readFile(s.tokenFile(), 'utf8')).toBe(before);
    } finally {
      s.as.setTokenEndpointFault(undefined);
    }
  });
});

describe('proactive renewal', () => {
  it('renews a recently used token in the background before it expires', async () => {
    const s = await setup({ rotateRefreshToken: true, accessTokenTtl: 4 });
    const p = await proxyIn(s);
    await login(s, p.socketPath);
    const c = await connect(p.socketPath);
    const first = await c.call('get_token', { provider: 'acme', min_valid_seconds: 0 });
    s.as.resetCounts();
    // The server counts the grant before the proxy has written its answer: wait for the store.
    const readStored = async () => JSON.parse(await fs.readFile(s.tokenFile(), 'utf8'));
    await waitUntil(async () => (await readStored()).token.access_token !== first.access_token, 4_000, 50);
    expect(s.as.grantSuccesses.refresh_token).toBeGreaterThanOrEqual(1);
    const stored = await readStored();
    expect(stored.token.expiry).toBeGreaterThan(first.expiry);
  });

  it('does not renew accounts nobody used', async () => {
    const s = await setup({ rotateRefreshToken: true, accessTokenTtl: 3 });
    const p = await proxyIn(s);
    await login(s, p.socketPath);
    s.as.resetCounts();
    await new Promise((r) => setTimeout(r, 3_000));
    expect(s.as.grantCounts.refresh_token).toBe(0);
  });
});

describe('crash safety', () => {
  it('kill -9 at random instants during a refresh loop never tears the store or loses the working refresh token', async () => {
    const s = await setup({ rotateRefreshToken: false });
    const p = await proxyIn(s);
    // Two accounts, killed in two parallel lanes: 200 kills in all by default.
    const lanes = ['one', 'two'];
    for (const bucket of lanes) await login(s, p.socketPath, bucket);
    await p.stop();
    proxies.length = 0;
    const rounds = Number(process.env.CREDPROXY_KILL_ROUNDS ?? 200) / lanes.length;
    const lane = async (bucket: string): Promise<string> => {
      const original = JSON.parse(await fs.readFile(s.tokenFile(bucket), 'utf8')).token.refresh_token as string;
      const socketPath = path.join(s.dir, `${bucket}.sock`);
      for (let i = 0; i < rounds; i++) {
        const child = await spawnChild('refresh-loop-child.mjs', [s.dataDir, s.configFile, 'acme', bucket, socketPath]);
        await new Promise((r) => setTimeout(r, Math.random() * 40));
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGKILL');
        await exited;
        const record = JSON.parse(await fs.readFile(s.tokenFile(bucket), 'utf8'));
        expect(typeof record.token.access_token).toBe('string');
        expect(record.token.refresh_token).toBe(original);
      }
      return original;
    };
    const originals = await Promise.all(lanes.map(lane));
    for (const refresh of originals) expect(await s.as.isActive(refresh)).toBe(true);
    // Each round refreshed at least once before "ready"; the kill landed among later refreshes.
    expect(s.as.grantSuccesses.refresh_token).toBeGreaterThanOrEqual(rounds * lanes.length);
  }, 240_000);
});

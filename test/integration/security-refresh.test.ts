/**
 * Issue 9, refresh: (2b) a refresh token the proxy has received is never thrown away — not when
 * the token file cannot be written (EMFILE), and no stale lock is left; (3) a client without
 * allow_refresh cannot force refreshes through get_token's min_valid_seconds, and refreshes per
 * account are bounded in rate whoever asks. Real sockets, the real oidc-provider authorization
 * server with refresh-token rotation and reuse detection (reusing a consumed refresh token is
 * invalid_grant and revokes the grant).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createScriptedUser, startTestAuthServer, type TestAuthServer } from '@credproxy/testkit';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import {
  FileTokenStore,
  ProxyClient,
  resolvePaths,
  startProxy,
  type AccountKey,
  type AccountRecord,
  type ProxyOptions,
  type RunningProxy,
  type TokenStore,
} from '../../packages/core/src/index.js';
import { removeTempDirs, tempDir, waitUntil } from '../support/temp.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.join(here, '..', '..');
const servers: TestAuthServer[] = [];
const proxies: RunningProxy[] = [];
const connections: ProxyClient[] = [];
const children: ChildProcess[] = [];

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
  tokenFile: string;
}

async function setup(options: Parameters<typeof startTestAuthServer>[0]): Promise<Setup> {
  const as = await startTestAuthServer(options);
  servers.push(as);
  const dir = await tempDir('cpsr-');
  const dataDir = path.join(dir, 'data');
  const configFile = path.join(dir, 'config.json');
  await fs.writeFile(
    configFile,
    // encryption "none": these tests read and edit the token file directly (encryption: store-encryption.test.ts).
    JSON.stringify({ encryption: 'none', providers: { acme: { issuer: as.issuer, client_id: 'paste', scopes: ['openid', 'offline_access'], flow: 'browser_redirect', redirect_uri: as.clients.paste.redirectUri } } }),
  );
  return { as, dir, dataDir, configFile, tokenFile: path.join(dataDir, 'tokens', 'acme', 'default.json') };
}

async function proxyIn(s: Setup, options: Omit<ProxyOptions, 'paths'> = {}): Promise<RunningProxy> {
  const paths = resolvePaths({ env: { CREDPROXY_DATA_DIR: s.dataDir, CREDPROXY_CONFIG: s.configFile }, socketPath: path.join(s.dir, 'p.sock') });
  const p = await startProxy({ paths, ...options });
  proxies.push(p);
  return p;
}

async function connect(socketPath: string, capabilityToken?: string): Promise<ProxyClient> {
  const c = await ProxyClient.connect({ socketPath, ...(capabilityToken ? { capabilityToken } : {}) });
  connections.push(c);
  return c;
}

/** A real login through the proxy (paste flow), leaving tokens on disk. */
async function login(socketPath: string): Promise<void> {
  const c = await connect(socketPath);
  const init = await c.call('oauth_initiate', { provider: 'acme' });
  const user = createScriptedUser();
  const code = await user.readPastedCode(await user.authorize(init.auth_url));
  await c.call('oauth_exchange', { session_id: init.session_id, code });
}

const readStored = async (s: Setup): Promise<AccountRecord> => JSON.parse(await fs.readFile(s.tokenFile, 'utf8')) as AccountRecord;

/** The file store, whose writes fail with EMFILE while `failing` is set (descriptors exhausted). */
class ExhaustedDiskStore implements TokenStore {
  readonly inner: FileTokenStore;
  failing = false;
  failedPuts = 0;
  constructor(dir: string) {
    this.inner = new FileTokenStore(dir);
  }
  get(key: AccountKey): Promise<AccountRecord | undefined> {
    return this.inner.get(key);
  }
  async put(record: AccountRecord): Promise<void> {
    if (this.failing) {
      this.failedPuts += 1;
      throw Object.assign(new Error('EMFILE: too many open files, open'), { code: 'EMFILE', errno: -24, syscall: 'open' });
    }
    return this.inner.put(record);
  }
  delete(key: AccountKey): Promise<boolean> {
    return this.inner.delete(key);
  }
  list(): Promise<AccountKey[]> {
    return this.inner.list();
  }
  lock(key: AccountKey) {
    return this.inner.lock(key);
  }
}

describe('2b: a refresh token the proxy has received is never thrown away', () => {
  it('a rotated token whose write fails is served, used for the next refresh while the disk still fails, and written once it works', async () => {
    const s = await setup({ rotateRefreshToken: true });
    const store = new ExhaustedDiskStore(path.join(s.dataDir, 'tokens'));
    const p = await proxyIn(s, { tokenStore: store });
    await login(p.socketPath);
    const initial = await readStored(s);
    const c = await connect(p.socketPath);
    store.failing = true;
    s.as.resetCounts();

    // The refresh reaches the provider, which rotates the refresh token; the write fails.
    const first = await c.call('refresh_token', { provider: 'acme' });
    expect(store.failedPuts).toBeGreaterThan(0);
    expect(first.access_token).not.toBe(initial.token.access_token);
    expect((await s.as.userinfo(first.access_token)).status).toBe(200);
    expect(first).not.toHaveProperty('refresh_token');
    // The disk still has the consumed refresh token; the new one lives only in the proxy.
    expect((await readStored(s)).token.refresh_token).toBe(initial.token.refresh_token);
    expect(await s.as.isActive(initial.token.refresh_token!)).toBe(false);
    await expect(c.call('get_token', { provider: 'acme' })).resolves.toMatchObject({ access_token: first.access_token });

    // A second refresh while the disk still fails uses the NEW refresh token: no invalid_grant
    // (reusing the consumed one would have revoked the whole grant).
    const second = await c.call('refresh_token', { provider: 'acme' });
    expect(second.access_token).not.toBe(first.access_token);
    expect(s.as.grantCounts.refresh_token).toBe(2);
    expect(s.as.grantSuccesses.refresh_token).toBe(2);
    expect((await s.as.userinfo(second.access_token)).status).toBe(200);
    const status = await c.call('status', {});
    expect(status.accounts).toEqual([expect.objectContaining({ provider: 'acme', bucket: 'default', state: 'valid' })]);

    // The disk works again: the background retry writes the newest record.
    store.failing = false;
    await waitUntil(async () => (await readStored(s)).token.access_token === second.access_token, 10_000, 50);
    const stored = await readStored(s);
    // With rotation only the newest refresh token is active: the file holds it.
    expect(stored.token.refresh_token).not.toBe(initial.token.refresh_token);
    expect(await s.as.isActive(stored.token.refresh_token!)).toBe(true);
    expect(stored.needs_login).toBeUndefined();
    // No lock left behind, and the account keeps working.
    expect(await fs.readdir(path.dirname(s.tokenFile))).toEqual(['default.json']);
    const third = await c.call('refresh_token', { provider: 'acme' });
    expect((await s.as.userinfo(third.access_token)).status).toBe(200);
    expect(s.as.grantSuccesses.refresh_token).toBe(3);
  });

  it('real EMFILE: a proxy out of file descriptors (ulimit -n) still serves the rotated token, keeps it, and writes it and frees the lock once descriptors return', async () => {
    const s = await setup({ rotateRefreshToken: true });
    // Log in with an ordinary proxy, then hand the data dir to one in a child process.
    const first = await proxyIn(s);
    await login(first.socketPath);
    await first.stop();
    proxies.length = 0;
    const initial = await readStored(s);
    const socketPath = path.join(s.dir, 'child.sock');
    const child = await spawnEmfileChild(socketPath, s);
    const c = await connect(socketPath);
    await expect(c.call('get_token', { provider: 'acme' })).resolves.toMatchObject({ access_token: initial.token.access_token });
    s.as.resetCounts();

    // The child exhausts its descriptors right before the token write (after the grant's answer).
    await child.command('exhaust-on-write');
    const refreshed = await c.call('refresh_token', { provider: 'acme' });
    expect(refreshed.access_token).not.toBe(initial.token.access_token);
    expect((await s.as.userinfo(refreshed.access_token)).status).toBe(200);
    expect(await child.command('status')).toMatchObject({ exhausted: true, writeErrors: ['EMFILE'] });
    // Not on disk yet; the consumed refresh token is still the file's.
    expect((await readStored(s)).token.refresh_token).toBe(initial.token.refresh_token);
    await expect(c.call('get_token', { provider: 'acme' })).resolves.toMatchObject({ access_token: refreshed.access_token });
    // The lock was released although no descriptor was free.
    expect(await fs.readdir(path.dirname(s.tokenFile))).toEqual(['default.json']);

    await child.command('free');
    await waitUntil(async () => (await readStored(s)).token.access_token === refreshed.access_token, 10_000, 50);
    const stored = await readStored(s);
    expect(await s.as.isActive(stored.token.refresh_token!)).toBe(true);
    expect(await fs.readdir(path.dirname(s.tokenFile))).toEqual(['default.json']);
    // The next refresh uses the new refresh token.
    const again = await c.call('refresh_token', { provider: 'acme' });
    expect((await s.as.userinfo(again.access_token)).status).toBe(200);
    expect(s.as.grantSuccesses.refresh_token).toBe(2);
    expect(s.as.grantCounts.refresh_token).toBe(2);
  }, 60_000);
});

interface EmfileChild {
  command(line: string): Promise<Record<string, unknown>>;
}

/** test/support/emfile-proxy-child.ts under `ulimit -n 256`, run from the sources by vite-node. */
async function spawnEmfileChild(socketPath: string, s: Setup): Promise<EmfileChild> {
  const script = path.join(here, '..', 'support', 'emfile-proxy-child.ts');
  const viteNode = path.join(root, 'node_modules', '.bin', 'vite-node');
  const child = spawn('bash', ['-c', 'ulimit -n 256 && exec "$0" "$@"', viteNode, script, socketPath, s.dataDir, s.configFile], {
    cwd: root,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  children.push(child);
  let out = '';
  let err = '';
  const waiters: Array<(line: string) => void> = [];
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  child.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
    let nl: number;
    while ((nl = out.indexOf('\n')) >= 0) {
      const line = out.slice(0, nl);
      out = out.slice(nl + 1);
      if (line.startsWith('{')) waiters.shift()?.(line);
    }
  });
  const exited = new Promise<never>((_, reject) => child.once('exit', (code) => reject(new Error(`emfile child exited ${code}: ${err}`))));
  exited.catch(() => undefined);
  const next = (): Promise<Record<string, unknown>> =>
    Promise.race([new Promise<string>((resolve) => waiters.push(resolve)), exited]).then((line) => JSON.parse(line) as Record<string, unknown>);
  const ready = await next();
  expect(ready).toMatchObject({ ready: true });
  return {
    command(line) {
      const answer = next();
      child.stdin!.write(`${line}\n`);
      return answer;
    },
  };
}

describe('3: allow_refresh cannot be bypassed, and refreshes are rate-bounded', () => {
  async function withClient(s: Setup, p: RunningProxy, name: string, allowRefresh: boolean): Promise<ProxyClient> {
    const owner = await connect(p.socketPath);
    const added = await owner.call('client_add', { name, scopes: [{ provider: 'acme' }], allow_refresh: allowRefresh });
    return connect(p.socketPath, added.capability_token);
  }

  it('a client without allow_refresh cannot force refreshes with min_valid_seconds', async () => {
    const s = await setup({ rotateRefreshToken: true });
    const p = await proxyIn(s);
    await login(p.socketPath);
    const initial = await readStored(s);
    const box = await withClient(s, p, 'box', false);
    s.as.resetCounts();
    for (let i = 0; i < 5; i++) {
      // Answered (llxprt's client sends min_valid_seconds and must keep working), not refreshed.
      const t = await box.call('get_token', { provider: 'acme', min_valid_seconds: 31_536_000 });
      expect(t.access_token).toBe(initial.token.access_token);
    }
    await expect(box.call('refresh_token', { provider: 'acme' })).rejects.toMatchObject({ code: 'FORBIDDEN' });
    expect(s.as.grantCounts.refresh_token).toBe(0);
    expect((await readStored(s)).token.refresh_token).toBe(initial.token.refresh_token);
  });

  it('a client without allow_refresh still gets a token refreshed when it is near expiry', async () => {
    // A 2 s token is always within the default 60 s threshold.
    const s = await setup({ rotateRefreshToken: true, accessTokenTtl: 2 });
    const p = await proxyIn(s);
    await login(p.socketPath);
    const initial = await readStored(s);
    const box = await withClient(s, p, 'box', false);
    s.as.resetCounts();
    const t = await box.call('get_token', { provider: 'acme', min_valid_seconds: 31_536_000 });
    expect(t.access_token).not.toBe(initial.token.access_token);
    expect(s.as.grantSuccesses.refresh_token).toBe(1);
  });

  it('refreshes of one account are bounded in rate for clients with allow_refresh and for the owner get_token', async () => {
    const s = await setup({ rotateRefreshToken: true });
    const p = await proxyIn(s);
    await login(p.socketPath);
    const initial = await readStored(s);
    const agent = await withClient(s, p, 'agent', true);
    const owner = await connect(p.socketPath);
    s.as.resetCounts();
    const served = new Set<string>();
    for (let i = 0; i < 5; i++) {
      served.add((await agent.call('refresh_token', { provider: 'acme' })).access_token);
      served.add((await agent.call('get_token', { provider: 'acme', min_valid_seconds: 31_536_000 })).access_token);
      served.add((await owner.call('get_token', { provider: 'acme', min_valid_seconds: 31_536_000 })).access_token);
    }
    // One rotation, and everyone got the token it produced.
    expect(s.as.grantCounts.refresh_token).toBe(1);
    expect(served.size).toBe(1);
    expect(served.has(initial.token.access_token)).toBe(false);
    // The owner's explicit refresh_token is always honoured.
    const forced = await owner.call('refresh_token', { provider: 'acme' });
    expect(served.has(forced.access_token)).toBe(false);
    expect(s.as.grantCounts.refresh_token).toBe(2);
  });
});

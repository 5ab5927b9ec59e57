/**
 * Routes as a product feature (SPEC §6), in one real proxy: config `"routes"`, `client_add` with
 * `routes` and `http` (a loopback port and a Unix socket), the client's listener authenticating
 * against the registry, API-key and OAuth-account credentials (the real oidc-provider
 * authorization server: 401 → one refresh → retry, REAUTH_REQUIRED when a login is needed),
 * listeners closed by client_remove and by expiry and re-opened at restart, wrong tokens rate
 * limited, and the key scanned for in every byte the client got and every audit and log line.
 */
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { startTestAuthServer, type TestAuthServer } from '@credproxy/testkit';
import { Client, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ProxyClient,
  resolvePaths,
  setRouteInConfig,
  removeRouteFromConfig,
  startProxy,
  type LogLevel,
  type ProxyOptions,
  type RunningProxy,
} from '../../packages/core/src/index.js';
import { refreshTokenFrom } from '../support/auth-code-login.js';
import { makeTestCa, startTestUpstream, type TestCa, type TestUpstream } from '../support/https-upstream.js';
import { portOpen, removeTempDirs, tempDir, waitUntil } from '../support/temp.js';

const execFileP = promisify(execFile);
type AuditEvent = Parameters<NonNullable<ProxyOptions['onAudit']>>[0];

const API_KEY = 'sk-live-REALKEY-5f2a9c0b7e1d4a3c8b6e2f1a0d9c8b7a';

let ca: TestCa;
let upstream: TestUpstream;
let as: TestAuthServer;
let dir: string;
let configFile: string;
let proxy: RunningProxy;
let owner: ProxyClient;
const audit: AuditEvent[] = [];
const logLines: string[] = [];
/** Every byte a route client received, for the final scan. */
const received: Buffer[] = [];
const connections: ProxyClient[] = [];

const logger = {
  log(level: LogLevel, message: string, fields?: Record<string, unknown>): void {
    logLines.push(JSON.stringify({ level, message, fields }));
  },
};

async function start(): Promise<RunningProxy> {
  const paths = resolvePaths({ env: { CREDPROXY_DATA_DIR: path.join(dir, 'data'), CREDPROXY_CONFIG: configFile }, socketPath: path.join(dir, 'run', 'p.sock') });
  return startProxy({ paths, logger, onAudit: (e) => audit.push(e), upstream: { tls: { ca: ca.caCert } } });
}

async function connect(capabilityToken?: string): Promise<ProxyClient> {
  const c = await ProxyClient.connect({ socketPath: proxy.socketPath, ...(capabilityToken ? { capabilityToken } : {}) });
  connections.push(c);
  return c;
}

async function fetchRoute(url: string, init: { method?: string; headers?: Record<string, string>; body?: string } = {}) {
  const res = await request(url, { method: (init.method ?? 'GET') as 'GET', headers: init.headers ?? {}, ...(init.body !== undefined ? { body: init.body } : {}) });
  const body = Buffer.from(await res.body.arrayBuffer());
  received.push(Buffer.from(JSON.stringify(res.headers)), body);
  return { status: res.statusCode, headers: res.headers, body, text: body.toString('utf8') };
}

beforeAll(async () => {
  ca = await makeTestCa();
  as = await startTestAuthServer({ rotateRefreshToken: true });
  upstream = await startTestUpstream(ca, undefined, {
    // A resource server: the bearer token must be active at the authorization server.
    accept: async (authorization) => authorization?.startsWith('Bearer ') === true && as.isActive(authorization.slice(7)),
  });
  dir = await tempDir('cprc-');
  configFile = path.join(dir, 'config.json');
  await fs.writeFile(
    configFile,
    JSON.stringify({
      providers: { acme: { issuer: as.issuer, client_id: 'paste', scopes: ['openid', 'offline_access'], flow: 'browser_redirect', redirect_uri: as.clients.paste.redirectUri } },
      routes: {
        openai: { preset: 'openai', upstream: upstream.origin, api_key: 'openai' },
        acct: { upstream: upstream.origin, account: 'acme' },
        nobody: { upstream: upstream.origin, account: 'ghost' },
      },
    }),
  );
  proxy = await start();
  owner = await connect();
  await owner.call('set_api_key', { name: 'openai', key: API_KEY });
}, 30_000);

afterAll(async () => {
  for (const c of connections.splice(0)) c.close();
  await proxy?.stop();
  await upstream?.close();
  await as?.close();
  // A second proxy in this process (the restart test) still reads peer credentials.
  expect(logLines.filter((l) => l.includes('peer credentials unavailable'))).toEqual([]);
  // The key never left the proxy towards a client, an audit line or a log line.
  const everything = Buffer.concat([...received, Buffer.from(audit.map((a) => JSON.stringify(a)).join('\n')), Buffer.from(logLines.join('\n'))]);
  for (const form of [API_KEY, Buffer.from(API_KEY).toString('base64'), encodeURIComponent(API_KEY)]) {
    expect(everything.includes(form), `found ${form}`).toBe(false);
  }
  await removeTempDirs();
});

describe('client_add with routes and an HTTP listener', () => {
  let token: string;
  let port: number;

  it('binds 127.0.0.1:0 to a real port, answers it, and lists routes and address', async () => {
    const added = await owner.call('client_add', { name: 'agent', scopes: [], routes: ['openai'], http: '127.0.0.1:0' });
    expect(added.http).toMatch(/^127\.0\.0\.1:\d+$/);
    port = Number(added.http!.split(':')[1]);
    expect(port).toBeGreaterThan(0);
    token = added.capability_token;
    const list = await owner.call('client_list', {});
    const agent = list.clients.find((c) => c.name === 'agent');
    expect(agent).toMatchObject({ routes: ['openai'], http: added.http });
    expect(JSON.stringify(list)).not.toContain(token);
  });

  it('forwards with the real key injected; the client gets it scrubbed', async () => {
    const before = upstream.received.length;
    const res = await fetchRoute(`http://127.0.0.1:${port}/openai/v1/echo?x=1`, { headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(200);
    const seen = upstream.received.slice(before);
    expect(seen).toHaveLength(1);
    expect(seen[0]!.headers.authorization).toBe(`Bearer ${API_KEY}`);
    expect(seen[0]!.url).toBe('/v1/echo?x=1');
    expect(res.text).not.toContain(API_KEY);
    expect(res.text).toContain('*'.repeat(API_KEY.length));
    const line = audit.filter((a) => a.op === 'http').at(-1) as unknown as Record<string, unknown>;
    expect(line).toMatchObject({ event: 'op', client: 'agent', op: 'http', outcome: 'ok', route: 'openai', method: 'GET', path: '/v1/echo', status: 200 });
    expect(JSON.stringify(line)).not.toContain('x=1');
  });

  it('refuses unknown route names naming the configured ones, and routes without a listener', async () => {
    await expect(owner.call('client_add', { name: 'x1', scopes: [], routes: ['opneai'], http: '127.0.0.1:0' })).rejects.toThrow(
      /no route named opneai — the configured routes are acct, nobody, openai/,
    );
    await expect(owner.call('client_add', { name: 'x2', scopes: [], routes: ['openai'] })).rejects.toThrow(/add --http/);
    await expect(owner.call('client_add', { name: 'x3', scopes: [], routes: ['openai'], http: '0.0.0.0:0' })).rejects.toThrow(/only on loopback/);
    const list = await owner.call('client_list', {});
    expect(list.clients.map((c) => c.name)).toEqual(['agent']);
  });

  it('a route grant is not a get_token or get_api_key grant', async () => {
    const c = await connect(token);
    await expect(c.call('get_api_key', { name: 'openai' })).rejects.toMatchObject({ code: 'FORBIDDEN' });
    await owner.call('client_add', { name: 'acct-user', scopes: [], routes: ['acct'], http: '127.0.0.1:0' }).then(async (a) => {
      const c2 = await connect(a.capability_token);
      await expect(c2.call('get_token', { provider: 'acme' })).rejects.toMatchObject({ code: 'FORBIDDEN' });
      await owner.call('client_remove', { name: 'acct-user' });
    });
  });

  it("another client's token is refused on this listener", async () => {
    const other = await owner.call('client_add', { name: 'other', scopes: [], routes: ['openai'], http: '127.0.0.1:0' });
    const res = await fetchRoute(`http://127.0.0.1:${port}/openai/v1/echo`, { headers: { 'proxy-authorization': `Bearer ${other.capability_token}` } });
    expect(res.status).toBe(407);
    const own = await fetchRoute(`http://${other.http}/openai/v1/echo`, { headers: { 'proxy-authorization': `Bearer ${other.capability_token}` } });
    expect(own.status).toBe(200);
    await owner.call('client_remove', { name: 'other' });
  });

  it('picks up route changes in the config file without a restart', async () => {
    await setRouteInConfig(configFile, 'later', { preset: 'anthropic', upstream: upstream.origin, api_key: 'openai' });
    const added = await owner.call('client_add', { name: 'later-client', scopes: [], routes: ['later'], http: '127.0.0.1:0' });
    const before = upstream.received.length;
    const ok = await fetchRoute(`http://${added.http}/later/v1/echo`, { headers: { 'x-api-key': added.capability_token } });
    expect(ok.status).toBe(200);
    expect(upstream.received[before]!.headers['x-api-key']).toBe(API_KEY);
    expect(await removeRouteFromConfig(configFile, 'later')).toBe(true);
    const gone = await fetchRoute(`http://${added.http}/later/v1/echo`, { headers: { 'proxy-authorization': `Bearer ${added.capability_token}` } });
    expect(gone.status).toBe(404);
    expect(gone.headers['x-credproxy-error']).toBe('NOT_FOUND');
    await owner.call('client_remove', { name: 'later-client' });
  });

  it('a config file broken by hand: client_add names the field, requests fail closed, and it recovers', async () => {
    const good = await fs.readFile(configFile, 'utf8');
    const broken = JSON.parse(good) as { routes: Record<string, unknown> };
    broken.routes.bad = { upstream: 'http://example.com', api_key: 'openai' };
    await fs.writeFile(configFile, JSON.stringify(broken));
    await expect(owner.call('client_add', { name: 'y', scopes: [], routes: ['openai'], http: '127.0.0.1:0' })).rejects.toThrow(/routes\.bad .*plain http/);
    const closed = await fetchRoute(`http://127.0.0.1:${port}/openai/v1/echo`, { headers: { authorization: `Bearer ${token}` } });
    expect(closed.status).toBe(502);
    expect(JSON.parse(closed.text).error.message).toMatch(/config file has an error/);
    await fs.writeFile(configFile, good);
    const back = await fetchRoute(`http://127.0.0.1:${port}/openai/v1/echo`, { headers: { authorization: `Bearer ${token}` } });
    expect(back.status).toBe(200);
  });

  it('wrong tokens: 407, then 429 after 10 from one peer; the right token still passes', async () => {
    // The test before presented one wrong token from this peer (all TCP peers are 127.0.0.1).
    for (let i = 0; i < 9; i++) {
      const res = await fetchRoute(`http://127.0.0.1:${port}/openai/v1/echo`, { headers: { authorization: `Bearer ${'0'.repeat(64)}` } });
      expect(res.status).toBe(407);
      expect(res.headers['proxy-authenticate']).toBe('Basic realm="credproxy"');
    }
    const limited = await fetchRoute(`http://127.0.0.1:${port}/openai/v1/echo`, { headers: { authorization: `Bearer ${'0'.repeat(64)}` } });
    expect(limited.status).toBe(429);
    expect(limited.headers['x-credproxy-error']).toBe('RATE_LIMITED');
    const right = await fetchRoute(`http://127.0.0.1:${port}/openai/v1/echo`, { headers: { authorization: `Bearer ${token}` } });
    expect(right.status).toBe(200);
  });

  it('re-opens the listener on the same port at restart, and client_remove closes it', async () => {
    await proxy.stop();
    for (const c of connections.splice(0)) c.close();
    expect(await portOpen(port)).toBe(false);
    proxy = await start();
    owner = await connect();
    expect(await portOpen(port)).toBe(true);
    const res = await fetchRoute(`http://127.0.0.1:${port}/openai/v1/echo`, { headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(200);
    // A keep-alive connection is open: removal must cut it too.
    const keep = new Client(`http://127.0.0.1:${port}`);
    const first = await keep.request({ path: '/openai/v1/echo', method: 'GET', headers: { authorization: `Bearer ${token}` } });
    await first.body.dump();
    await owner.call('client_remove', { name: 'agent' });
    expect(await portOpen(port)).toBe(false);
    await expect(keep.request({ path: '/openai/v1/echo', method: 'GET', headers: { authorization: `Bearer ${token}` } })).rejects.toThrow();
    await keep.close().catch(() => undefined);
  }, 20_000);
});

describe('a Unix-socket HTTP listener', () => {
  it('is 0600 in a 0700 directory, serves the client, and closes at expiry', async () => {
    const sockDir = path.join(dir, 'box');
    const sock = path.join(sockDir, 'http.sock');
    const added = await owner.call('client_add', { name: 'boxed', scopes: [], routes: ['openai'], http: sock, ttl_seconds: 2 });
    expect(added.http).toBe(sock);
    expect((await fs.stat(sock)).mode & 0o777).toBe(0o600);
    expect((await fs.stat(sockDir)).mode & 0o777).toBe(0o700);
    const client = new Client('http://localhost', { socketPath: sock });
    const res = await client.request({ path: '/openai/v1/echo', method: 'GET', headers: { authorization: `Bearer ${added.capability_token}` } });
    const body = Buffer.from(await res.body.arrayBuffer());
    received.push(body);
    expect(res.statusCode).toBe(200);
    await client.close();
    await waitUntil(async () => !(await fs.stat(sock).then(() => true, () => false)), 5000);
  }, 10_000);

  it('keys wrong-token limits by peer pid: this process is limited, another process is not', async () => {
    const sock = path.join(dir, 'box2', 'http.sock');
    const added = await owner.call('client_add', { name: 'boxed2', scopes: [], routes: ['openai'], http: sock });
    const client = new Client('http://localhost', { socketPath: sock });
    const ask = async (token: string) => {
      const res = await client.request({ path: '/openai/v1/echo', method: 'GET', headers: { authorization: `Bearer ${token}` } });
      received.push(Buffer.from(await res.body.arrayBuffer()));
      return res.statusCode;
    };
    for (let i = 0; i < 10; i++) expect(await ask('1'.repeat(64))).toBe(407);
    expect(await ask('1'.repeat(64))).toBe(429);
    expect(await ask(added.capability_token)).toBe(200);
    // curl is another process: its wrong token is judged on its own (407, not 429).
    const curl = await execFileP('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--unix-socket', sock, '-H', `authorization: Bearer ${'1'.repeat(64)}`, 'http://localhost/openai/v1/echo']).catch(
      (e: { stdout?: string }) => ({ stdout: e.stdout ?? '' }),
    );
    expect(curl.stdout).toBe('407');
    await client.close();
    await owner.call('client_remove', { name: 'boxed2' });
  });

  it('survives garbage on the listener and keeps serving', async () => {
    const added = await owner.call('client_add', { name: 'fuzzed', scopes: [], routes: ['openai'], http: '127.0.0.1:0' });
    const [host, portText] = added.http!.split(':');
    const payloads = [
      'GET //[ HTTP/1.1\r\nHost: x\r\n\r\n',
      'CONNECT 127.0.0.1:1 HTTP/1.1\r\n\r\n',
      'GET http://user:pass@127.0.0.1/openai/ HTTP/1.1\r\nHost: x\r\n\r\n',
      'GET /%zz/x HTTP/1.1\r\nHost: x\r\n\r\n',
      `GET /openai/v1/echo HTTP/1.1\r\nHost: x\r\nProxy-Authorization: Basic ${'A'.repeat(9000)}\r\n\r\n`,
      'POST /openai/v1/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n',
      '\x00\x01\x02 not http at all\r\n\r\n',
      `GET /${'a'.repeat(70_000)} HTTP/1.1\r\nHost: x\r\n\r\n`,
    ];
    for (const p of payloads) {
      await new Promise<void>((resolve) => {
        const s = net.connect(Number(portText), host!);
        s.on('error', () => resolve());
        s.on('data', (d) => received.push(d));
        s.on('close', () => resolve());
        s.write(p);
        setTimeout(() => s.destroy(), 300);
      });
    }
    const ok = await fetchRoute(`http://${added.http}/openai/v1/echo`, { headers: { authorization: `Bearer ${added.capability_token}` } });
    expect(ok.status).toBe(200);
    await owner.call('client_remove', { name: 'fuzzed' });
  });

  it('refuses a socket directory others can write', async () => {
    const open = path.join(dir, 'open');
    await fs.mkdir(open, { mode: 0o777 });
    await fs.chmod(open, 0o777);
    await expect(owner.call('client_add', { name: 'loose', scopes: [], routes: ['openai'], http: path.join(open, 's.sock') })).rejects.toThrow(/chmod 700/);
    expect((await owner.call('client_list', {})).clients.map((c) => c.name)).not.toContain('loose');
  });
});

describe('OAuth-account routes', () => {
  it('a 401 from upstream → one refresh at the authorization server → one retry with the new token', async () => {
    // A real refresh token from the authorization server, injected with an access token
    // upstream does not know (as `credproxy login --with-token` imports one).
    const refreshToken = await refreshTokenFrom(as);
    await owner.call('save_token', { provider: 'acme', token: { access_token: 'stale-access-token', refresh_token: refreshToken, expiry: Math.floor(Date.now() / 1000) + 3600 } });

    const added = await owner.call('client_add', { name: 'oauth-agent', scopes: [], routes: ['acct', 'nobody'], http: '127.0.0.1:0' });
    as.resetCounts();
    const before = upstream.received.length;
    const res = await fetchRoute(`http://${added.http}/acct/resource`, { headers: { authorization: `Bearer ${added.capability_token}` } });
    expect(res.status).toBe(200);
    const seen = upstream.received.slice(before).map((r) => r.headers.authorization);
    expect(seen).toHaveLength(2);
    expect(seen[0]).toBe('Bearer stale-access-token');
    expect(seen[1]).not.toBe('Bearer stale-access-token');
    expect(as.grantCounts.refresh_token).toBe(1);
    // The fresh token was scrubbed from the echo.
    expect(res.text).not.toContain(String(seen[1]).slice(7));

    // An account whose refresh token the provider refuses needs a login: 401 REAUTH_REQUIRED.
    await owner.call('save_token', { provider: 'acme', token: { access_token: 'stale-again', refresh_token: 'not-a-refresh-token', expiry: Math.floor(Date.now() / 1000) + 3600 } });
    const reauth = await fetchRoute(`http://${added.http}/acct/resource`, { headers: { authorization: `Bearer ${added.capability_token}` } });
    expect(reauth.status).toBe(401);
    expect(reauth.headers['x-credproxy-error']).toBe('REAUTH_REQUIRED');
    expect(JSON.parse(reauth.text).error.message).toMatch(/credproxy login acme/);
    // And an account never logged in: the same, and no login is started.
    const sessions = as.grantCounts.authorization_code;
    const never = await fetchRoute(`http://${added.http}/nobody/resource`, { headers: { authorization: `Bearer ${added.capability_token}` } });
    expect(never.status).toBe(401);
    expect(never.headers['x-credproxy-error']).toBe('REAUTH_REQUIRED');
    expect(JSON.parse(never.text).error.message).toMatch(/credproxy login ghost/);
    expect(as.grantCounts.authorization_code).toBe(sessions);
    await owner.call('client_remove', { name: 'oauth-agent' });
  }, 30_000);
});

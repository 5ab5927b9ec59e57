/**
 * Routes (SPEC §6) end to end in one process: a real HTTPS upstream with a throwaway CA, the
 * route handler on a node:http server listening on a Unix socket and on 127.0.0.1, driven by
 * undici, raw sockets, curl and the official openai SDK. Every byte a client receives and every
 * audit and log line is scanned for the injected secrets in all their encodings.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import dns from 'node:dns';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import OpenAI from 'openai';
import { Agent, Client, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode, ProxyError } from '../../packages/core/src/protocol/errors.js';
import {
  createRouteHandler,
  createRouteServer,
  mountRouteHandler,
  type RouteAuditRecord,
  type RouteHandlerDeps,
} from '../../packages/core/src/routes/forward.js';
import { tokensEqual } from '../../packages/core/src/routes/request-auth.js';
import { resolveRoute, type ResolvedRoute } from '../../packages/core/src/routes/route-config.js';
import { UpstreamPool, type LookupFunction } from '../../packages/core/src/routes/upstream.js';
import { streamLogger } from '../../packages/core/src/util/logger.js';
import { makeTestCa, startTestUpstream, type TestCa, type TestUpstream } from '../support/https-upstream.js';
import { dechunk } from '../support/http-bytes.mjs';
import { secretForms } from '../support/secret-forms.js';

const run = promisify(execFile);

// Secrets with '+', '/' and '=' so that base64, url-safe base64 and percent-encoding all differ.
const API_KEY = `sk-ant-${randomBytes(24).toString('base64')}+/=k`;
const GIT_TOKEN = `ghs_${randomBytes(16).toString('hex')}`;
const STALE_TOKEN = `stale-access-token-${randomBytes(12).toString('hex')}`;
const FRESH_TOKEN = `fresh-access-token-${randomBytes(12).toString('hex')}`;
const SECRETS = [API_KEY, GIT_TOKEN, STALE_TOKEN, FRESH_TOKEN];

const FORBIDDEN_FORMS = SECRETS.flatMap((s) => secretForms(s).map((form) => ({ secret: s, form })));

function expectNoSecret(what: string, data: string | Buffer, also: string[] = []): void {
  const text = typeof data === 'string' ? data : data.toString('latin1');
  for (const { form } of FORBIDDEN_FORMS) {
    if (text.includes(form)) throw new Error(`${what} carries a secret form ${JSON.stringify(form)}`);
  }
  for (const extra of also) {
    if (text.includes(extra)) throw new Error(`${what} carries ${JSON.stringify(extra.slice(0, 12))}…`);
  }
}

interface RawResponse {
  raw: Buffer;
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

/** One request on a fresh connection, every byte of the answer kept. */
function rawRequest(target: { socketPath: string } | { port: number }, head: string, body?: Buffer): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const sock = 'socketPath' in target ? net.connect(target.socketPath) : net.connect(target.port, '127.0.0.1');
    const chunks: Buffer[] = [];
    sock.on('data', (c: Buffer) => chunks.push(c));
    sock.on('error', reject);
    sock.on('end', () => {
      const raw = Buffer.concat(chunks);
      const split = raw.indexOf('\r\n\r\n');
      const headText = raw.subarray(0, split).toString('latin1');
      const [statusLine, ...lines] = headText.split('\r\n');
      const headers: Record<string, string> = {};
      for (const line of lines) {
        const colon = line.indexOf(':');
        const name = line.slice(0, colon).toLowerCase();
        headers[name] = headers[name] === undefined ? line.slice(colon + 1).trim() : `${headers[name]}, ${line.slice(colon + 1).trim()}`;
      }
      let payload: Buffer = raw.subarray(split + 4);
      if (/chunked/i.test(headers['transfer-encoding'] ?? '')) payload = dechunk(payload);
      resolve({ raw, status: Number(statusLine!.split(' ')[1]), headers, body: payload });
    });
    sock.write(head.replace(/\n/g, '\r\n') + '\r\n');
    if (body) sock.write(body);
  });
}

interface RouteProxy {
  token: string;
  socketPath: string;
  port: number;
  base: string;
  audit: RouteAuditRecord[];
  logs: string[];
  refreshCalls: number;
  accessToken: string;
  failures: number;
  unix: Agent;
  close(): Promise<void>;
}

let ca: TestCa;
let upstream: TestUpstream;
let pool: UpstreamPool;
const proxies: RouteProxy[] = [];
const dirs: string[] = [];

/** 'rebind.test' resolves to 127.0.0.1, as an attacker's DNS would answer. */
const resolver: LookupFunction = (hostname, options, callback) => {
  if (hostname === 'rebind.test') return (callback as (e: null, a: dns.LookupAddress[]) => void)(null, [{ address: '127.0.0.1', family: 4 }]);
  dns.lookup(hostname, options, callback as never);
};

function testRoutes(port: number): Map<string, ResolvedRoute> {
  const up = `https://127.0.0.1:${port}`;
  return new Map(
    (
      [
        ['keyed', { upstream: up, api_key: 'anthropic', header: 'x-api-key', format: '{}' }],
        ['openai', { preset: 'openai', upstream: up, api_key: 'openai' }],
        ['acct', { upstream: up, account: 'example:work' }],
        ['git', { preset: 'github-git', upstream: up, api_key: 'git' }],
        ['named', { upstream: `https://localhost:${port}`, api_key: 'anthropic' }],
        ['rebind', { upstream: `https://rebind.test:${port}`, api_key: 'anthropic' }],
      ] as const
    ).map(([name, raw]) => [name, resolveRoute(name, raw)]),
  );
}

async function startRouteProxy(overrides: Partial<RouteHandlerDeps> & { maxFailures?: number } = {}): Promise<RouteProxy> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'cp-routes-'));
  dirs.push(dir);
  const token = randomBytes(32).toString('hex');
  const logs: string[] = [];
  const state: RouteProxy = {
    token,
    socketPath: path.join(dir, 'http.sock'),
    port: 0,
    base: '',
    audit: [],
    logs,
    refreshCalls: 0,
    accessToken: STALE_TOKEN,
    failures: 0,
    unix: new Agent({ connect: { socketPath: path.join(dir, 'http.sock') } }),
    close: async () => undefined,
  };
  const routes = testRoutes(upstream.port);
  const keys = new Map([
    ['anthropic', API_KEY],
    ['openai', API_KEY],
    ['git', GIT_TOKEN],
  ]);
  const deps: RouteHandlerDeps = {
    client: 'sandbox',
    authenticate: (t) => tokensEqual(t, token),
    tooManyFailures: () => (state.failures >= (overrides.maxFailures ?? 1000) ? 42 : 0),
    recordFailure: () => void state.failures++,
    routes: () => routes,
    routeExists: (name) => routes.has(name) || name === 'other',
    credential: async (route) => {
      if (route.credential.kind === 'api_key') return { value: keys.get(route.credential.name)! };
      return { value: state.accessToken };
    },
    refreshCredential: async () => {
      state.refreshCalls++;
      state.accessToken = FRESH_TOKEN;
      return { value: FRESH_TOKEN };
    },
    upstream: pool,
    audit: (record) => state.audit.push(record),
    logger: streamLogger({ write: (line: string) => logs.push(line) }, 'debug'),
    ...overrides,
  };
  // The handler of the Unix socket is mounted the way a host would mount it; the TCP one by hand.
  const unixServer = createRouteServer(createRouteHandler({ listenerUrl: 'http://localhost', ...deps }));
  const tcpServer = http.createServer();
  await new Promise<void>((resolve) => unixServer.listen(state.socketPath, resolve));
  await new Promise<void>((resolve) => tcpServer.listen(0, '127.0.0.1', resolve));
  state.port = (tcpServer.address() as net.AddressInfo).port;
  state.base = `http://127.0.0.1:${state.port}`;
  mountRouteHandler(tcpServer, createRouteHandler({ listenerUrl: state.base, ...deps }));
  state.close = async () => {
    await state.unix.close();
    for (const s of [unixServer, tcpServer]) {
      s.closeAllConnections();
      await new Promise<void>((resolve) => s.close(() => resolve()));
    }
  };
  proxies.push(state);
  return state;
}

beforeAll(async () => {
  ca = await makeTestCa();
  upstream = await startTestUpstream(ca, FRESH_TOKEN);
  pool = new UpstreamPool({ tls: { ca: ca.caCert }, resolve: resolver, headersTimeoutMs: 2000 });
});

afterAll(async () => {
  for (const p of proxies) await p.close();
  await pool.close();
  await upstream.close();
  for (const d of dirs) await fs.rm(d, { recursive: true, force: true });
  // The audit and the log of every proxy in this file: no secret, no capability token.
  for (const p of proxies) {
    expectNoSecret('audit', JSON.stringify(p.audit), [p.token]);
    expectNoSecret('log', p.logs.join(''), [p.token]);
  }
});

function lastReceived(): (typeof upstream.received)[number] {
  return upstream.received.at(-1)!;
}

describe('path form', () => {
  let proxy: RouteProxy;
  beforeAll(async () => {
    proxy = await startRouteProxy();
  });

  it('injects the key on the Unix socket listener, with the token in the route header, and scrubs every echo', async () => {
    const res = await request('http://localhost/keyed/echo?q=secret-query', {
      dispatcher: proxy.unix,
      method: 'POST',
      headers: {
        'x-api-key': proxy.token,
        'content-type': 'application/json',
        'proxy-foo': 'bar',
        'x-keep-me': 'yes',
      },
      body: '{"hello": "world"}',
    });
    const body = await res.body.text();
    expect(res.statusCode).toBe(200);
    // Upstream got the real key, the upstream host, and none of the dropped headers.
    const got = lastReceived();
    expect(got.headers['x-api-key']).toBe(API_KEY);
    expect(got.headers.host).toBe(`127.0.0.1:${upstream.port}`);
    expect(got.url).toBe('/echo?q=secret-query');
    expect(got.headers['x-keep-me']).toBe('yes');
    for (const dropped of ['proxy-foo', 'authorization', 'proxy-authorization']) expect(got.headers[dropped], dropped).toBeUndefined();
    expect(JSON.stringify(got.headers)).not.toContain(proxy.token);
    // The client got the echo, scrubbed, headers included; upstream cannot forge the proxy's marker.
    const echoed = JSON.parse(body) as { headers: Record<string, string>; body: string };
    expect(echoed.body).toBe('{"hello": "world"}');
    expect(echoed.headers['x-api-key']).toBe('*'.repeat(API_KEY.length));
    expect(res.headers['x-echo-auth']).toBe('*'.repeat(API_KEY.length));
    expect(res.headers['x-credproxy-error']).toBeUndefined();
    expectNoSecret('response', JSON.stringify(res.headers) + body);
    const audit = proxy.audit.at(-1)!;
    expect(audit).toMatchObject({ client: 'sandbox', route: 'keyed', form: 'path', method: 'POST', path: '/echo', status: 200, bytes_in: 18 });
    expect(audit.bytes_out).toBe(Buffer.byteLength(body));
    expect(audit.duration_ms).toBeGreaterThanOrEqual(0);
  });

  it('drops hop-by-hop headers, those the Connection header lists, Proxy-* and authorization on the way out', async () => {
    const res = await rawRequest(
      { socketPath: proxy.socketPath },
      `POST /keyed/echo HTTP/1.1\nHost: proxy\nx-api-key: ${proxy.token}\nAuthorization: Bearer something-else\n` +
        `Proxy-Authorization: Bearer ${proxy.token}\nProxy-Connection: keep-alive\nConnection: close, x-drop-me\nx-drop-me: 1\n` +
        `Keep-Alive: timeout=5\nTE: trailers\nTrailer: x-t\nUpgrade: websocket\nx-keep-me: yes\nTransfer-Encoding: chunked\n`,
      Buffer.from('5\r\nhello\r\n0\r\n\r\n'),
    );
    expect(res.status).toBe(200);
    const got = lastReceived();
    for (const dropped of ['x-drop-me', 'te', 'trailer', 'upgrade', 'keep-alive', 'proxy-connection', 'proxy-authorization', 'authorization']) {
      expect(got.headers[dropped], dropped).toBeUndefined();
    }
    expect(got.headers['x-keep-me']).toBe('yes');
    expect(got.headers['x-api-key']).toBe(API_KEY);
    expect(got.bodyBytes).toBe(5);
    expectNoSecret('raw response', res.raw);
  });

  it.each([
    ['plain', ''],
    ['gzip', '&enc=gzip'],
    ['br', '&enc=br'],
    ['deflate', '&enc=deflate'],
    ['base64', '&form=base64'],
    ['base64url', '&form=base64url'],
    ['base64 at offset 1', '&form=base64-shift1'],
    ['base64 at offset 2, gzip', '&form=base64-shift2&enc=gzip'],
    ['percent-encoded', '&form=percent'],
    ['percent-encoded, br', '&form=percent&enc=br'],
  ])('scrubs a %s echo in every byte the client receives (raw socket, TCP and Unix)', async (_name, query) => {
    for (const target of [{ socketPath: proxy.socketPath }, { port: proxy.port }]) {
      for (const [route, auth] of [
        ['keyed', `x-api-key: ${proxy.token}`],
        ['acct', `Authorization: Bearer ${proxy.token}`],
        ['git', `Authorization: Basic ${Buffer.from(`x-access-token:${proxy.token}`).toString('base64')}`],
      ] as const) {
        const res = await rawRequest(
          target,
          `GET /${route}/echo?x=1${query} HTTP/1.1\nHost: proxy\n${auth}\nAccept-Encoding: gzip, deflate, br\nConnection: close\n`,
        );
        expect(res.status, `${route} ${query}`).toBe(200);
        expect(res.headers['content-encoding']).toBeUndefined();
        expectNoSecret(`raw response ${route} ${query}`, res.raw);
        expectNoSecret(`decoded body ${route} ${query}`, res.body);
        // The echo did carry the injected value: the scrubber had work to do.
        expect(res.body.toString('latin1')).toMatch(/\*{8,}|KioqKioq|%2A%2A|\*\*/);
      }
    }
    expect(upstream.received.at(-1)!.headers.authorization).toBe(`Basic ${Buffer.from(`x-access-token:${GIT_TOKEN}`).toString('base64')}`);
  });

  it('answers 502 for a body in a coding it cannot decode, and keeps serving', async () => {
    // The upstream body is dropped unread: that must not become an unhandled stream error.
    for (let i = 0; i < 3; i++) {
      const res = await request(`${proxy.base}/keyed/echo?enc=zstd`, { headers: { 'x-api-key': proxy.token } });
      const text = await res.body.text();
      expect(res.statusCode).toBe(502);
      expect(res.headers['x-credproxy-error']).toBe(ErrorCode.UPSTREAM_UNAVAILABLE);
      expect(text).toContain('content-encoding zstd');
      expectNoSecret('undecodable answer', text);
    }
    await new Promise((r) => setTimeout(r, 50));
    const after = await request(`${proxy.base}/keyed/echo`, { headers: { 'x-api-key': proxy.token } });
    expect(after.statusCode).toBe(200);
    await after.body.dump();
  });

  it('keeps Content-Length for an uncompressed body (scrubbing keeps the length) and drops it for a decoded one', async () => {
    const plain = await request(`${proxy.base}/keyed/echo`, { headers: { 'x-api-key': proxy.token } });
    const text = await plain.body.text();
    expect(plain.headers['content-length']).toBe(String(Buffer.byteLength(text)));
    const gz = await request(`${proxy.base}/keyed/echo?enc=gzip`, { headers: { 'x-api-key': proxy.token, 'accept-encoding': 'gzip' } });
    expect(gz.headers['content-encoding']).toBeUndefined();
    expect(gz.headers['content-length']).toBeUndefined();
    expectNoSecret('gzip echo', await gz.body.text());
    // Upstream is asked only for codings the proxy can decode.
    const z = await request(`${proxy.base}/keyed/echo`, { headers: { 'x-api-key': proxy.token, 'accept-encoding': 'zstd, gzip' } });
    await z.body.dump();
    expect(lastReceived().headers['accept-encoding']).toBe('gzip');
  });

  it('delivers an SSE event as soon as upstream sends it', async () => {
    const res = await request(`${proxy.base}/keyed/sse`, { headers: { 'x-api-key': proxy.token } });
    expect(res.headers['content-type']).toBe('text/event-stream');
    const arrivals: Array<{ at: number; text: string }> = [];
    for await (const chunk of res.body) arrivals.push({ at: Date.now(), text: (chunk as Buffer).toString() });
    const all = arrivals.map((a) => a.text).join('');
    expect(all).toBe('event: first\ndata: {"n": 1}\n\nevent: second\ndata: {"n": 2}\n\n');
    const firstEventAt = arrivals.find((a) => a.text.includes('first'))!.at;
    const [, secondWrite] = upstream.sseWrites.slice(-2);
    // The first event reached the client before upstream even wrote the second one.
    expect(firstEventAt).toBeLessThan(secondWrite!);
  });

  it('passes redirects through and rewrites a Location on the route origin to the route path', async () => {
    const abs = await request(`${proxy.base}/keyed/redirect?to=abs`, { headers: { 'x-api-key': proxy.token } });
    expect(abs.statusCode).toBe(302);
    expect(abs.headers.location).toBe('/keyed/target?x=1');
    const rel = await request(`${proxy.base}/keyed/redirect?to=rel`, { headers: { 'x-api-key': proxy.token } });
    expect(rel.headers.location).toBe('/keyed/target/rel');
    const away = await request(`${proxy.base}/keyed/redirect?to=away`, { headers: { 'x-api-key': proxy.token } });
    expect(away.headers.location).toBe('https://elsewhere.example/x');
    await Promise.all([abs.body.dump(), rel.body.dump(), away.body.dump()]);
    // Not followed: upstream saw no request for /target.
    expect(upstream.received.some((r) => r.url.startsWith('/target'))).toBe(false);
  });

  it('answers 404 for an unknown route and 403 for a route not granted to this client', async () => {
    const none = await request(`${proxy.base}/nope/x`, { headers: { authorization: `Bearer ${proxy.token}` } });
    expect(none.statusCode).toBe(404);
    expect(none.headers['x-credproxy-error']).toBe('NOT_FOUND');
    expect(((await none.body.json()) as { error: { code: string; message: string } }).error).toMatchObject({ code: 'NOT_FOUND', message: expect.stringMatching(/no route "nope"/) });
    const other = await request(`${proxy.base}/other/x`, { headers: { 'x-api-key': proxy.token } });
    expect(other.statusCode).toBe(403);
    expect(other.headers['x-credproxy-error']).toBe('FORBIDDEN');
    expect(await other.body.text()).toMatch(/not granted route other/);
  });

  it('refuses a name resolving into the host network (DNS rebinding) with 502 naming the rule', async () => {
    const before = upstream.received.length;
    const res = await request(`${proxy.base}/rebind/echo`, { headers: { authorization: `Bearer ${proxy.token}` } });
    expect(res.statusCode).toBe(502);
    expect(res.headers['x-credproxy-error']).toBe('UPSTREAM_UNAVAILABLE');
    const body = (await res.body.json()) as { error: { code: string; message: string } };
    expect(body.error.message).toMatch(/rebind\.test resolved to 127\.0\.0\.1, a loopback address.*no DNS rebinding/);
    expect(upstream.received.length).toBe(before);
    // The same upstream by its loopback name is fine: localhost may reach loopback.
    const named = await request(`${proxy.base}/named/echo`, { headers: { authorization: `Bearer ${proxy.token}` } });
    expect(named.statusCode).toBe(200);
    await named.body.dump();
  });

  it('answers 504 when upstream sends no headers in time, 502 when it cannot be reached', async () => {
    const res = await request(`${proxy.base}/keyed/slow`, { headers: { 'x-api-key': proxy.token } });
    expect(res.statusCode).toBe(504);
    expect(res.headers['x-credproxy-error']).toBe('UPSTREAM_UNAVAILABLE');
    expect(await res.body.text()).toMatch(/no response headers within/);
    const closedPort = await new Promise<number>((resolve) => {
      const s = net.createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as net.AddressInfo).port;
        s.close(() => resolve(p));
      });
    });
    const gone = resolveRoute('gone', { upstream: `https://127.0.0.1:${closedPort}`, api_key: 'anthropic' });
    const p2 = await startRouteProxy({ routes: () => new Map([['gone', gone]]) });
    const res2 = await request(`${p2.base}/gone/x`, { headers: { authorization: `Bearer ${p2.token}` } });
    expect(res2.statusCode).toBe(502);
    expect(await res2.body.text()).toMatch(/cannot reach https:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\)/);
  });
});

describe('authentication', () => {
  it('answers 407 with Proxy-Authenticate without a token or with a wrong one, then 429 after too many', async () => {
    const proxy = await startRouteProxy({ maxFailures: 3 });
    const none = await request(`${proxy.base}/keyed/echo`);
    expect(none.statusCode).toBe(407);
    expect(none.headers['proxy-authenticate']).toBe('Basic realm="credproxy"');
    expect(none.headers['x-credproxy-error']).toBe('UNAUTHORIZED');
    await none.body.dump();
    expect(proxy.failures).toBe(0);
    for (let i = 0; i < 3; i++) {
      const wrong = await request(`${proxy.base}/keyed/echo`, { headers: { 'x-api-key': 'f'.repeat(64) } });
      expect(wrong.statusCode).toBe(407);
      await wrong.body.dump();
    }
    const limited = await request(`${proxy.base}/keyed/echo`, { headers: { 'x-api-key': 'f'.repeat(64) } });
    expect(limited.statusCode).toBe(429);
    expect(limited.headers['retry-after']).toBe('42');
    expect(limited.headers['x-credproxy-error']).toBe('RATE_LIMITED');
    await limited.body.dump();
    expect(proxy.audit.map((a) => a.error)).toEqual(['UNAUTHORIZED', 'UNAUTHORIZED', 'UNAUTHORIZED', 'UNAUTHORIZED', 'RATE_LIMITED']);
  });

  it('takes the token as the proxy password, as Proxy-Authorization Bearer, and as Authorization Bearer', async () => {
    const proxy = await startRouteProxy();
    for (const headers of [
      { 'proxy-authorization': `Basic ${Buffer.from(`x:${proxy.token}`).toString('base64')}` },
      { 'proxy-authorization': `Bearer ${proxy.token}` },
      { authorization: `Bearer ${proxy.token}` },
      { 'x-api-key': proxy.token },
    ]) {
      const res = await request(`${proxy.base}/keyed/echo`, { headers });
      expect(res.statusCode, JSON.stringify(headers)).toBe(200);
      await res.body.dump();
      expect(lastReceived().headers['x-api-key']).toBe(API_KEY);
      expect(JSON.stringify(lastReceived().headers)).not.toContain(proxy.token);
    }
  });
});

describe('proxy form and CONNECT', () => {
  let proxy: RouteProxy;
  beforeAll(async () => {
    proxy = await startRouteProxy();
  });

  it('sends an absolute-form http:// request for a route host upstream over https', async () => {
    const client = new Client(proxy.base);
    const res = await client.request({
      path: `http://localhost:${upstream.port}/echo?y=2`,
      method: 'GET',
      headers: { 'proxy-authorization': `Basic ${Buffer.from(`x:${proxy.token}`).toString('base64')}`, host: `localhost:${upstream.port}` },
    });
    const body = await res.body.text();
    expect(res.statusCode).toBe(200);
    expect(lastReceived()).toMatchObject({ url: '/echo?y=2' });
    expect(lastReceived().headers.authorization).toBe(`Bearer ${API_KEY}`);
    expect(lastReceived().headers['proxy-authorization']).toBeUndefined();
    expectNoSecret('proxy-form response', JSON.stringify(res.headers) + body);
    expect(proxy.audit.at(-1)).toMatchObject({ route: 'named', form: 'proxy', path: '/echo', status: 200 });
    // Proxy form: a redirect is passed through untouched (the client resolves it itself).
    const moved = await client.request({
      path: `http://localhost:${upstream.port}/redirect?to=abs`,
      method: 'GET',
      headers: { 'proxy-authorization': `Bearer ${proxy.token}`, host: `localhost:${upstream.port}` },
    });
    expect(moved.statusCode).toBe(302);
    expect(moved.headers.location).toBe(`https://127.0.0.1:${upstream.port}/target?x=1`);
    await moved.body.dump();
    // An HTTP_PROXY client sends a request for the listener itself in absolute form too.
    const self = await client.request({
      path: `${proxy.base}/keyed/echo?z=3`,
      method: 'GET',
      headers: { 'proxy-authorization': `Bearer ${proxy.token}`, host: `127.0.0.1:${proxy.port}` },
    });
    expect(self.statusCode).toBe(200);
    expectNoSecret('self response', await self.body.text());
    expect(lastReceived()).toMatchObject({ url: '/echo?z=3' });
    expect(lastReceived().headers['x-api-key']).toBe(API_KEY);
    // A host none of the client's routes names: 403.
    const away = await client.request({
      path: 'http://example.org/x',
      method: 'GET',
      headers: { 'proxy-authorization': `Bearer ${proxy.token}`, host: 'example.org' },
    });
    expect(away.statusCode).toBe(403);
    expect(away.headers['x-credproxy-error']).toBe('FORBIDDEN');
    expect(await away.body.text()).toMatch(/example\.org is not among the routes of client sandbox/);
    await client.close();
  });

  it('refuses CONNECT with 403 naming both forms', async () => {
    const res = await rawRequest({ port: proxy.port }, `CONNECT api.github.com:443 HTTP/1.1\nHost: api.github.com:443\nProxy-Authorization: Bearer ${proxy.token}\n`);
    expect(res.status).toBe(403);
    expect(res.headers['x-credproxy-error']).toBe('FORBIDDEN');
    const message = (JSON.parse(res.body.toString()) as { error: { message: string } }).error.message;
    expect(message).toMatch(/cannot add a credential inside a TLS tunnel/);
    expect(message).toContain(`${proxy.base}/ROUTE/PATH`);
    expect(message).toMatch(/plain http:\/\/ URLs/);
    expect(proxy.audit.at(-1)).toMatchObject({ method: 'CONNECT', status: 403, form: 'connect' });
  });

  // curl is a test prerequisite (README; .ci/run installs it): a missing curl fails here, not skips.
  it('works with curl over the Unix socket and as HTTP_PROXY (curl -x)', async () => {
    const viaSocket = await run('curl', ['-sS', '-i', '--unix-socket', proxy.socketPath, '-H', `x-api-key: ${proxy.token}`, 'http://localhost/keyed/echo?enc=gzip', '--compressed']);
    expect(viaSocket.stdout).toMatch(/^HTTP\/1.1 200/);
    expectNoSecret('curl --unix-socket', viaSocket.stdout);
    expect(lastReceived().headers['x-api-key']).toBe(API_KEY);
    const viaProxy = await run('curl', ['-sS', '-i', '-x', `http://x:${proxy.token}@127.0.0.1:${proxy.port}`, `http://localhost:${upstream.port}/echo`], {
      env: { ...process.env, NO_PROXY: '', no_proxy: '' },
    });
    expect(viaProxy.stdout).toMatch(/^HTTP\/1.1 200/);
    expectNoSecret('curl -x', viaProxy.stdout, [proxy.token]);
    expect(lastReceived().headers.authorization).toBe(`Bearer ${API_KEY}`);
    // curl with an https URL through the proxy tries CONNECT and is told no.
    const tunnel = await run('curl', ['-sS', '-x', `http://x:${proxy.token}@127.0.0.1:${proxy.port}`, 'https://api.github.com/'], {
      env: { ...process.env, NO_PROXY: '', no_proxy: '' },
    }).catch((err: { stderr: string }) => err);
    expect((tunnel as { stderr: string }).stderr).toMatch(/403/);
  });
});

describe('account routes: 401, refresh, retry', () => {
  it('refreshes once and retries a request whose body was kept (≤ 1 MiB, exactly 1 MiB included)', async () => {
    for (const size of [0, 1000, 1024 * 1024]) {
      const proxy = await startRouteProxy();
      const body = randomBytes(size);
      const before = upstream.received.length;
      const res = await request(`${proxy.base}/acct/fresh-only`, {
        method: 'POST',
        headers: { authorization: `Bearer ${proxy.token}`, 'content-type': 'application/octet-stream' },
        body: size === 0 ? undefined : body,
      });
      const answer = (await res.body.json()) as { ok: boolean; bodyBytes: number };
      expect(res.statusCode, `size ${size}`).toBe(200);
      expect(answer).toMatchObject({ ok: true, bodyBytes: size });
      expect(proxy.refreshCalls).toBe(1);
      const seen = upstream.received.slice(before);
      expect(seen.map((r) => r.headers.authorization)).toEqual([`Bearer ${STALE_TOKEN}`, `Bearer ${FRESH_TOKEN}`]);
      expect(seen[0]!.bodySha256).toBe(seen[1]!.bodySha256);
      expect(proxy.audit.at(-1)).toMatchObject({ route: 'acct', status: 200, bytes_in: size });
    }
  });

  it('passes the 401 through without a refresh when the body was too big to keep', async () => {
    const proxy = await startRouteProxy();
    const body = randomBytes(1024 * 1024 + 1);
    const before = upstream.received.length;
    const res = await request(`${proxy.base}/acct/fresh-only`, {
      method: 'POST',
      headers: { authorization: `Bearer ${proxy.token}` },
      // A stream of unknown length: the proxy cannot know the size before reading.
      body: Readable.from([body.subarray(0, 500_000), body.subarray(500_000)]),
    });
    expect(res.statusCode).toBe(401);
    expect(res.headers['x-credproxy-error']).toBeUndefined();
    await res.body.dump();
    expect(proxy.refreshCalls).toBe(0);
    expect(upstream.received.length).toBe(before + 1);
    expect(lastReceived().bodyBytes).toBe(body.length);
  });

  it('passes the second 401 through when the refreshed token is refused too (one refresh only)', async () => {
    const proxy = await startRouteProxy({
      refreshCredential: async () => {
        proxy.refreshCalls++;
        return { value: `still-wrong-${randomBytes(8).toString('hex')}` };
      },
    });
    const res = await request(`${proxy.base}/acct/fresh-only`, { headers: { authorization: `Bearer ${proxy.token}` } });
    expect(res.statusCode).toBe(401);
    await res.body.dump();
    expect(proxy.refreshCalls).toBe(1);
  });

  it('answers 401 REAUTH_REQUIRED when the account needs a new login', async () => {
    const proxy = await startRouteProxy({
      credential: async () => {
        throw new ProxyError(ErrorCode.REAUTH_REQUIRED, 'example:work needs a new login — run `credproxy login example --bucket work`');
      },
    });
    const res = await request(`${proxy.base}/acct/echo`, { headers: { authorization: `Bearer ${proxy.token}` } });
    expect(res.statusCode).toBe(401);
    expect(res.headers['x-credproxy-error']).toBe('REAUTH_REQUIRED');
    expect(await res.body.json()).toEqual({ error: { code: 'REAUTH_REQUIRED', message: 'example:work needs a new login — run `credproxy login example --bucket work`' } });
  });

  it('answers 500 INTERNAL_ERROR, logged, when a dependency fails unexpectedly', async () => {
    const proxy = await startRouteProxy({
      credential: async () => {
        throw new TypeError('boom in the store');
      },
    });
    const res = await request(`${proxy.base}/keyed/echo`, { headers: { 'x-api-key': proxy.token } });
    expect(res.statusCode).toBe(500);
    const body = (await res.body.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('INTERNAL_ERROR');
    expect(body.error.message).not.toContain('boom');
    expect(proxy.logs.join('')).toMatch(/route request failed .*boom in the store/);
  });
});

describe('an upstream answer that cannot be passed on', () => {
  it('becomes a 502 with none of its headers', async () => {
    const proxy = await startRouteProxy({
      upstream: {
        request: async () => ({
          statusCode: 42,
          headers: { 'x-from-upstream': 'yes' },
          body: Object.assign(Readable.from([]), { dump: async () => undefined }),
        }),
      },
    });
    const res = await request(`${proxy.base}/keyed/x`, { headers: { 'x-api-key': proxy.token } });
    expect(res.statusCode).toBe(502);
    expect(res.headers['x-from-upstream']).toBeUndefined();
    expect(res.headers['x-credproxy-error']).toBe('UPSTREAM_UNAVAILABLE');
    expect(await res.body.text()).toMatch(/cannot be passed on/);
  });
});

describe('large bodies stream in bounded memory', () => {
  async function download(proxy: RouteProxy, mb: number): Promise<number> {
    const res = await request(`${proxy.base}/keyed/large?mb=${mb}`, { headers: { 'x-api-key': proxy.token } });
    let bytes = 0;
    for await (const chunk of res.body) bytes += (chunk as Buffer).length;
    return bytes;
  }

  async function upload(proxy: RouteProxy, mb: number): Promise<number> {
    const block = Buffer.alloc(256 * 1024, 7);
    const res = await request(`${proxy.base}/keyed/upload`, {
      method: 'PUT',
      headers: { 'x-api-key': proxy.token },
      body: Readable.from(
        (function* () {
          for (let i = 0; i < mb * 4; i++) yield block;
        })(),
      ),
    });
    return ((await res.body.json()) as { bodyBytes: number }).bodyBytes;
  }

  it('downloads 256 MiB and uploads 64 MiB while RSS grows far less than either body, telling `relayed` every byte', async () => {
    let relayed = 0;
    const proxy = await startRouteProxy({ relayed: (bytes) => void (relayed += bytes) });
    // Warm up (TLS, pools, heap) so that what is measured is the transfer itself.
    expect(await download(proxy, 16)).toBe(16 * 1024 * 1024);
    expect(await upload(proxy, 8)).toBe(8 * 1024 * 1024);
    // Both directions are counted (serve collects a stream's dead buffers by it: cli/src/stream-garbage.ts);
    // the upload's answer is a short JSON document.
    expect(relayed - 24 * 1024 * 1024).toBeGreaterThanOrEqual(0);
    expect(relayed - 24 * 1024 * 1024).toBeLessThan(1024);
    relayed = 0;
    const rssBefore = process.memoryUsage().rss;
    let peak = rssBefore;
    const sample = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 10);
    try {
      expect(await download(proxy, 256)).toBe(256 * 1024 * 1024);
      expect(proxy.audit.at(-1)).toMatchObject({ status: 200, bytes_out: 256 * 1024 * 1024 });
      expect(await upload(proxy, 64)).toBe(64 * 1024 * 1024);
      expect(proxy.audit.at(-1)).toMatchObject({ status: 200, bytes_in: 64 * 1024 * 1024 });
      expect(relayed - 320 * 1024 * 1024).toBeGreaterThanOrEqual(0);
      expect(relayed - 320 * 1024 * 1024).toBeLessThan(1024);
    } finally {
      clearInterval(sample);
    }
    // Client, proxy and upstream share this process: buffering either body whole would add at
    // least its size (256 or 64 MiB); streaming stays well below.
    expect((peak - rssBefore) / (1024 * 1024)).toBeLessThan(48);
  }, 60_000);
});

describe('the openai SDK', () => {
  it('works pointed at the route with the capability token as its API key', async () => {
    const proxy = await startRouteProxy();
    const client = new OpenAI({ baseURL: `${proxy.base}/openai/v1`, apiKey: proxy.token, maxRetries: 0 });
    const completion = await client.chat.completions.create({ model: 'gpt-test', messages: [{ role: 'user', content: 'hi' }] });
    expect(completion.choices[0]!.message.content).toBe('Hello from upstream');
    expect(lastReceived().headers.authorization).toBe(`Bearer ${API_KEY}`);
    expect(lastReceived().url).toBe('/v1/chat/completions');
    const stream = await client.chat.completions.create({ model: 'gpt-test', messages: [{ role: 'user', content: 'hi' }], stream: true });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
    expect(text).toBe('Hello from upstream');
    expect(proxy.audit.map((a) => [a.route, a.path, a.status])).toEqual([
      ['openai', '/v1/chat/completions', 200],
      ['openai', '/v1/chat/completions', 200],
    ]);
  });
});

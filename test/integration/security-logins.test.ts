/**
 * Issue 9, the login machinery under attack, over real sockets against a real authorization
 * server (oidc-provider on loopback) and a scripted user:
 * - one HTTP request to a pending loopback callback listener must never take the proxy down;
 * - a client with login rights may not pile up listeners or pollers, nor pick a redirect_uri;
 * - a login belongs to the client registration that started it, not to its name;
 * - a pasted code must carry its state.
 *
 * The proxy runs in this process, so "the proxy died" shows up as an uncaught exception: every
 * one is recorded and each test asserts there was none.
 */
import net from 'node:net';
import fc from 'fast-check';
import { createScriptedUser, startTestAuthServer, type TestAuthServer } from '@credproxy/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { streamLogger, type RunningProxy } from '../../packages/core/src/index.js';
import { promises as fs } from 'node:fs';
import { RawClient, type RawFrame } from '../support/raw-client.js';
import { cleanupTestEnv, portOpen, proxyLayout, startTestProxy, tempDir, waitUntil } from '../support/temp.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

let as: TestAuthServer;
let proxy: RunningProxy;
let owner: RawClient;
const opened: RawClient[] = [];
const log: string[] = [];
const uncaught: unknown[] = [];
/** Every state handed out in an auth_url, and every authorization code seen: none may reach the log. */
const secrets = new Set<string>();
const recordUncaught = (err: unknown): void => void uncaught.push(err);

async function ok(c: RawClient, op: string, payload: Record<string, unknown> = {}): Promise<any> {
  const f = await c.request(op, payload, 15_000);
  expect(f.value, `${op}: ${f.body.toString()}`).toMatchObject({ ok: true });
  const state = typeof f.value.data?.auth_url === 'string' ? new URL(f.value.data.auth_url).searchParams.get('state') : null;
  if (state) secrets.add(state);
  return f.value.data;
}

async function fails(c: RawClient, op: string, payload: Record<string, unknown>, code: string): Promise<{ code: string; error: string }> {
  const f = await c.request(op, payload, 15_000);
  expect(f.value, `${op}: ${f.body.toString()}`).toMatchObject({ ok: false, code });
  return f.value;
}

async function addClient(name: string, scopes: Array<{ provider: string; bucket?: string }>): Promise<RawClient> {
  const added = await ok(owner, 'client_add', { name, scopes, allow_login: true });
  const c = await RawClient.open(proxy.socketPath, added.capability_token);
  opened.push(c);
  return c;
}

function callbackPort(init: { auth_url: string }): number {
  return Number(new URL(new URL(init.auth_url).searchParams.get('redirect_uri')!).port);
}

/**
 * Send raw bytes to a loopback port and read until the server closes (or `timeoutMs` passes).
 * `halfClose`: end our side right after the bytes, as a client that sends garbage and leaves.
 */
function rawHttp(port: number, bytes: Buffer | string, options: { timeoutMs?: number; halfClose?: boolean } = {}): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const s = net.connect(port, '127.0.0.1');
    const timer = setTimeout(() => {
      s.destroy();
      resolve({ text: Buffer.concat(chunks).toString('latin1'), closed: false });
    }, options.timeoutMs ?? 3_000);
    s.on('data', (d: Buffer) => chunks.push(d));
    s.on('error', () => undefined);
    s.once('close', () => {
      clearTimeout(timer);
      resolve({ text: Buffer.concat(chunks).toString('latin1'), closed: true });
    });
    s.once('connect', () => {
      s.write(bytes);
      if (options.halfClose) s.end();
    });
  });
}

async function pollUntilDone(c: RawClient, sessionId: string): Promise<any> {
  let last: any;
  await waitUntil(async () => {
    last = await ok(c, 'oauth_poll', { session_id: sessionId });
    return last.status !== 'pending';
  }, 10_000, 25);
  return last;
}

/** The proxy is alive: it answers on its socket, and nothing escaped as an uncaught exception. */
async function assertProxyUp(): Promise<void> {
  expect(uncaught).toEqual([]);
  expect((await ok(owner, 'ping')).pid).toBe(process.pid);
}

beforeAll(async () => {
  process.on('uncaughtException', recordUncaught);
  as = await startTestAuthServer({ deviceInterval: 0.05 });
  const layout = proxyLayout(await tempDir('cps-'));
  const providers = {
    demo: { issuer: as.issuer, client_id: as.clients.native.clientId, scopes: ['openid', 'offline_access'], flow: 'pkce_redirect' },
    'demo-device': { issuer: as.issuer, client_id: as.clients.native.clientId, scopes: ['openid', 'offline_access'], flow: 'device_code' },
    'demo-paste': { issuer: as.issuer, client_id: as.clients.paste.clientId, scopes: ['openid', 'offline_access'], flow: 'browser_redirect', redirect_uri: as.clients.paste.redirectUri },
  };
  await fs.writeFile(layout.configFile, JSON.stringify({ providers }, null, 2));
  ({ proxy } = await startTestProxy({ logger: streamLogger({ write: (line: string) => log.push(line) }, 'debug') }, layout.dir));
  owner = await RawClient.open(proxy.socketPath);
  opened.push(owner);
});

afterAll(async () => {
  for (const c of opened.splice(0)) c.close();
  await cleanupTestEnv();
  await as?.close();
  process.off('uncaughtException', recordUncaught);
});

describe('the loopback callback listener (issue 9, item 1)', () => {
  it('answers a request target that URL parsing rejects (//[), and the login still completes', async () => {
    const init = await ok(owner, 'oauth_initiate', { provider: 'demo', bucket: 'crash' });
    const port = callbackPort(init);
    const raw = await rawHttp(port, `GET //[ HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n\r\n`);
    expect(raw.text).toMatch(/^HTTP\/1\.1 404 /);
    expect((await fetch(`http://127.0.0.1:${port}//[`)).status).toBe(404);
    await assertProxyUp();
    expect((await ok(owner, 'oauth_poll', { session_id: init.session_id })).status).toBe('pending');

    const user = createScriptedUser();
    expect((await user.followRedirect(await user.authorize(init.auth_url))).status).toBe(200);
    expect((await pollUntilDone(owner, init.session_id)).status).toBe('complete');
  });

  it('answers a malformed request with 400 and closes that connection', async () => {
    const init = await ok(owner, 'oauth_initiate', { provider: 'demo', bucket: 'malformed' });
    const port = callbackPort(init);
    const raw = await rawHttp(port, 'GET /callback HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n');
    expect(raw.text).toMatch(/^HTTP\/1\.1 400 /);
    expect(raw.closed).toBe(true);
    await assertProxyUp();
    expect(await portOpen(port)).toBe(true);
    await ok(owner, 'oauth_cancel', { session_id: init.session_id });
  });

  it('stays up whatever method, request target and headers reach a pending listener (property)', async () => {
    const init = await ok(owner, 'oauth_initiate', { provider: 'demo', bucket: 'fuzz' });
    const port = callbackPort(init);
    const method = fc.oneof(
      fc.constantFrom('GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'TRACE', 'PATCH', 'CONNECT', 'PRI', 'M-SEARCH'),
      fc.string({ unit: 'binary-ascii', minLength: 1, maxLength: 10 }),
    );
    const target = fc.oneof(
      fc.constantFrom('//[', '//[::1', 'http://[', '*', '//', '/%', '/%zz', '?', '/callback', '/callback?state=', '/callback?code=x&state=y', '/callback?%E0%A4%A', 'http://127.0.0.1/callback?state=x', '/callback#x'),
      fc.tuple(fc.constantFrom('/', '//', '/callback?', '/callback?state=', 'http://', '//['), fc.string({ unit: 'binary-ascii', maxLength: 40 })).map(([a, b]) => a + b),
      fc.string({ unit: 'binary', maxLength: 60 }),
    );
    const headers = fc.array(fc.tuple(fc.string({ unit: 'binary-ascii', maxLength: 16 }), fc.string({ unit: 'binary', maxLength: 40 })), { maxLength: 4 });
    await fc.assert(
      fc.asyncProperty(method, target, headers, fc.boolean(), async (m, t, hs, withHost) => {
        const lines = [`${m} ${t} HTTP/1.1`, ...(withHost ? [`Host: 127.0.0.1:${port}`] : []), ...hs.map(([k, v]) => `${k}: ${v}`)];
        await rawHttp(port, Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'utf8'), { halfClose: true, timeoutMs: 2_000 });
        expect(uncaught).toEqual([]);
      }),
      { numRuns: 250 },
    );
    await assertProxyUp();
    expect((await ok(owner, 'oauth_poll', { session_id: init.session_id })).status).toBe('pending');
    const user = createScriptedUser();
    expect((await user.followRedirect(await user.authorize(init.auth_url))).status).toBe(200);
    expect((await pollUntilDone(owner, init.session_id)).status).toBe('complete');
  }, 120_000);
});

describe('pending logins are bounded (issue 9, item 2a)', () => {
  it('refuses a redirect_uri chosen by a client (FORBIDDEN), so no listener opens for it', async () => {
    const bot = await addClient('picky', [{ provider: 'demo', bucket: 'one' }, { provider: 'demo-paste', bucket: 'one' }]);
    const answers: RawFrame[] = [];
    for (let i = 0; i < 20; i++) {
      answers.push(await bot.request('oauth_initiate', { provider: 'demo', bucket: 'one', redirect_uri: `http://127.0.0.1/cb${i}` }, 15_000));
    }
    expect(answers.filter((a) => a.value.ok)).toEqual([]);
    for (const a of answers) {
      expect(a.value.code).toBe('FORBIDDEN');
      expect(a.value.error).toMatch(/redirect_uri/);
    }
    // The provider's own redirect_uri, given explicitly, is no choice: it is accepted.
    const first = await ok(bot, 'oauth_initiate', { provider: 'demo-paste', bucket: 'one' });
    const again = await ok(bot, 'oauth_initiate', { provider: 'demo-paste', bucket: 'one', redirect_uri: as.clients.paste.redirectUri });
    expect(again.session_id).not.toBe(first.session_id);
    await ok(bot, 'oauth_cancel', { session_id: first.session_id });
    await ok(bot, 'oauth_cancel', { session_id: again.session_id });
  });

  it('lets a client hold at most 4 pending logins, even when it races, and frees a place when one ends', async () => {
    const bot = await addClient('greedy', [{ provider: 'demo' }, { provider: 'demo-device' }]);
    const answers = await Promise.all(
      Array.from({ length: 12 }, (_, i) => bot.request('oauth_initiate', { provider: i % 2 === 0 ? 'demo' : 'demo-device', bucket: `g${i}` }, 15_000)),
    );
    const wins = answers.filter((a) => a.value.ok).map((a) => a.value.data);
    expect(wins).toHaveLength(4);
    for (const lost of answers.filter((a) => !a.value.ok)) {
      expect(lost.value.code).toBe('RESOURCE_EXHAUSTED');
      expect(lost.value.error).toMatch(/4 logins/);
    }
    // What was refused holds no listener: only the winners' ports answer.
    for (const w of wins.filter((w) => w.flow_type === 'pkce_redirect')) expect(await portOpen(callbackPort(w))).toBe(true);
    await fails(bot, 'oauth_initiate', { provider: 'demo', bucket: 'late' }, 'RESOURCE_EXHAUSTED');
    await ok(bot, 'oauth_cancel', { session_id: wins[0].session_id });
    const late = await ok(bot, 'oauth_initiate', { provider: 'demo', bucket: 'late' });
    for (const w of [...wins.slice(1), late]) await ok(bot, 'oauth_cancel', { session_id: w.session_id });
  });

  it("caps the owner's listening and polling logins at 64; paste logins hold nothing and are not counted", async () => {
    const conns = [owner, ...(await Promise.all([1, 2, 3].map(() => RawClient.open(proxy.socketPath))))];
    opened.push(...conns.slice(1));
    const answers = await Promise.all(
      Array.from({ length: 64 }, (_, i) => conns[i % 4]!.request('oauth_initiate', { provider: i % 2 === 0 ? 'demo' : 'demo-device', bucket: `o${i}` }, 20_000)),
    );
    expect(answers.filter((a) => !a.value.ok).map((a) => a.body.toString())).toEqual([]);
    const err = await fails(owner, 'oauth_initiate', { provider: 'demo', bucket: 'o64' }, 'RESOURCE_EXHAUSTED');
    expect(err.error).toMatch(/64/);
    const paste = await ok(owner, 'oauth_initiate', { provider: 'demo-paste', bucket: 'o64' });
    for (const a of answers) await ok(owner, 'oauth_cancel', { session_id: a.value.data.session_id });
    await ok(owner, 'oauth_cancel', { session_id: paste.session_id });
    await ok(owner, 'oauth_initiate', { provider: 'demo', bucket: 'o64' }).then((s) => ok(owner, 'oauth_cancel', { session_id: s.session_id }));
  }, 60_000);

  it('bounds the loopback listeners of all pending logins together', async () => {
    proxy.logins.sessions.setLimits({ loopbackListeners: 3 });
    try {
      const a = await addClient('lis-a', [{ provider: 'demo' }]);
      const b = await addClient('lis-b', [{ provider: 'demo' }, { provider: 'demo-paste' }]);
      const held = [await ok(a, 'oauth_initiate', { provider: 'demo', bucket: 'l1' }), await ok(a, 'oauth_initiate', { provider: 'demo', bucket: 'l2' }), await ok(b, 'oauth_initiate', { provider: 'demo', bucket: 'l3' })];
      const err = await fails(b, 'oauth_initiate', { provider: 'demo', bucket: 'l4' }, 'RESOURCE_EXHAUSTED');
      expect(err.error).toMatch(/loopback/);
      // A login that needs no listener still starts.
      const paste = await ok(b, 'oauth_initiate', { provider: 'demo-paste', bucket: 'l4' });
      await ok(a, 'oauth_cancel', { session_id: held[0].session_id });
      const freed = await ok(b, 'oauth_initiate', { provider: 'demo', bucket: 'l4' });
      for (const [c, s] of [[a, held[1]], [b, held[2]], [b, paste], [b, freed]] as const) await ok(c, 'oauth_cancel', { session_id: s.session_id });
    } finally {
      proxy.logins.sessions.setLimits({ loopbackListeners: 256 });
    }
  });
});

describe('logins belong to the client registration (issue 9, item 8)', () => {
  it("ends a removed client's logins, and a new client of the same name cannot see them", async () => {
    const bot = await addClient('ephemeral', [{ provider: 'demo' }, { provider: 'demo-device' }]);
    const before = as.grantCounts.device_code;
    const device = await ok(bot, 'oauth_initiate', { provider: 'demo-device', bucket: 'e1' });
    const loopback = await ok(bot, 'oauth_initiate', { provider: 'demo', bucket: 'e2' });
    await waitUntil(() => as.grantCounts.device_code > before, 3_000, 10);
    expect(await portOpen(callbackPort(loopback))).toBe(true);

    expect(await ok(owner, 'client_remove', { name: 'ephemeral' })).toEqual({ removed: true });
    // The device login no longer polls the provider, and the loopback listener is closed.
    await sleep(150);
    const settled = as.grantCounts.device_code;
    await sleep(400);
    expect(as.grantCounts.device_code).toBe(settled);
    expect(await portOpen(callbackPort(loopback))).toBe(false);

    const impostor = await addClient('ephemeral', [{ provider: 'demo' }, { provider: 'demo-device' }]);
    for (const s of [device, loopback]) {
      await fails(impostor, 'oauth_poll', { session_id: s.session_id }, 'SESSION_NOT_FOUND');
      await fails(impostor, 'oauth_cancel', { session_id: s.session_id }, 'SESSION_NOT_FOUND');
      await fails(impostor, 'oauth_exchange', { session_id: s.session_id, code: 'c#s' }, 'SESSION_NOT_FOUND');
    }
    // A login of the new registration is a session of its own.
    const fresh = await ok(impostor, 'oauth_initiate', { provider: 'demo-device', bucket: 'e1' });
    expect(fresh.session_id).not.toBe(device.session_id);
    await ok(impostor, 'oauth_cancel', { session_id: fresh.session_id });
  });
});

describe('a pasted code must carry its state (issue 9, item 9)', () => {
  it("browser_redirect: another login's bare code is refused and the victim login stays pending", async () => {
    const victim = await ok(owner, 'oauth_initiate', { provider: 'demo-paste', bucket: 'victim' });
    const other = await ok(owner, 'oauth_initiate', { provider: 'demo-paste', bucket: 'other' });
    const user = createScriptedUser();
    const otherPasted = await user.readPastedCode(await user.authorize(other.auth_url));
    const [bare] = otherPasted.split('#');
    secrets.add(bare!);
    const err = await fails(owner, 'oauth_exchange', { session_id: victim.session_id, code: bare }, 'INVALID_REQUEST');
    expect(err.error).toMatch(/code#state/);
    expect(err.error).toMatch(/redirect URL/);
    expect((await ok(owner, 'oauth_poll', { session_id: victim.session_id })).status).toBe('pending');
    // The other login's code never reached the token endpoint: it still works for its own login.
    expect((await ok(owner, 'oauth_exchange', { session_id: other.session_id, code: otherPasted })).status).toBe('complete');
    const victimPasted = await user.readPastedCode(await user.authorize(victim.auth_url));
    expect((await ok(owner, 'oauth_exchange', { session_id: victim.session_id, code: victimPasted })).status).toBe('complete');
  });

  it('pkce_redirect: a bare code or an unparsable URL is refused and the login stays pending', async () => {
    const init = await ok(owner, 'oauth_initiate', { provider: 'demo', bucket: 'pastebare' });
    const user = createScriptedUser();
    const location = await user.authorize(init.auth_url);
    const code = new URL(location).searchParams.get('code')!;
    expect(code).toBeTruthy();
    secrets.add(code);
    for (const pasted of [code, 'http://[', `${code}#`]) {
      const err = await fails(owner, 'oauth_exchange', { session_id: init.session_id, code: pasted }, 'INVALID_REQUEST');
      expect(err.error).toMatch(/code#state|redirect URL/);
      expect((await ok(owner, 'oauth_poll', { session_id: init.session_id })).status).toBe('pending');
    }
    expect((await ok(owner, 'oauth_exchange', { session_id: init.session_id, code: location })).status).toBe('complete');
  });
});

describe('afterwards', () => {
  it('no uncaught exception escaped, and no log line carries a state or code', async () => {
    expect(uncaught).toEqual([]);
    const logs = log.join('');
    expect(logs).toMatch(/login callback: malformed request/);
    expect(secrets.size).toBeGreaterThan(10);
    for (const secret of secrets) expect(logs.includes(secret), `the log contains ${secret.slice(0, 4)}…`).toBe(false);
  });
});

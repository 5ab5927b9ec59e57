/**
 * The owner stays in control (SPEC §9): access on request — a client asks beyond its scope, the
 * owner approves for 2 s, the client is served, then refused after expiry — and `panic` against a
 * real authorization server, whose introspection afterwards says every token is inactive.
 */
import { promises as fs } from 'node:fs';
import { createScriptedUser, startTestAuthServer, type TestAuthServer } from '@credproxy/testkit';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { ProxyClient, ProxyError } from '../../packages/core/src/index.js';
import { MemoryTokenStore } from '../../packages/core/src/store/backends/memory.js';
import { cleanupTestEnv, proxyLayout, startTestProxy, tempDir, waitUntil, type ProxyLayout } from '../support/temp.js';

const servers: TestAuthServer[] = [];
const connections: ProxyClient[] = [];
afterEach(() => {
  for (const c of connections.splice(0)) c.close();
});
afterAll(async () => {
  await cleanupTestEnv();
  for (const s of servers) await s.close();
});

async function connect(socketPath: string, capabilityToken?: string): Promise<ProxyClient> {
  const c = await ProxyClient.connect({ socketPath, ...(capabilityToken ? { capabilityToken } : {}) });
  connections.push(c);
  return c;
}

async function refusal(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    if (err instanceof ProxyError) return err.code;
    throw err;
  }
  throw new Error('expected a refusal');
}

const token = (access: string) => ({ access_token: access, refresh_token: `rt-${access}`, expiry: Math.floor(Date.now() / 1000) + 3600 });

describe('access on request', () => {
  it('a client asks beyond its scope, the owner approves for 2 s: served, then refused after expiry', async () => {
    const { layout } = await startTestProxy();
    const owner = await connect(layout.socketPath);
    await owner.call('save_token', { provider: 'github', bucket: 'default', token: token('gh-access-1') });
    await owner.call('save_token', { provider: 'gitlab', bucket: 'work', token: token('gl-access-1') });
    const { capability_token } = await owner.call('client_add', { name: 'agent', scopes: [{ provider: 'github' }] });
    const agent = await connect(layout.socketPath, capability_token);

    expect(await refusal(agent.call('get_token', { provider: 'gitlab', bucket: 'work' }))).toBe('FORBIDDEN');
    const asked = await agent.call('request_access', { provider: 'gitlab', reason: 'needs to read\nthe MR\u202e list', ttl_seconds: 3600 });
    expect(asked).toMatchObject({ status: 'pending', request_id: expect.stringMatching(/^[0-9a-f]{32}$/) });
    expect(await agent.call('access_status', { request_id: asked.request_id })).toMatchObject({ status: 'pending' });

    // The owner sees it in status and in access_list, with the reason cleaned of control characters.
    const status = await owner.call('status', {});
    expect(status.access_requests).toEqual([expect.objectContaining({ request_id: asked.request_id, client: 'agent', provider: 'gitlab', status: 'pending', reason: 'needs to read the MR  list' })]);
    expect((await agent.call('status', {})).access_requests).toBeUndefined();

    // Approved narrower: one bucket, 2 s instead of 1 h.
    const approved = await owner.call('access_approve', { request_id: asked.request_id, ttl_seconds: 2, bucket: 'work' });
    expect(approved).toMatchObject({ status: 'approved', bucket: 'work', ttl_seconds: 2 });
    expect(await agent.call('access_status', { request_id: asked.request_id })).toMatchObject({ status: 'approved' });
    // Served on the connection it already had: temporary scope is read on every op.
    expect((await agent.call('get_token', { provider: 'gitlab', bucket: 'work' })).access_token).toBe('gl-access-1');
    expect(await refusal(agent.call('get_token', { provider: 'gitlab', bucket: 'other' }))).toBe('FORBIDDEN');

    await waitUntil(async () => (await agent.call('access_status', { request_id: asked.request_id })).status === 'expired', 4000, 100);
    expect(await refusal(agent.call('get_token', { provider: 'gitlab', bucket: 'work' }))).toBe('FORBIDDEN');
    // Its own scope is untouched.
    expect((await agent.call('get_token', { provider: 'github' })).access_token).toBe('gh-access-1');
  });

  it('denied and revoked requests, a cap on pending ones, and no view of another client\'s requests', async () => {
    const { layout } = await startTestProxy();
    const owner = await connect(layout.socketPath);
    await owner.call('set_api_key', { name: 'openai', key: 'sk-real-key-value' });
    const a = await owner.call('client_add', { name: 'a', scopes: [] });
    const b = await owner.call('client_add', { name: 'b', scopes: [] });
    const ca = await connect(layout.socketPath, a.capability_token);
    const cb = await connect(layout.socketPath, b.capability_token);

    const r1 = await ca.call('request_access', { api_key: 'openai' });
    expect(await refusal(cb.call('access_status', { request_id: r1.request_id }))).toBe('NOT_FOUND');
    await owner.call('access_deny', { request_id: r1.request_id });
    expect(await ca.call('access_status', { request_id: r1.request_id })).toEqual({ status: 'denied' });
    expect(await refusal(ca.call('get_api_key', { name: 'openai' }))).toBe('FORBIDDEN');

    const r2 = await ca.call('request_access', { api_key: 'openai' });
    await owner.call('access_approve', { request_id: r2.request_id });
    expect(await ca.call('get_api_key', { name: 'openai' })).toEqual({ key: 'sk-real-key-value' });
    expect(await ca.call('list_api_keys', {})).toEqual({ keys: ['openai'] });
    await owner.call('access_revoke', { request_id: r2.request_id });
    expect(await refusal(ca.call('get_api_key', { name: 'openai' }))).toBe('FORBIDDEN');

    for (let i = 0; i < 3; i++) await cb.call('request_access', { provider: `p${i}` });
    expect(await refusal(cb.call('request_access', { provider: 'p9' }))).toBe('RESOURCE_EXHAUSTED');
    expect(await refusal(cb.call('request_access', { provider: 'p9', api_key: 'openai' }))).toBe('INVALID_REQUEST');
    expect(await refusal(owner.call('access_approve', { request_id: 'f'.repeat(32) }))).toBe('NOT_FOUND');
    expect(await refusal(ca.call('access_list', {}))).toBe('FORBIDDEN');
  });
});

describe('credproxy panic', () => {
  let as: TestAuthServer;
  let layout: ProxyLayout;

  it('revokes every token at the provider, deletes them, removes every client, and locks until unlock', async () => {
    as = await startTestAuthServer();
    servers.push(as);
    layout = proxyLayout(await tempDir('cpp-'));
    await fs.writeFile(
      layout.configFile,
      JSON.stringify({ providers: { acme: { issuer: as.issuer, client_id: as.clients.paste.clientId, scopes: ['openid', 'offline_access'], flow: 'browser_redirect', redirect_uri: as.clients.paste.redirectUri } } }),
    );
    const store = new MemoryTokenStore();
    await startTestProxy({ tokenStore: store }, layout.dir);
    const owner = await connect(layout.socketPath);
    for (const bucket of ['default', 'work']) {
      const init = await owner.call('oauth_initiate', { provider: 'acme', bucket });
      const user = createScriptedUser();
      const code = await user.readPastedCode(await user.authorize(init.auth_url));
      await owner.call('oauth_exchange', { session_id: init.session_id, code });
    }
    const issued: string[] = [];
    for (const key of await store.list()) {
      const record = (await store.get(key))!;
      issued.push(record.token.access_token, record.token.refresh_token!);
    }
    expect(issued).toHaveLength(4);
    for (const t of issued) expect(await as.isActive(t)).toBe(true);

    const sandbox = await owner.call('client_add', { name: 'sandbox', scopes: [{ provider: 'acme' }], allow_login: true });
    const agent = await connect(layout.socketPath, sandbox.capability_token);
    expect((await agent.call('get_token', { provider: 'acme' })).access_token).toBeTruthy();
    const pendingLogin = await owner.call('oauth_initiate', { provider: 'acme', bucket: 'later' });

    const result = await owner.call('panic', {}, { timeoutMs: 30_000 });
    expect(result.locked).toBe(true);
    expect(result.clients_removed).toEqual(['sandbox']);
    expect(result.logins_cancelled).toBe(1);
    expect(result.accounts).toEqual([
      { provider: 'acme', bucket: 'default', revoked: true },
      { provider: 'acme', bucket: 'work', revoked: true },
    ]);
    for (const t of issued) expect(await as.isActive(t)).toBe(false);
    expect(await store.list()).toEqual([]);

    // The client is gone, and its open connection was closed.
    await expect(agent.call('ping', {})).rejects.toThrow();
    await expect(connect(layout.socketPath, sandbox.capability_token)).rejects.toThrow();
    expect((await owner.call('oauth_poll', { session_id: pendingLogin.session_id }).catch((e: ProxyError) => ({ status: e.code }))).status).not.toBe('pending');

    // Locked: ping and status answer, everything else is refused naming the way out.
    expect(await owner.call('ping', {})).toMatchObject({ pid: process.pid });
    expect(await owner.call('status', {})).toMatchObject({ accounts: [], locked: true });
    const refused = await owner.call('client_add', { name: 'x', scopes: [] }).catch((e: ProxyError) => e);
    expect(refused).toBeInstanceOf(ProxyError);
    expect((refused as ProxyError).code).toBe('FORBIDDEN');
    expect((refused as ProxyError).message).toContain('credproxy unlock');

    expect(await owner.call('unlock', {})).toEqual({ locked: false });
    expect((await owner.call('client_add', { name: 'x', scopes: [] })).name).toBe('x');
  });
});

/**
 * One fixed loopback callback port shared by concurrent logins (SPEC §7): one listener per port,
 * each callback routed by its state; an unknown state gets a page saying so and touches no
 * session; two logins to the same provider and bucket are two sessions, and cancelling one (a
 * Ctrl-C in its terminal) leaves the other pending and completable; the listener closes when no
 * login uses it. Against the testkit's oidc-provider.
 */
import { connect, createServer } from 'node:net';
import { createScriptedUser, startTestAuthServer, type TestAuthServer } from '@credproxy/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { followToCallback, pollUntilDone, startPresetProxy, type PresetProxy } from '../support/preset-harness.js';
import { removeTempDirs, waitUntil } from '../support/temp.js';

let as: TestAuthServer;
let p: PresetProxy;
let port: number;

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const n = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return n;
}

function listening(n: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(n, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

function redirectOf(authUrl: string): URL {
  return new URL(new URL(authUrl).searchParams.get('redirect_uri')!);
}

beforeAll(async () => {
  as = await startTestAuthServer();
  port = await freePort();
  p = await startPresetProxy();
  for (const name of ['shared', 'shared-too']) {
    await p.addProvider({ name, issuer: as.issuer, clientId: as.clients.native.clientId, scope: ['openid', 'offline_access'], callbackPort: String(port) });
  }
});

afterAll(async () => {
  await p?.close();
  await as?.close();
  await removeTempDirs();
});

describe('a fixed callback port shared by concurrent logins', () => {
  it('gives two logins to the same account two sessions on one listener; cancelling one leaves the other pending and completable', async () => {
    const a = await p.owner.call('oauth_initiate', { provider: 'shared' });
    const b = await p.owner.call('oauth_initiate', { provider: 'shared' });
    expect(b.session_id).not.toBe(a.session_id);
    expect(redirectOf(a.auth_url).port).toBe(String(port));
    expect(redirectOf(b.auth_url).port).toBe(String(port));
    expect(new URL(a.auth_url).searchParams.get('state')).not.toBe(new URL(b.auth_url).searchParams.get('state'));
    expect(p.proxy.logins.callbacks.listeners).toBe(1);

    // A callback nobody is waiting for: a page that says so, and neither login is touched.
    const stray = await followToCallback(`http://127.0.0.1:${port}/callback?code=abc&state=not-a-pending-login`);
    expect(stray.status).toBe(400);
    expect(stray.text).toMatch(/No pending login/);
    expect((await followToCallback(`http://127.0.0.1:${port}/elsewhere?state=x`)).status).toBe(404);

    // Ctrl-C in the first terminal cancels its own session only.
    expect(await p.owner.call('oauth_cancel', { session_id: a.session_id })).toEqual({ status: 'cancelled' });
    expect((await p.owner.call('oauth_poll', { session_id: b.session_id })).status).toBe('pending');
    expect(await listening(port)).toBe(true);

    // The cancelled login's own callback now belongs to nobody.
    const userA = createScriptedUser();
    const lateA = await followToCallback(await userA.authorize(a.auth_url));
    expect(lateA.status).toBe(400);
    expect((await p.owner.call('oauth_poll', { session_id: a.session_id })).status).toBe('cancelled');

    const userB = createScriptedUser('second-user');
    const page = await followToCallback(await userB.authorize(b.auth_url));
    expect(page.status).toBe(200);
    expect(await pollUntilDone(p.owner, b.session_id)).toMatchObject({ status: 'complete', account: 'second-user' });
    // No login uses the port any more: the listener is gone.
    await waitUntil(async () => !(await listening(port)), 3_000, 50);
    expect(p.proxy.logins.callbacks.listeners).toBe(0);
  });

  it('routes callbacks of logins to different providers and buckets on the same port, in any order', async () => {
    const logins = await Promise.all([
      p.owner.call('oauth_initiate', { provider: 'shared', bucket: 'one' }),
      p.owner.call('oauth_initiate', { provider: 'shared-too', bucket: 'two' }),
      p.owner.call('oauth_initiate', { provider: 'shared', bucket: 'three' }),
    ]);
    expect(p.proxy.logins.callbacks.listeners).toBe(1);
    const users = logins.map((_, i) => createScriptedUser(`user-${i}`));
    const locations = await Promise.all(logins.map((l, i) => users[i]!.authorize(l.auth_url)));
    for (const i of [2, 0, 1]) expect((await followToCallback(locations[i]!)).status).toBe(200);
    for (const [i, l] of logins.entries()) {
      expect(await pollUntilDone(p.owner, l.session_id)).toMatchObject({ status: 'complete', account: `user-${i}` });
    }
    const status = await p.owner.call('status', {});
    expect(status.accounts.filter((x) => x.bucket !== 'default').map((x) => [x.provider, x.bucket, x.account])).toEqual([
      ['shared', 'one', 'user-0'],
      ['shared', 'three', 'user-2'],
      ['shared-too', 'two', 'user-1'],
    ]);
    await waitUntil(async () => !(await listening(port)), 3_000, 50);
  });

  it('a port held by another program fails the login cleanly, naming the port', async () => {
    const squatter = createServer();
    await new Promise<void>((r) => squatter.listen(port, '127.0.0.1', () => r()));
    try {
      await expect(p.owner.call('oauth_initiate', { provider: 'shared' })).rejects.toMatchObject({ code: 'FLOW_INITIATION_FAILED', message: expect.stringMatching(new RegExp(`127\\.0\\.0\\.1:${port}.*callback_port`)) });
    } finally {
      await new Promise<void>((r) => squatter.close(() => r()));
    }
    // And the port is usable again once free.
    const again = await p.owner.call('oauth_initiate', { provider: 'shared' });
    await p.owner.call('oauth_cancel', { session_id: again.session_id });
  });
});

/**
 * Issue 9, connection-level attacks, each reproduced over real sockets against a real proxy:
 * a guesser locking out other clients where peer pids are not visible, audit history erased by
 * huge op names, unauthenticated peers making the proxy buffer 4 MiB frames, one client starving
 * the others of connections, and ping telling a sandbox client the owner socket's host path.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { frameBytes, jsonFrame, RawClient } from '../support/raw-client.js';
import { cleanupTestEnv, startTestProxy, tempDir, waitUntil, type ProxyLayout } from '../support/temp.js';

const opened: RawClient[] = [];
afterEach(async () => {
  for (const c of opened.splice(0)) c.close();
  await cleanupTestEnv();
});

async function connect(socketPath: string): Promise<RawClient> {
  const c = await RawClient.connect(socketPath);
  opened.push(c);
  return c;
}

async function open(socketPath: string, token?: string): Promise<RawClient> {
  const c = await RawClient.open(socketPath, token);
  opened.push(c);
  return c;
}

async function addClient(layout: ProxyLayout, payload: Record<string, unknown>): Promise<{ capability_token: string; expires_at?: number }> {
  const owner = await open(layout.socketPath);
  const added = await owner.request('client_add', { scopes: [{ provider: 'gh' }], ...payload });
  expect(added.value, added.body.toString()).toMatchObject({ ok: true });
  owner.close();
  return added.value.data;
}

const wrongToken = (i: number): string => i.toString(16).padStart(64, 'f');
const uid = typeof process.getuid === 'function' ? process.getuid() : undefined;

/** Every line of the audit log and its rotated files, oldest file first. */
async function auditText(layout: ProxyLayout): Promise<{ text: string; bytes: number; files: string[] }> {
  const files = (await fs.readdir(layout.dataDir)).filter((f) => f.startsWith('audit.log')).sort().reverse();
  let text = '';
  let bytes = 0;
  for (const f of files) {
    const content = await fs.readFile(path.join(layout.dataDir, f), 'utf8');
    text += content;
    bytes += Buffer.byteLength(content);
  }
  return { text, bytes, files };
}

describe('item 4: a guesser cannot lock out others where peer pids are not visible', () => {
  for (const [label, peer] of [
    ['the proxy in its own pid namespace (pid 0 for every peer)', { pid: 0, ...(uid !== undefined ? { uid } : {}) }],
    ['no peer credentials at all (macOS, no koffi)', {}],
  ] as const) {
    it(`${label}: 11 wrong tokens from one process, then the right token from another still gets in`, async () => {
      const { layout } = await startTestProxy({ readPeer: () => ({ ...peer }) });
      const { capability_token: token } = await addClient(layout, { name: 'box' });
      const guesser = await connect(layout.socketPath);
      const codes: string[] = [];
      for (let i = 0; i < 11; i++) codes.push((await guesser.handshake(wrongToken(i))).value.code);
      expect(codes.slice(0, 10)).toEqual(Array(10).fill('UNAUTHORIZED'));
      expect(codes[10]).toBe('RATE_LIMITED');
      // The guesser stays throttled...
      expect((await guesser.handshake(wrongToken(99))).value).toMatchObject({ ok: false, code: 'RATE_LIMITED', retryAfter: expect.any(Number) });
      // ...but the right token, which the kernel reports as the same "peer", is never throttled.
      const right = await connect(layout.socketPath);
      expect((await right.handshake(token)).value).toMatchObject({ ok: true, data: { client: 'box' } });
      const ownerConn = await connect(layout.socketPath);
      expect((await ownerConn.handshake()).value).toMatchObject({ ok: true, data: { client: 'owner' } });
    });
  }
});

describe('item 5: audit history cannot be erased, memory cannot be pinned', () => {
  it('3.9 MB op names from an expired client leave the audit log small and the earlier lines in place', async () => {
    let offsetMs = 0;
    const { layout } = await startTestProxy({ clock: { now: () => Date.now() + offsetMs } });
    const owner = await open(layout.socketPath);
    expect((await owner.request('ping')).value.ok).toBe(true);
    const { capability_token: token } = await addClient(layout, { name: 'old', ttl_seconds: 3600 });
    const conns: RawClient[] = [];
    for (let i = 0; i < 12; i++) conns.push(await open(layout.socketPath, token));
    await new Promise((r) => setTimeout(r, 250)); // the batch of earlier lines is on disk
    const before = await auditText(layout);
    expect(before.text).toContain('"op":"ping"');
    // The proxy's clock says the client has expired; its connections are still open.
    offsetMs = 2 * 3600_000;
    const huge = 'x'.repeat(3_900_000);
    for (const c of conns) c.send({ v: 2, id: 'big', op: huge, payload: {} });
    for (const c of conns) {
      expect((await c.answer('big', 10_000)).value).toMatchObject({ ok: false, code: 'UNAUTHORIZED' });
      expect(await c.closesWithin(2000)).toBe(true);
    }
    await new Promise((r) => setTimeout(r, 250));
    const after = await auditText(layout);
    // 12 lines of 3.9 MB each rotated every earlier line away (keep = 3 files of 10 MB).
    expect(after.bytes - before.bytes).toBeLessThan(20_000);
    expect(after.text.startsWith(before.text)).toBe(true);
    const lines = after.text.slice(before.text.length).trim().split('\n').map((l) => JSON.parse(l));
    const refused = lines.filter((l) => l.outcome === 'UNAUTHORIZED');
    expect(refused.length).toBeGreaterThan(0);
    for (const l of refused) expect(l.op.length).toBeLessThanOrEqual(100);
  });

  it('closes a client\'s open connections when its TTL runs out, without waiting for its next request', async () => {
    const { layout } = await startTestProxy();
    const { capability_token: token } = await addClient(layout, { name: 'brief', ttl_seconds: 1 });
    const c = await open(layout.socketPath, token);
    expect((await c.request('ping')).value.ok).toBe(true);
    expect(await c.closesWithin(3_000)).toBe(true);
    expect((await (await connect(layout.socketPath)).handshake(token)).value).toMatchObject({ ok: false, code: 'UNAUTHORIZED' });
  });

  it('closes an expired client\'s own socket, and its connections there', async () => {
    const { layout } = await startTestProxy();
    const socket = path.join(await tempDir(), 'brief.sock');
    const { capability_token: token } = await addClient(layout, { name: 'brief', ttl_seconds: 1, socket });
    const c = await open(socket, token);
    expect(await c.closesWithin(3_000)).toBe(true);
    await waitUntil(async () => !(await fs.stat(socket).then(() => true, () => false)), 2_000);
    await expect(RawClient.connect(socket)).rejects.toThrow();
  });

  it('client_remove closes the client\'s connections on the owner socket and on its own listener', async () => {
    const { layout } = await startTestProxy();
    const socket = path.join(await tempDir(), 'gone.sock');
    const { capability_token: token } = await addClient(layout, { name: 'gone', socket });
    const viaOwnerSocket = await open(layout.socketPath, token);
    const viaOwnListener = await open(socket, token);
    const owner = await open(layout.socketPath);
    expect((await owner.request('client_remove', { name: 'gone' })).value).toMatchObject({ ok: true });
    expect(await viaOwnerSocket.closesWithin(2000)).toBe(true);
    expect(await viaOwnListener.closesWithin(2000)).toBe(true);
    expect(await owner.closesWithin(200)).toBe(false);
  });

  it('counts identical failures from one connection within a second as one line with "repeat"', async () => {
    const { layout } = await startTestProxy();
    const { capability_token: token } = await addClient(layout, { name: 'noisy' });
    const c = await open(layout.socketPath, token);
    for (let i = 0; i < 500; i++) c.send({ v: 2, id: `f${i}`, op: 'client_list', payload: {} });
    for (let i = 0; i < 500; i++) expect((await c.answer(`f${i}`)).value).toMatchObject({ ok: false, code: 'FORBIDDEN' });
    await waitUntil(async () => (await auditText(layout)).text.includes('"repeat"'), 4000);
    const lines = (await auditText(layout)).text.trim().split('\n').map((l) => JSON.parse(l));
    const forbidden = lines.filter((l) => l.client === 'noisy' && l.op === 'client_list' && l.outcome === 'FORBIDDEN');
    expect(forbidden.length).toBeLessThanOrEqual(4);
    // The first is written as it happens; a later line says how many more there were.
    expect(forbidden[0].repeat).toBeUndefined();
    expect(forbidden.reduce((n, l) => n + (l.repeat ?? 1), 0)).toBe(500);
  });
});

describe('item 6: before the handshake, frames are a few KiB', () => {
  it('refuses a tokenless 4 MiB declared frame at once with INVALID_REQUEST (id null) and closes', async () => {
    const { layout } = await startTestProxy();
    const c = await connect(layout.socketPath);
    const started = Date.now();
    c.write(frameBytes(Buffer.alloc(0), 4 * 1024 * 1024));
    const answer = await c.next(1_000);
    expect(answer.value).toMatchObject({ v: 2, id: null, ok: false, code: 'INVALID_REQUEST' });
    expect(await c.closesWithin(1_000)).toBe(true);
    expect(Date.now() - started).toBeLessThan(1_500);
  });

  it('refuses a 9 KiB handshake frame, and on a client socket too', async () => {
    const { layout } = await startTestProxy();
    const socket = path.join(await tempDir(), 'c.sock');
    await addClient(layout, { name: 'listened', socket });
    for (const where of [layout.socketPath, socket]) {
      const c = await connect(where);
      c.write(jsonFrame({ v: 2, op: 'handshake', payload: { minVersion: 1, maxVersion: 2, pad: 'p'.repeat(9 * 1024) } }));
      expect((await c.next(1_000)).value).toMatchObject({ id: null, ok: false, code: 'INVALID_REQUEST' });
      expect(await c.closesWithin(1_000)).toBe(true);
    }
  });

  it('after the handshake, large frames pass — also when written in the same chunk as the handshake', async () => {
    const { layout } = await startTestProxy();
    const key = 'k'.repeat(200 * 1024);
    const c = await connect(layout.socketPath);
    c.write(
      Buffer.concat([
        jsonFrame({ v: 2, op: 'handshake', payload: { minVersion: 1, maxVersion: 2 } }),
        jsonFrame({ v: 2, id: 'big', op: 'set_api_key', payload: { name: 'large', key } }),
      ]),
    );
    expect((await c.next()).value).toMatchObject({ ok: true, data: { client: 'owner' } });
    expect((await c.answer('big')).value).toMatchObject({ ok: true });
    expect((await c.request('get_api_key', { name: 'large' })).value.data.key).toBe(key);
  });
});

describe('item 7: one client cannot starve the others of connections', () => {
  it('caps the connections of one client identity', async () => {
    const { layout } = await startTestProxy({ maxConnectionsPerClient: 3 });
    const { capability_token: token } = await addClient(layout, { name: 'hog' });
    const { capability_token: other } = await addClient(layout, { name: 'fair' });
    const held: RawClient[] = [];
    for (let i = 0; i < 3; i++) held.push(await open(layout.socketPath, token));
    const fourth = await connect(layout.socketPath);
    expect((await fourth.handshake(token)).value).toMatchObject({ ok: false, code: 'RESOURCE_EXHAUSTED' });
    expect(await fourth.closesWithin(2000)).toBe(true);
    // Another client and the owner are not affected; a slot freed is usable again.
    await open(layout.socketPath, other);
    await open(layout.socketPath);
    held[0]!.close();
    await held[0]!.closed;
    await waitUntil(async () => {
      const c = await connect(layout.socketPath);
      const ok = (await c.handshake(token)).value.ok === true;
      c.close();
      return ok;
    }, 2000);
  });

  it('closes idle client connections; the owner\'s and busy clients\' stay open', async () => {
    const { layout } = await startTestProxy({ clientIdleTimeoutMs: 300 });
    const { capability_token: token } = await addClient(layout, { name: 'idler' });
    const idle = await open(layout.socketPath, token);
    const busy = await open(layout.socketPath, token);
    const owner = await open(layout.socketPath);
    const pinger = setInterval(() => busy.send({ v: 2, id: `p${Math.random()}`, op: 'ping', payload: {} }), 100);
    try {
      expect(await idle.closesWithin(2_000)).toBe(true);
      expect(busy.isClosed).toBe(false);
      expect(owner.isClosed).toBe(false);
    } finally {
      clearInterval(pinger);
    }
    expect((await owner.request('ping')).value.ok).toBe(true);
  });

  it('keeps the owner\'s reserved slots for the owner when a client token arrives on the owner socket', async () => {
    // 8 connections, 2 kept for the owner: clients get 6, wherever they come in.
    const { layout } = await startTestProxy({ maxConnections: 8 });
    const { capability_token: token } = await addClient(layout, { name: 'squatter' });
    for (let i = 0; i < 6; i++) await open(layout.socketPath, token);
    const seventh = await connect(layout.socketPath);
    expect((await seventh.handshake(token)).value).toMatchObject({ ok: false, code: 'RESOURCE_EXHAUSTED' });
    expect(await seventh.closesWithin(2000)).toBe(true);
    await seventh.closed;
    await new Promise((r) => setTimeout(r, 50));
    const a = await open(layout.socketPath);
    const b = await open(layout.socketPath);
    expect((await a.request('ping')).value.ok).toBe(true);
    expect((await b.request('ping')).value.ok).toBe(true);
  });
});

describe('item 13a: ping does not tell a sandbox client the owner socket\'s path', () => {
  it('answers a client with the path of the listener it came in on; the owner gets the owner socket', async () => {
    const { layout } = await startTestProxy();
    const socket = path.join(await tempDir(), 'sandbox.sock');
    const { capability_token: token } = await addClient(layout, { name: 'boxed', socket });
    const c = await open(socket, token);
    const answer = await c.request('ping');
    expect(answer.value).toMatchObject({ ok: true, data: { socket } });
    expect(answer.body.toString()).not.toContain(layout.socketPath);
    const owner = await open(layout.socketPath);
    expect((await owner.request('ping')).value.data.socket).toBe(layout.socketPath);
  });
});

/**
 * Clients (SPEC §4): capability tokens, scope, rate limiting of wrong guesses, expiry, removal and
 * per-client listeners — over real sockets.
 */
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RawClient, type RawFrame } from '../support/raw-client.js';
import { cleanupTestEnv, startTestProxy, tempDir, waitUntil, type ProxyLayout } from '../support/temp.js';

const now = (): number => Math.floor(Date.now() / 1000);
/** The proxy's clock: real time plus whatever a test adds. */
let clockOffsetMs = 0;
const clock = { now: () => Date.now() + clockOffsetMs };

let layout: ProxyLayout;
let owner: RawClient;
const opened: RawClient[] = [];

async function ok(c: RawClient, op: string, payload: Record<string, unknown> = {}): Promise<any> {
  const answer = await c.request(op, payload);
  expect(answer.value, `${op}: ${answer.body.toString()}`).toMatchObject({ v: 2, ok: true });
  return answer.value.data;
}
async function fails(c: RawClient, op: string, payload: Record<string, unknown>, code: string): Promise<RawFrame> {
  const answer = await c.request(op, payload);
  expect(answer.value, `${op}: ${answer.body.toString()}`).toMatchObject({ v: 2, ok: false, code });
  return answer;
}
async function asClient(token: string, socketPath = layout.socketPath): Promise<RawClient> {
  const c = await RawClient.open(socketPath, token);
  opened.push(c);
  return c;
}
async function handshakeWith(token: string | undefined, socketPath = layout.socketPath): Promise<RawFrame> {
  const c = await RawClient.connect(socketPath);
  opened.push(c);
  return c.handshake(token);
}

let boxToken: string;

beforeAll(async () => {
  ({ layout } = await startTestProxy({ clock }));
  owner = await RawClient.open(layout.socketPath);
  opened.push(owner);
  const t = { expiry: now() + 3600 };
  await ok(owner, 'save_token', { provider: 'gh', token: { access_token: 'AT-gh-default', refresh_token: 'RT-gh', ...t } });
  await ok(owner, 'save_token', { provider: 'gh', bucket: 'work', token: { access_token: 'AT-gh-work', ...t } });
  await ok(owner, 'save_token', { provider: 'gl', token: { access_token: 'AT-gl', ...t } });
  await ok(owner, 'set_api_key', { name: 'k1', key: 'KEY-ONE' });
  await ok(owner, 'set_api_key', { name: 'k2', key: 'KEY-TWO' });
  const added = await owner.request('client_add', { name: 'box', scopes: [{ provider: 'gh', bucket: 'default' }], api_keys: ['k1'] });
  expect(added.value).toMatchObject({ ok: true, data: { name: 'box' } });
  boxToken = added.value.data.capability_token;
});
afterAll(async () => {
  for (const c of opened.splice(0)) c.close();
  await cleanupTestEnv();
});

describe('client_add / client_list', () => {
  it('returns a capability token of exactly 64 lowercase hex characters', () => {
    expect(boxToken).toMatch(/^[0-9a-f]{64}$/);
  });

  it('client_list describes clients and never carries a token', async () => {
    const answer = await owner.request('client_list');
    expect(answer.value.data.clients).toContainEqual({
      name: 'box',
      scopes: [{ provider: 'gh', bucket: 'default' }],
      api_keys: ['k1'],
      allow_login: false,
      allow_refresh: false,
    });
    const bytes = answer.body.toString();
    expect(bytes).not.toContain(boxToken);
    expect(bytes).not.toMatch(/[0-9a-f]{64}/);
  });

  it('clients.json is 0600 and holds no plaintext token', async () => {
    const file = path.join(layout.dataDir, 'clients.json');
    expect((await fs.stat(file)).mode & 0o777).toBe(0o600);
    expect(await fs.readFile(file, 'utf8')).not.toContain(boxToken);
  });

  it('refuses a duplicate name, bad names and a relative socket path', async () => {
    await fails(owner, 'client_add', { name: 'box', scopes: [] }, 'INVALID_REQUEST');
    await fails(owner, 'client_add', { name: '..', scopes: [] }, 'INVALID_REQUEST');
    await fails(owner, 'client_add', { name: 'c', scopes: [{ provider: 'a/b' }] }, 'INVALID_REQUEST');
    await fails(owner, 'client_add', { name: 'c', scopes: [], socket: 'rel.sock' }, 'INVALID_REQUEST');
  });

  it('client_remove of an unknown client answers NOT_FOUND', async () => {
    await fails(owner, 'client_remove', { name: 'ghost' }, 'NOT_FOUND');
  });
});

describe('a client with its token', () => {
  it('handshakes as itself and is offered only client ops', async () => {
    const answer = await handshakeWith(boxToken);
    expect(answer.value).toMatchObject({ ok: true, data: { version: 2, client: 'box' } });
    expect(answer.value.data.ops).toContain('get_token');
    expect(answer.value.data.ops).not.toContain('save_token');
    expect(answer.value.data.ops).not.toContain('client_add');
  });

  it('gets in-scope tokens and keys', async () => {
    const c = await asClient(boxToken);
    const token = await c.request('get_token', { provider: 'gh' });
    expect(token.value.data).toMatchObject({ access_token: 'AT-gh-default', token_type: 'Bearer' });
    expect(token.body.toString()).not.toContain('RT-gh');
    expect(await ok(c, 'get_api_key', { name: 'k1' })).toEqual({ key: 'KEY-ONE' });
    expect(await ok(c, 'get_bucket_stats', { provider: 'gh' })).toMatchObject({ bucket: 'default' });
    expect(await ok(c, 'ping')).toMatchObject({ pid: process.pid });
  });

  it('gets FORBIDDEN out of scope whether or not the account exists (no existence oracle)', async () => {
    const c = await asClient(boxToken);
    const outOfScope = [
      { provider: 'gh', bucket: 'work' }, // exists
      { provider: 'gl' }, // exists
      { provider: 'zz' }, // does not exist
      { provider: 'gh', bucket: 'nope' }, // does not exist
    ];
    const messages = new Set<string>();
    for (const p of outOfScope) {
      const answer = await fails(c, 'get_token', p, 'FORBIDDEN');
      expect(answer.body.toString()).not.toContain('AT-');
      messages.add(answer.value.error.replace(/\S+\/\S+/, 'X'));
    }
    // Same answer, existing or not: only the account's name differs.
    expect(messages.size).toBe(1);
    await fails(c, 'get_api_key', { name: 'k2' }, 'FORBIDDEN');
    await fails(c, 'get_api_key', { name: 'k3-missing' }, 'FORBIDDEN');
    await fails(c, 'get_bucket_stats', { provider: 'gl' }, 'FORBIDDEN');
  });

  it.each([
    ['save_token', { provider: 'gh', token: { access_token: 'evil' } }],
    ['has_api_key', { name: 'k1' }],
    ['set_api_key', { name: 'k1', key: 'evil' }],
    ['remove_api_key', { name: 'k1' }],
    ['remove_token', { provider: 'gh' }],
    ['logout', { provider: 'gh' }],
    ['client_add', { name: 'evil', scopes: [{ provider: 'gl' }] }],
    ['client_list', {}],
    ['client_remove', { name: 'box' }],
    ['shutdown', {}],
  ])('gets FORBIDDEN for the owner-only op %s', async (op, payload) => {
    const c = await asClient(boxToken);
    await fails(c, op, payload, 'FORBIDDEN');
  });

  it('may not force refreshes or start logins without the rights', async () => {
    const c = await asClient(boxToken);
    await fails(c, 'refresh_token', { provider: 'gh' }, 'FORBIDDEN');
    await fails(c, 'oauth_initiate', { provider: 'gh' }, 'FORBIDDEN');
  });

  it('sees filtered lists: providers, status, buckets, keys', async () => {
    const c = await asClient(boxToken);
    expect(await ok(c, 'list_providers')).toEqual({ providers: ['gh'] });
    const status = await ok(c, 'status');
    expect(status.accounts.map((a: { provider: string; bucket: string }) => `${a.provider}/${a.bucket}`)).toEqual(['gh/default']);
    expect(await ok(c, 'list_buckets', { provider: 'gh' })).toEqual({ buckets: ['default'] });
    expect(await ok(c, 'list_buckets', { provider: 'gl' })).toEqual({ buckets: [] });
    expect(await ok(c, 'list_api_keys')).toEqual({ keys: ['k1'] });
  });

  it('the owner still sees everything', async () => {
    expect((await ok(owner, 'list_providers')).providers).toEqual(expect.arrayContaining(['gh', 'gl']));
    expect(await ok(owner, 'list_api_keys')).toEqual({ keys: ['k1', 'k2'] });
  });
});

describe('wrong tokens', () => {
  it('answers UNAUTHORIZED to a wrong or malformed token', async () => {
    const wrong = (boxToken[0] === 'a' ? 'b' : 'a') + boxToken.slice(1);
    expect((await handshakeWith(wrong)).value).toMatchObject({ ok: false, code: 'UNAUTHORIZED' });
    expect((await handshakeWith('not-hex')).value).toMatchObject({ ok: false, code: 'UNAUTHORIZED' });
  });

  it('rate limits the guessing process only: RATE_LIMITED with retryAfter after 10 failures, others unaffected', async () => {
    // The guesser is another process, so its pid differs from ours.
    const script = `
      const net = require('net');
      const frame = (v) => { const b = Buffer.from(JSON.stringify(v)); const h = Buffer.alloc(4); h.writeUInt32BE(b.length); return Buffer.concat([h, b]); };
      const s = net.connect(process.argv[1]);
      let buf = Buffer.alloc(0); const answers = [];
      const guess = () => s.write(frame({ v: 2, op: 'handshake', payload: { minVersion: 1, maxVersion: 2, capabilityToken: 'f'.repeat(64) } }));
      s.on('connect', guess);
      s.on('data', (d) => {
        buf = Buffer.concat([buf, d]);
        while (buf.length >= 4 && buf.length >= 4 + buf.readUInt32BE(0)) {
          const n = buf.readUInt32BE(0); answers.push(JSON.parse(buf.subarray(4, 4 + n).toString())); buf = buf.subarray(4 + n);
          if (answers.length < 12) guess(); else { console.log(JSON.stringify(answers)); s.end(); }
        }
      });`;
    const child = spawn(process.execPath, ['-e', script, layout.socketPath], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise((r) => child.once('exit', r));
    expect(code).toBe(0);
    const answers = JSON.parse(out) as Array<{ code: string; retryAfter?: number; v: number; ok: boolean }>;
    expect(answers.slice(0, 10).map((a) => a.code)).toEqual(Array(10).fill('UNAUTHORIZED'));
    for (const a of answers.slice(10)) {
      expect(a).toMatchObject({ v: 2, ok: false, code: 'RATE_LIMITED' });
      expect(a.retryAfter).toBeGreaterThan(0);
      expect(a.retryAfter).toBeLessThanOrEqual(60);
    }
    // The owner and the right token from this (another) process are not throttled.
    expect((await handshakeWith(undefined)).value).toMatchObject({ ok: true, data: { client: 'owner' } });
    expect((await handshakeWith(boxToken)).value).toMatchObject({ ok: true, data: { client: 'box' } });
    // And this process's own wrong guesses are counted separately: not yet limited.
    expect((await handshakeWith('e'.repeat(64))).value).toMatchObject({ ok: false, code: 'UNAUTHORIZED' });
  });
});

describe('expiry and removal', () => {
  it('refuses an expired client with UNAUTHORIZED', async () => {
    const added = await ok(owner, 'client_add', { name: 'shortlived', scopes: [{ provider: 'gh' }], ttl_seconds: 1 });
    expect(added.expires_at).toBeGreaterThanOrEqual(now());
    expect(added.expires_at).toBeLessThanOrEqual(now() + 2);
    expect((await handshakeWith(added.capability_token)).value).toMatchObject({ ok: true });
    clockOffsetMs += 2_000;
    try {
      expect((await handshakeWith(added.capability_token)).value).toMatchObject({ ok: false, code: 'UNAUTHORIZED' });
    } finally {
      clockOffsetMs -= 2_000;
    }
  });

  it('holds the TTL on an open connection too: the next op is UNAUTHORIZED and the connection closes', async () => {
    const added = await ok(owner, 'client_add', { name: 'midway', scopes: [{ provider: 'gh' }], ttl_seconds: 60 });
    const c = await asClient(added.capability_token);
    expect((await ok(c, 'get_token', { provider: 'gh' })).access_token).toBe('AT-gh-default');
    clockOffsetMs += 61_000;
    try {
      const answer = await fails(c, 'get_token', { provider: 'gh' }, 'UNAUTHORIZED');
      expect(answer.body.toString()).not.toContain('AT-gh');
      expect(await c.closesWithin(2000)).toBe(true);
    } finally {
      clockOffsetMs -= 61_000;
    }
  });

  it('closes a removed client\'s open connection and refuses its token afterwards', async () => {
    const added = await ok(owner, 'client_add', { name: 'doomed', scopes: [{ provider: 'gh' }] });
    const c = await asClient(added.capability_token);
    expect(await ok(c, 'ping')).toMatchObject({ pid: process.pid });
    expect(await ok(owner, 'client_remove', { name: 'doomed' })).toEqual({ removed: true });
    expect(await c.closesWithin(2000)).toBe(true);
    expect((await handshakeWith(added.capability_token)).value).toMatchObject({ ok: false, code: 'UNAUTHORIZED' });
  });
});

describe('a client listener (client_add socket)', () => {
  it('serves only that client\'s token, and client_remove removes its socket file', async () => {
    const socketPath = path.join(await tempDir(), 'box.sock');
    const added = await ok(owner, 'client_add', { name: 'listener', scopes: [{ provider: 'gh', bucket: 'work' }], socket: socketPath });
    expect(added.socket).toBe(socketPath);
    expect((await fs.stat(socketPath)).isSocket()).toBe(true);
    expect((await fs.stat(socketPath)).mode & 0o777).toBe(0o600);

    const c = await asClient(added.capability_token, socketPath);
    expect((await ok(c, 'get_token', { provider: 'gh', bucket: 'work' })).access_token).toBe('AT-gh-work');

    // No token (the owner's way in) and another client's token are refused on this socket.
    expect((await handshakeWith(undefined, socketPath)).value).toMatchObject({ ok: false, code: 'UNAUTHORIZED' });
    expect((await handshakeWith(boxToken, socketPath)).value).toMatchObject({ ok: false, code: 'UNAUTHORIZED' });
    // Its token still works on the owner socket, as a client.
    expect((await handshakeWith(added.capability_token)).value).toMatchObject({ ok: true, data: { client: 'listener' } });

    expect(await ok(owner, 'client_list')).toMatchObject({ clients: expect.arrayContaining([expect.objectContaining({ name: 'listener', socket: socketPath })]) });
    await ok(owner, 'client_remove', { name: 'listener' });
    expect(await c.closesWithin(2000)).toBe(true);
    await waitUntil(async () => !(await fs.stat(socketPath).then(() => true, () => false)));
  });

  it('refuses a socket in a directory that does not exist with a clear message, registering nothing', async () => {
    const socketPath = path.join(await tempDir(), 'missing', 'x.sock');
    const answer = await fails(owner, 'client_add', { name: 'nodir', scopes: [], socket: socketPath }, 'INVALID_REQUEST');
    expect(answer.value.error).toContain(socketPath);
    expect(answer.value.error).toMatch(/\((ENOENT|EACCES)\).*directory exists/); // Node says EACCES here
    expect((await ok(owner, 'client_list')).clients.map((x: { name: string }) => x.name)).not.toContain('nodir');
  });

  it('refuses a socket path over the sun_path limit with a clear message', async () => {
    const long = `/tmp/${'x'.repeat(120)}.sock`;
    const answer = await fails(owner, 'client_add', { name: 'toolong', scopes: [], socket: long }, 'INVALID_REQUEST');
    expect(answer.value.error).toMatch(/socket path is \d+ bytes/);
    expect((await ok(owner, 'client_list')).clients.map((x: { name: string }) => x.name)).not.toContain('toolong');
  });
});

/**
 * Sandbox clients end to end: every op against every kind of caller, a client process that has
 * only its socket path and token, abuse limits that never reach the owner, listeners that come
 * back after a restart, and an audit log that records everything and holds no secret byte.
 */
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { ProxyClient, resolvePaths, startProxy, type RunningProxy } from '@credproxy/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RawClient } from '../support/raw-client.js';
import { removeTempDirs, tempDir } from '../support/temp.js';

const SECRET_KEY = 'sk-live-the-key-value-1234567890';
const ACCESS = 'gh-access-token-abcdef';
const REFRESH = 'gh-refresh-token-secret-xyz';

let dir: string;
let proxy: RunningProxy;
let owner: ProxyClient;
const tokens: Record<string, string> = {};
const opened: RawClient[] = [];

function pathsIn(d: string, maxConnections?: number) {
  return resolvePaths({ env: { CREDPROXY_DATA_DIR: path.join(d, 'data'), CREDPROXY_CONFIG: path.join(d, 'c.json') }, socketPath: path.join(d, 'o.sock') });
}

async function raw(socketPath = proxy.socketPath): Promise<RawClient> {
  const c = await RawClient.connect(socketPath);
  opened.push(c);
  return c;
}

beforeAll(async () => {
  dir = await tempDir('cps-');
  proxy = await startProxy({ paths: pathsIn(dir) });
  owner = await ProxyClient.connect({ socketPath: proxy.socketPath });
  const expiry = Math.floor(Date.now() / 1000) + 3600;
  await owner.call('save_token', { provider: 'gh', token: { access_token: ACCESS, refresh_token: REFRESH, expiry } });
  await owner.call('save_token', { provider: 'other', token: { access_token: 'other-access', expiry } });
  await owner.call('set_api_key', { name: 'k', key: SECRET_KEY });
  await owner.call('set_api_key', { name: 'other-key', key: 'other-key-value' });
  for (const [name, scopes, keys] of [
    ['inscope', [{ provider: 'gh' }], ['k']],
    ['outscope', [{ provider: 'other' }], ['other-key']],
    ['expired', [{ provider: 'gh' }], ['k']],
    ['removed', [{ provider: 'gh' }], ['k']],
  ] as const) {
    const added = await owner.call('client_add', {
      name,
      scopes: scopes.map((s) => ({ ...s })),
      api_keys: [...keys],
      ...(name === 'expired' ? { ttl_seconds: 1 } : {}),
    });
    tokens[name] = added.capability_token;
  }
  await owner.call('client_remove', { name: 'removed' });
  await new Promise((r) => setTimeout(r, 2_100)); // let "expired" expire (TTLs round up to the next second)
});

afterAll(async () => {
  for (const c of opened) c.close();
  owner?.close();
  await proxy?.stop();
  await removeTempDirs();
});

type Expect = 'ok' | 'FORBIDDEN' | 'SESSION_NOT_FOUND' | 'NOT_OWNER_ERR';

/** Every op of SPEC §2 but handshake/cancel/shutdown (tested on their own), with a payload. */
const OPS: Array<[string, Record<string, unknown>, { inscope: Expect; outscope: Expect }]> = [
  ['ping', {}, { inscope: 'ok', outscope: 'ok' }],
  ['get_token', { provider: 'gh' }, { inscope: 'ok', outscope: 'FORBIDDEN' }],
  ['refresh_token', { provider: 'gh' }, { inscope: 'FORBIDDEN', outscope: 'FORBIDDEN' }],
  ['save_token', { provider: 'gh', bucket: 'x', token: { access_token: 'planted' } }, { inscope: 'FORBIDDEN', outscope: 'FORBIDDEN' }],
  ['remove_token', { provider: 'gh', bucket: 'nope' }, { inscope: 'FORBIDDEN', outscope: 'FORBIDDEN' }],
  ['logout', { provider: 'gh', bucket: 'nope' }, { inscope: 'FORBIDDEN', outscope: 'FORBIDDEN' }],
  ['status', {}, { inscope: 'ok', outscope: 'ok' }],
  ['list_providers', {}, { inscope: 'ok', outscope: 'ok' }],
  ['list_buckets', { provider: 'gh' }, { inscope: 'ok', outscope: 'ok' }],
  ['get_bucket_stats', { provider: 'gh' }, { inscope: 'ok', outscope: 'FORBIDDEN' }],
  ['get_api_key', { name: 'k' }, { inscope: 'ok', outscope: 'FORBIDDEN' }],
  ['list_api_keys', {}, { inscope: 'ok', outscope: 'ok' }],
  ['has_api_key', { name: 'k' }, { inscope: 'FORBIDDEN', outscope: 'FORBIDDEN' }],
  ['set_api_key', { name: 'planted', key: 'v' }, { inscope: 'FORBIDDEN', outscope: 'FORBIDDEN' }],
  ['remove_api_key', { name: 'absent' }, { inscope: 'FORBIDDEN', outscope: 'FORBIDDEN' }],
  ['oauth_initiate', { provider: 'gh' }, { inscope: 'FORBIDDEN', outscope: 'FORBIDDEN' }],
  ['oauth_exchange', { session_id: 'a'.repeat(32), code: 'c#s' }, { inscope: 'SESSION_NOT_FOUND', outscope: 'SESSION_NOT_FOUND' }],
  ['oauth_poll', { session_id: 'a'.repeat(32) }, { inscope: 'SESSION_NOT_FOUND', outscope: 'SESSION_NOT_FOUND' }],
  ['oauth_cancel', { session_id: 'a'.repeat(32) }, { inscope: 'SESSION_NOT_FOUND', outscope: 'SESSION_NOT_FOUND' }],
  ['client_add', { name: 'planted', scopes: [{ provider: 'gh' }] }, { inscope: 'FORBIDDEN', outscope: 'FORBIDDEN' }],
  ['client_list', {}, { inscope: 'FORBIDDEN', outscope: 'FORBIDDEN' }],
  ['client_remove', { name: 'absent' }, { inscope: 'FORBIDDEN', outscope: 'FORBIDDEN' }],
  ['shutdown', {}, { inscope: 'FORBIDDEN', outscope: 'FORBIDDEN' }],
];

function check(frame: { value: any }, want: Expect): void {
  if (want === 'ok') expect(frame.value, JSON.stringify(frame.value)).toMatchObject({ ok: true });
  else expect(frame.value, JSON.stringify(frame.value)).toMatchObject({ ok: false, code: want });
}

describe('every op × every caller', () => {
  it('the owner is never refused', async () => {
    const c = await raw();
    await c.handshake();
    for (const [op, payload] of OPS) {
      if (op === 'shutdown') continue;
      const f = await c.request(op, payload);
      expect(['FORBIDDEN', 'UNAUTHORIZED'], `${op}: ${JSON.stringify(f.value)}`).not.toContain(f.value.code);
    }
  });

  for (const who of ['inscope', 'outscope'] as const) {
    it(`a client ${who === 'inscope' ? 'in' : 'out of'} scope gets exactly its grant`, async () => {
      const c = await raw();
      expect((await c.handshake(tokens[who])).value).toMatchObject({ ok: true, data: { client: who } });
      for (const [op, payload, want] of OPS) check(await c.request(op, payload), want[who]);
    });
  }

  it('filters lists to the scope and leaks nothing else', async () => {
    const c = await raw();
    await c.handshake(tokens.outscope);
    expect((await c.request('list_providers', {})).value.data).toEqual({ providers: ['other'] });
    expect((await c.request('list_buckets', { provider: 'gh' })).value.data).toEqual({ buckets: [] });
    expect((await c.request('list_api_keys', {})).value.data).toEqual({ keys: ['other-key'] });
    expect((await c.request('status', {})).value.data.accounts.map((a: { provider: string }) => a.provider)).toEqual(['other']);
    // FORBIDDEN alike for an account that exists and one that does not.
    const a = (await c.request('get_token', { provider: 'gh' })).value;
    const b = (await c.request('get_token', { provider: 'ghost' })).value;
    expect([a.code, b.code]).toEqual(['FORBIDDEN', 'FORBIDDEN']);
  });

  for (const who of ['no token on a client socket', 'wrong token', 'expired client', 'removed client'] as const) {
    it(`${who}: the handshake is UNAUTHORIZED and no op runs`, async () => {
      const socket = path.join(dir, `l-${who.length}.sock`);
      if (who === 'no token on a client socket') {
        const added = await owner.call('client_add', { name: 'listener', scopes: [{ provider: 'gh' }], socket });
        tokens.listener = added.capability_token;
      }
      const c = await raw(who === 'no token on a client socket' ? socket : proxy.socketPath);
      const token = { 'no token on a client socket': undefined, 'wrong token': 'b'.repeat(64), 'expired client': tokens.expired, 'removed client': tokens.removed }[who];
      expect((await c.handshake(token)).value).toMatchObject({ ok: false, code: 'UNAUTHORIZED' });
      for (const [op, payload] of OPS) {
        const f = await c.request(op, payload);
        expect(f.value).toMatchObject({ ok: false, code: 'INVALID_REQUEST' });
        expect(f.value.error).toMatch(/handshake first/);
      }
    });
  }
});

describe('a client process with only its socket and token', () => {
  it('gets its token and nothing else', async () => {
    const socket = path.join(dir, 'agent.sock');
    const added = await owner.call('client_add', { name: 'agent', scopes: [{ provider: 'gh' }], socket });
    // Written from SPEC §2 only: no credproxy code in the child.
    const script = `
      const net = require('net');
      const s = net.connect(process.env.SOCK);
      let buf = Buffer.alloc(0); const frames = [];
      const send = (o) => { const b = Buffer.from(JSON.stringify(o)); const h = Buffer.alloc(4); h.writeUInt32BE(b.length); s.write(Buffer.concat([h, b])); };
      s.on('data', (c) => { buf = Buffer.concat([buf, c]);
        while (buf.length >= 4 && buf.length >= 4 + buf.readUInt32BE(0)) { frames.push(JSON.parse(buf.subarray(4, 4 + buf.readUInt32BE(0)))); buf = buf.subarray(4 + buf.readUInt32BE(0)); }
        if (frames.length === 5) { console.log(JSON.stringify(frames)); s.destroy(); } });
      s.on('connect', () => {
        send({ v: 2, op: 'handshake', payload: { minVersion: 1, maxVersion: 2, capabilityToken: process.env.TOKEN } });
        send({ v: 2, id: '1', op: 'get_token', payload: { provider: 'gh' } });
        send({ v: 2, id: '2', op: 'get_api_key', payload: { name: 'k' } });
        send({ v: 2, id: '3', op: 'get_token', payload: { provider: 'other' } });
        send({ v: 2, id: '4', op: 'client_list', payload: {} });
      });`;
    const child = spawn(process.execPath, ['-e', script], { env: { PATH: process.env.PATH, SOCK: socket, TOKEN: added.capability_token }, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    await new Promise((r) => child.once('exit', r));
    const frames = JSON.parse(out) as any[];
    const byId = Object.fromEntries(frames.filter((f) => f.id).map((f) => [f.id, f]));
    expect(frames[0]).toMatchObject({ ok: true, data: { version: 2, client: 'agent' } });
    expect(byId['1']).toMatchObject({ ok: true, data: { access_token: ACCESS, token_type: 'Bearer' } });
    expect(JSON.stringify(frames)).not.toContain(REFRESH);
    for (const id of ['2', '3', '4']) expect(byId[id]).toMatchObject({ ok: false, code: 'FORBIDDEN' });
  });
});

describe('limits that never reach the owner', () => {
  it('closes a connection that does not handshake in time', async () => {
    const d = await tempDir('cph-');
    const p = await startProxy({ paths: pathsIn(d), handshakeTimeoutMs: 200 });
    try {
      const idle = await RawClient.connect(p.socketPath);
      expect(await idle.closesWithin(2_000)).toBe(true);
      const prompt = await RawClient.connect(p.socketPath);
      expect((await prompt.handshake()).value.ok).toBe(true);
      expect(await prompt.closesWithin(500)).toBe(false);
      prompt.close();
    } finally {
      await p.stop();
    }
  });

  it('keeps the last connections for the owner when a client socket fills the cap', async () => {
    const d = await tempDir('cpc-');
    const p = await startProxy({ paths: pathsIn(d), maxConnections: 8 });
    const conns: RawClient[] = [];
    try {
      const o = await ProxyClient.connect({ socketPath: p.socketPath });
      const socket = path.join(d, 'c.sock');
      const added = await o.call('client_add', { name: 'hog', scopes: [], socket });
      o.close();
      await new Promise((r) => setTimeout(r, 50));
      // 8 connections, 2 kept for the owner: the client socket gets 6.
      for (let i = 0; i < 6; i++) {
        const c = await RawClient.connect(socket);
        conns.push(c);
        expect((await c.handshake(added.capability_token)).value.ok).toBe(true);
      }
      const refused = await RawClient.connect(socket);
      conns.push(refused);
      expect((await refused.next()).value).toMatchObject({ ok: false, code: 'RESOURCE_EXHAUSTED' });
      const ownerConn = await RawClient.connect(p.socketPath);
      conns.push(ownerConn);
      expect((await ownerConn.handshake()).value.ok).toBe(true);
    } finally {
      for (const c of conns) c.close();
      await p.stop();
    }
  });
});

describe('restart', () => {
  it('re-opens client sockets after a restart', async () => {
    const d = await tempDir('cpr-');
    let p = await startProxy({ paths: pathsIn(d) });
    const o = await ProxyClient.connect({ socketPath: p.socketPath });
    const socket = path.join(d, 'keep.sock');
    const added = await o.call('client_add', { name: 'keeper', scopes: [{ provider: 'gh' }], socket });
    o.close();
    await p.stop();
    p = await startProxy({ paths: pathsIn(d) });
    try {
      const c = await RawClient.connect(socket);
      expect((await c.handshake(added.capability_token)).value).toMatchObject({ ok: true, data: { client: 'keeper' } });
      c.close();
      expect((await fs.stat(socket)).mode & 0o777).toBe(0o600);
    } finally {
      await p.stop();
    }
  });
});

describe('audit log', () => {
  it('has a line per connect, handshake and op, with pid and outcome, and no secret bytes', async () => {
    const c = await raw();
    await c.handshake(tokens.inscope);
    await c.request('get_token', { provider: 'gh' });
    await c.request('get_api_key', { name: 'k' });
    await c.request('get_api_key', { name: 'other-key' });
    const guesser = await raw();
    await guesser.handshake('c'.repeat(64));
    await new Promise((r) => setTimeout(r, 300)); // batched writes
    const file = path.join(dir, 'data', 'audit.log');
    expect((await fs.stat(file)).mode & 0o777).toBe(0o600);
    const text = await fs.readFile(file, 'utf8');
    const lines = text.trim().split('\n').map((l) => JSON.parse(l));
    for (const event of ['connect', 'handshake', 'op']) expect(lines.some((l) => l.event === event)).toBe(true);
    expect(lines).toContainEqual(expect.objectContaining({ event: 'op', client: 'inscope', op: 'get_token', provider: 'gh', bucket: 'default', outcome: 'ok', pid: process.pid, ms: expect.any(Number) }));
    expect(lines).toContainEqual(expect.objectContaining({ event: 'op', client: 'inscope', op: 'get_api_key', outcome: 'FORBIDDEN' }));
    expect(lines).toContainEqual(expect.objectContaining({ event: 'handshake', outcome: 'UNAUTHORIZED' }));
    for (const secret of [SECRET_KEY, ACCESS, REFRESH, 'other-key-value', ...Object.values(tokens)]) {
      expect(text.includes(secret), `audit log holds a secret (${secret.slice(0, 6)}…)`).toBe(false);
    }
  });
});

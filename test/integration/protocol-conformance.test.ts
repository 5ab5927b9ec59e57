/**
 * SPEC §2 on the wire, byte for byte, with a raw client that shares no code with credproxy.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode, FileTokenStore, type AccountKey, type AccountRecord, type TokenStore } from '../../packages/core/src/index.js';
import { frameBytes, jsonFrame, RawClient, type RawFrame } from '../support/raw-client.js';
import { cleanupTestEnv, startTestProxy, tempDir } from '../support/temp.js';

const CODES = new Set(Object.values(ErrorCode));
const MiB4 = 4 * 1024 * 1024;

/** Every error frame: v:2, ok:false, a code from the table, an error string — and `code` as asked. */
function expectError(frame: RawFrame, code: string, id?: string | null): void {
  const v = frame.value;
  expect(v, frame.body.toString()).toMatchObject({ v: 2, ok: false, code });
  expect(CODES.has(v.code)).toBe(true);
  expect(typeof v.error).toBe('string');
  expect(v.error.length).toBeGreaterThan(0);
  if (id !== undefined) expect(v.id).toBe(id);
}

/** A store whose get() waits while held, so requests stay in flight as long as a test wants. */
class GatedStore implements TokenStore {
  readonly inner: FileTokenStore;
  #gate: Promise<void> | undefined;
  #open: (() => void) | undefined;
  waiting = 0;
  failWith: Error | undefined;
  constructor(dir: string) {
    this.inner = new FileTokenStore(dir);
  }
  hold(): void {
    this.#gate = new Promise((resolve) => (this.#open = resolve));
  }
  release(): void {
    this.#open?.();
    this.#gate = undefined;
  }
  async get(key: AccountKey): Promise<AccountRecord | undefined> {
    if (this.failWith) throw this.failWith;
    if (this.#gate) {
      this.waiting += 1;
      await this.#gate;
      this.waiting -= 1;
    }
    return this.inner.get(key);
  }
  put(record: AccountRecord): Promise<void> {
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

const waitFor = async (check: () => boolean, ms = 3000): Promise<void> => {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
};

let socketPath: string;
let store: GatedStore;
const open: RawClient[] = [];

async function connect(): Promise<RawClient> {
  const c = await RawClient.connect(socketPath);
  open.push(c);
  return c;
}
async function owner(): Promise<RawClient> {
  const c = await RawClient.open(socketPath);
  open.push(c);
  return c;
}

beforeAll(async () => {
  store = new GatedStore(`${await tempDir()}/tokens`);
  ({
    layout: { socketPath },
  } = await startTestProxy({ tokenStore: store }));
});
afterEach(() => {
  store.release();
  store.failWith = undefined;
  for (const c of open.splice(0)) c.close();
});
afterAll(cleanupTestEnv);

describe('handshake', () => {
  it('is answered first, with v2, ok, data.version 2 and server credproxy/<semver>; no id when none was sent', async () => {
    const c = await connect();
    const answer = await c.handshake();
    expect(c.frames).toHaveLength(0);
    expect(answer.value).toMatchObject({ v: 2, ok: true, data: { version: 2, client: 'owner' } });
    expect(answer.value.data.server).toMatch(/^credproxy\/\d+\.\d+\.\d+/);
    expect(answer.value.data.ops).toEqual(expect.arrayContaining(['get_token', 'get_api_key', 'cancel', 'handshake']));
    expect(answer.value).not.toHaveProperty('id');
  });

  it('echoes the id when the handshake carries one', async () => {
    const c = await connect();
    const answer = await c.handshake(undefined, 'hs-1');
    expect(answer.value).toMatchObject({ id: 'hs-1', ok: true, data: { version: 2 } });
  });

  it('answers the handshake before anything sent behind it in the same chunk', async () => {
    const c = await connect();
    c.write(Buffer.concat([
      jsonFrame({ v: 2, op: 'handshake', payload: { minVersion: 1, maxVersion: 2 } }),
      jsonFrame({ v: 2, id: 'p', op: 'ping', payload: {} }),
    ]));
    const first = await c.next();
    expect(first.value).toMatchObject({ ok: true, data: { version: 2 } });
    expect((await c.next()).value).toMatchObject({ id: 'p', ok: true });
  });

  it('checks the version before the token: UNKNOWN_VERSION even with a bad capabilityToken', async () => {
    const c = await connect();
    c.send({ v: 2, id: 'h', op: 'handshake', payload: { minVersion: 3, maxVersion: 4, capabilityToken: 'zz-not-a-token' } });
    expectError(await c.next(), 'UNKNOWN_VERSION', 'h');
    // Still usable: a correct handshake afterwards works.
    expect((await c.handshake()).value.ok).toBe(true);
  });

  it('refuses a second handshake on the same connection', async () => {
    const c = await owner();
    c.send({ v: 2, id: 'again', op: 'handshake', payload: { minVersion: 1, maxVersion: 2 } });
    expectError(await c.next(), 'INVALID_REQUEST', 'again');
  });

  it('answers INVALID_REQUEST ("handshake first") to an op before the handshake and stays open', async () => {
    const c = await connect();
    c.send({ v: 2, id: 'early', op: 'ping', payload: {} });
    const answer = await c.next();
    expectError(answer, 'INVALID_REQUEST', 'early');
    expect(answer.value.error).toMatch(/handshake/);
    expect(c.isClosed).toBe(false);
    expect((await c.handshake()).value.ok).toBe(true);
    expect((await c.request('ping')).value.ok).toBe(true);
  });

  it('survives hostile version values that break String() (the proxy must not crash)', async () => {
    const c = await connect();
    c.write(frameBytes('{"v":2,"id":"h","op":"handshake","payload":{"minVersion":{"toString":1},"maxVersion":[{"toString":1}]}}'));
    expectError(await c.next(), 'UNKNOWN_VERSION', 'h');
    expect((await c.handshake()).value.ok).toBe(true);
    c.write(frameBytes('{"v":{"toString":1,"valueOf":1},"id":"x","op":"ping","payload":{}}'));
    expectError(await c.next(), 'UNKNOWN_VERSION', 'x');
    // The proxy is still up for everyone.
    expect((await (await owner()).request('ping')).value.ok).toBe(true);
  });
});

describe('ops and envelopes', () => {
  it('answers UNKNOWN_OP to an unknown op and keeps the connection working', async () => {
    const c = await owner();
    expectError(await c.request('no_such_op'), 'UNKNOWN_OP');
    expect((await c.request('ping')).value).toMatchObject({ ok: true, data: { pid: process.pid } });
  });

  it.each(['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf', 'prototype'])('treats %s as an unknown op', async (op) => {
    const c = await owner();
    expectError(await c.request(op), 'UNKNOWN_OP');
  });

  it('answers bad JSON with id:null and keeps the connection open', async () => {
    const c = await owner();
    c.write(frameBytes('{"v":2,"id":"x","op":'));
    const answer = await c.next();
    expectError(answer, 'INVALID_REQUEST', null);
    expect(answer.value).toHaveProperty('id', null);
    expect((await c.request('ping')).value.ok).toBe(true);
  });

  it('answers bad UTF-8 and a zero-length frame with id:null and keeps the connection open', async () => {
    const c = await owner();
    c.write(frameBytes(Buffer.from([0x7b, 0xff, 0x7d])));
    expectError(await c.next(), 'INVALID_REQUEST', null);
    c.write(frameBytes(''));
    expectError(await c.next(), 'INVALID_REQUEST', null);
    expect((await c.request('ping')).value.ok).toBe(true);
  });

  it.each(['null', '42', '"ping"', '[1,2]', 'true'])('answers non-object JSON %s with INVALID_REQUEST id:null', async (body) => {
    const c = await owner();
    c.write(frameBytes(body));
    expectError(await c.next(), 'INVALID_REQUEST', null);
    expect((await c.request('ping')).value.ok).toBe(true);
  });

  it('refuses requests without a usable id, with a wrong v, or with a non-object payload', async () => {
    const c = await owner();
    c.send({ v: 2, op: 'ping', payload: {} });
    expectError(await c.next(), 'INVALID_REQUEST', null);
    c.send({ v: 2, id: '', op: 'ping', payload: {} });
    expectError(await c.next(), 'INVALID_REQUEST', null);
    c.send({ v: 1, id: 'v1', op: 'ping', payload: {} });
    expectError(await c.next(), 'UNKNOWN_VERSION', 'v1');
    c.send({ v: 2, id: 'pl', op: 'ping', payload: [] });
    expectError(await c.next(), 'INVALID_REQUEST', 'pl');
  });

  it('refuses a declared length of 4 MiB + 1 with INVALID_REQUEST id:null, then closes', async () => {
    const c = await owner();
    const header = Buffer.alloc(4);
    header.writeUInt32BE(MiB4 + 1, 0);
    c.write(header);
    expectError(await c.next(), 'INVALID_REQUEST', null);
    expect(await c.closesWithin(2000)).toBe(true);
  });

  it('accepts a frame of exactly 4 MiB', async () => {
    const c = await owner();
    const prefix = '{"v":2,"id":"big","op":"ping","payload":{"pad":"';
    const suffix = '"}}';
    const body = prefix + 'a'.repeat(MiB4 - prefix.length - suffix.length) + suffix;
    expect(Buffer.byteLength(body)).toBe(MiB4);
    c.write(frameBytes(body));
    expect((await c.answer('big', 10_000)).value).toMatchObject({ ok: true, data: { pid: process.pid } });
  });
});

describe('slow peers', () => {
  it('closes a connection whose frame stays incomplete past partialFrameTimeoutMs', async () => {
    const { layout } = await startTestProxy({ partialFrameTimeoutMs: 150 });
    const c = await RawClient.open(layout.socketPath);
    open.push(c);
    c.write(jsonFrame({ v: 2, id: 'p', op: 'ping', payload: {} }).subarray(0, 10));
    expect(await c.closesWithin(2000)).toBe(true);
  });

  it('does not close a busy peer whose frames each complete in time, though one is always incomplete', async () => {
    const { layout } = await startTestProxy({ partialFrameTimeoutMs: 300 });
    const c = await RawClient.open(layout.socketPath);
    open.push(c);
    const stream = Buffer.concat(Array.from({ length: 12 }, (_, i) => jsonFrame({ v: 2, id: `s${i}`, op: 'ping', payload: {} })));
    // Every write ends in the middle of a frame; each frame completes within ~60 ms.
    const step = Math.floor(stream.length / 12) + 7;
    for (let at = 0; at < stream.length; at += step) {
      c.write(stream.subarray(at, at + step));
      await new Promise((r) => setTimeout(r, 60));
    }
    for (let i = 0; i < 12; i++) expect((await c.answer(`s${i}`)).value.ok).toBe(true);
    expect(c.isClosed).toBe(false);
  });

  it('closes a slowloris connection after the real 5 s default', async () => {
    const c = await owner();
    const started = Date.now();
    c.write(Buffer.from([0, 0, 0, 20, 0x7b]));
    expect(await c.closesWithin(8000)).toBe(true);
    expect(Date.now() - started).toBeGreaterThanOrEqual(4500);
  }, 15_000);
});

describe('concurrency, duplicates and cancel', () => {
  async function sixteenInFlight(c: RawClient): Promise<void> {
    store.hold();
    for (let i = 0; i < 16; i++) c.send({ v: 2, id: `slow${i}`, op: 'get_token', payload: { provider: 'gh', bucket: `b${i}` } });
    await waitFor(() => store.waiting === 16);
  }

  it('refuses the 17th request in flight with RESOURCE_EXHAUSTED, then serves again once answers are out', async () => {
    const c = await owner();
    await sixteenInFlight(c);
    expectError(await c.request('ping'), 'RESOURCE_EXHAUSTED');
    store.release();
    for (let i = 0; i < 16; i++) expectError(await c.answer(`slow${i}`), 'NOT_FOUND', `slow${i}`);
    expect((await c.request('ping')).value.ok).toBe(true);
  });

  it('limits per connection: another connection is not affected', async () => {
    const c = await owner();
    await sixteenInFlight(c);
    const other = await owner();
    expect((await other.request('ping')).value.ok).toBe(true);
  });

  it('still accepts cancel when 16 are in flight', async () => {
    const c = await owner();
    await sixteenInFlight(c);
    c.send({ v: 2, id: 'c1', op: 'cancel', payload: { targetId: 'slow3' } });
    expectError(await c.answer('slow3'), 'CANCELLED', 'slow3');
    expect((await c.answer('c1')).value).toEqual({ v: 2, id: 'c1', ok: true, data: { cancelled: true } });
    // The cancelled one no longer counts: one more fits.
    c.send({ v: 2, id: 'slow16', op: 'get_token', payload: { provider: 'gh' } });
    await waitFor(() => store.waiting === 17);
  });

  it('refuses a duplicate in-flight id with INVALID_REQUEST and leaves the first alone', async () => {
    const c = await owner();
    store.hold();
    c.send({ v: 2, id: 'dup', op: 'get_token', payload: { provider: 'gh' } });
    await waitFor(() => store.waiting === 1);
    c.send({ v: 2, id: 'dup', op: 'ping', payload: {} });
    const answer = await c.answer('dup');
    expectError(answer, 'INVALID_REQUEST', 'dup');
    store.release();
    expectError(await c.answer('dup'), 'NOT_FOUND', 'dup');
    // Once answered, the id may be used again.
    expect((await (c.send({ v: 2, id: 'dup', op: 'ping', payload: {} }), c.answer('dup'))).value.ok).toBe(true);
  });

  it('cancels an in-flight request: the target answers CANCELLED, cancel answers {cancelled:true}, nothing more comes', async () => {
    const c = await owner();
    store.hold();
    c.send({ v: 2, id: 't', op: 'get_token', payload: { provider: 'gh' } });
    await waitFor(() => store.waiting === 1);
    c.send({ v: 2, id: 'c', op: 'cancel', payload: { targetId: 't' } });
    expectError(await c.answer('t'), 'CANCELLED', 't');
    expect((await c.answer('c')).value).toEqual({ v: 2, id: 'c', ok: true, data: { cancelled: true } });
    store.release();
    await new Promise((r) => setTimeout(r, 50));
    expect(c.frames.filter((f) => f.value?.id === 't')).toEqual([]);
  });

  it('answers {cancelled:false} for an unknown or finished id', async () => {
    const c = await owner();
    expect((await c.request('cancel', { targetId: 'nope' })).value).toMatchObject({ ok: true, data: { cancelled: false } });
    c.send({ v: 2, id: 'done', op: 'ping', payload: {} });
    await c.answer('done');
    expect((await c.request('cancel', { targetId: 'done' })).value).toMatchObject({ ok: true, data: { cancelled: false } });
    expectError(await c.request('cancel', {}), 'INVALID_REQUEST');
  });

  it('cannot cancel another connection\'s request', async () => {
    const a = await owner();
    const b = await owner();
    store.hold();
    a.send({ v: 2, id: 'mine', op: 'get_token', payload: { provider: 'gh' } });
    await waitFor(() => store.waiting === 1);
    expect((await b.request('cancel', { targetId: 'mine' })).value.data).toEqual({ cancelled: false });
    store.release();
    expectError(await a.answer('mine'), 'NOT_FOUND');
  });
});

describe('limits', () => {
  it('answers RESPONSE_TOO_LARGE when an answer would exceed the frame limit, and keeps serving', async () => {
    const { layout } = await startTestProxy({ maxFrameBytes: 2048 });
    const c = await RawClient.open(layout.socketPath);
    open.push(c);
    for (let i = 0; i < 40; i++) {
      const answer = await c.request('save_token', { provider: 'big', bucket: `bucket-with-a-long-name-${i}`, token: { access_token: 'x', expiry: 2_000_000_000 } });
      expect(answer.value.ok).toBe(true);
    }
    expectError(await c.request('status'), 'RESPONSE_TOO_LARGE');
    expect((await c.request('ping')).value.ok).toBe(true);
  });

  it('caps connections: one over maxConnections gets RESOURCE_EXHAUSTED and is closed', async () => {
    const { layout } = await startTestProxy({ maxConnections: 2 });
    const a = await RawClient.open(layout.socketPath);
    const b = await RawClient.open(layout.socketPath);
    const extra = await RawClient.connect(layout.socketPath);
    open.push(a, b, extra);
    expectError(await extra.next(), 'RESOURCE_EXHAUSTED', null);
    expect(await extra.closesWithin(2000)).toBe(true);
    a.close();
    await a.closed;
    await new Promise((r) => setTimeout(r, 50)); // the proxy sees the hang-up a moment later
    const again = await RawClient.open(layout.socketPath);
    open.push(again);
    expect((await again.request('ping')).value.ok).toBe(true);
  });

  it('survives a peer that hangs up with requests in flight', async () => {
    const c = await owner();
    store.hold();
    for (let i = 0; i < 5; i++) c.send({ v: 2, id: `gone${i}`, op: 'get_token', payload: { provider: 'gh' } });
    await waitFor(() => store.waiting === 5);
    c.close();
    await c.closed;
    store.release();
    await new Promise((r) => setTimeout(r, 50));
    expect((await (await owner()).request('ping')).value.ok).toBe(true);
  });
});

describe('errors never leak internals', () => {
  it('answers INTERNAL_ERROR with a generic message: no secret, path or stack in the bytes', async () => {
    const c = await owner();
    const secret = new Error('EACCES: /home/alice/.local/share/credproxy/tokens/gh/default.json sk-live-SECRET-4242');
    store.failWith = secret;
    const answer = await c.request('get_token', { provider: 'gh' });
    expectError(answer, 'INTERNAL_ERROR');
    const bytes = c.received.toString('utf8');
    for (const leak of ['sk-live', 'SECRET', '/home/alice', 'default.json', 'EACCES', 'at ', '.ts:', '.js:']) {
      expect(bytes).not.toContain(leak);
    }
  });
});

/**
 * The owner's ops over a real socket (SPEC §2), and the files they leave (SPEC §1).
 */
import { promises as fs } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CREDPROXY_VERSION, encodeFrame, ProxyClient } from '../../packages/core/src/index.js';
import { RawClient, type RawFrame } from '../support/raw-client.js';
import { cleanupTestEnv, startTestProxy, type ProxyLayout } from '../support/temp.js';

let layout: ProxyLayout;
let c: RawClient;
const now = (): number => Math.floor(Date.now() / 1000);

beforeAll(async () => {
  ({ layout } = await startTestProxy());
  c = await RawClient.open(layout.socketPath);
});
afterAll(async () => {
  c.close();
  await cleanupTestEnv();
});

async function ok(op: string, payload: Record<string, unknown> = {}): Promise<any> {
  const answer = await c.request(op, payload);
  expect(answer.value, `${op}: ${answer.body.toString()}`).toMatchObject({ v: 2, ok: true });
  return answer.value.data;
}
async function fails(op: string, payload: Record<string, unknown>, code: string): Promise<RawFrame> {
  const answer = await c.request(op, payload);
  expect(answer.value, `${op}: ${answer.body.toString()}`).toMatchObject({ v: 2, ok: false, code });
  expect(typeof answer.value.error).toBe('string');
  return answer;
}
const mode = async (file: string): Promise<number> => (await fs.stat(file)).mode & 0o777;

describe('ping', () => {
  it('answers {version, pid, socket}', async () => {
    expect(await ok('ping')).toEqual({ version: CREDPROXY_VERSION, pid: process.pid, socket: layout.socketPath });
  });
});

describe('API keys', () => {
  it('set, get, has, list (names only), remove', async () => {
    expect(await ok('set_api_key', { name: 'openai', key: 'sk-KEY-VALUE-1' })).toEqual({ saved: true });
    expect(await ok('set_api_key', { name: 'anthropic', key: 'sk-KEY-VALUE-2' })).toEqual({ saved: true });
    expect(await ok('get_api_key', { name: 'openai' })).toEqual({ key: 'sk-KEY-VALUE-1' });
    expect(await ok('has_api_key', { name: 'openai' })).toEqual({ exists: true });
    expect(await ok('has_api_key', { name: 'nope' })).toEqual({ exists: false });

    const list = await c.request('list_api_keys');
    expect(list.value.data).toEqual({ keys: ['anthropic', 'openai'] });
    expect(list.body.toString()).not.toContain('sk-KEY-VALUE');

    expect(await ok('set_api_key', { name: 'openai', key: 'sk-KEY-VALUE-3' })).toEqual({ saved: true });
    expect(await ok('get_api_key', { name: 'openai' })).toEqual({ key: 'sk-KEY-VALUE-3' });

    expect(await ok('remove_api_key', { name: 'anthropic' })).toEqual({ removed: true });
    expect(await ok('remove_api_key', { name: 'anthropic' })).toEqual({ removed: false });
    expect(await ok('list_api_keys')).toEqual({ keys: ['openai'] });
  });

  it('answers NOT_FOUND for a missing key, naming the fix', async () => {
    const answer = await fails('get_api_key', { name: 'missing' }, 'NOT_FOUND');
    expect(answer.value.error).toContain('credproxy key set missing');
  });

  it('refuses bad names and empty keys', async () => {
    await fails('set_api_key', { name: '../x', key: 'v' }, 'INVALID_REQUEST');
    await fails('set_api_key', { name: 'x', key: '' }, 'INVALID_REQUEST');
    await fails('get_api_key', { name: '..' }, 'INVALID_REQUEST');
  });

  it('keeps each key in a 0600 file', async () => {
    await ok('set_api_key', { name: 'filecheck', key: 'v' });
    const file = path.join(layout.dataDir, 'keys', 'filecheck.key');
    expect(await mode(file)).toBe(0o600);
    // Encrypted at rest (SPEC §8): sealed, never the key itself.
    expect(await fs.readFile(file, 'utf8')).toMatch(/^credproxy-sealed:v1:[0-9a-f]{16}:/);
  });
});

describe('tokens', () => {
  it('save_token then get_token serves the token without its secrets', async () => {
    const expiry = now() + 3600;
    expect(
      await ok('save_token', {
        provider: 'gh',
        token: {
          access_token: 'AT-gh-1',
          refresh_token: 'RT-SECRET-gh',
          expiry,
          token_type: 'bearer',
          scope: 'repo read:org',
          id_token: 'ID-gh',
          account_id: 'acct-42',
          resource_url: 'https://api.example.com',
        },
      }),
    ).toEqual({ saved: true });
    const answer = await c.request('get_token', { provider: 'gh' });
    expect(answer.value).toMatchObject({ v: 2, ok: true });
    expect(answer.value.data).toEqual({
      access_token: 'AT-gh-1',
      token_type: 'Bearer',
      expiry,
      scope: 'repo read:org',
      id_token: 'ID-gh',
      account_id: 'acct-42',
      resource_url: 'https://api.example.com',
    });
    expect(answer.body.toString()).not.toContain('RT-SECRET');
    expect(answer.body.toString()).not.toContain('refresh_token');
  });

  it('serves expiry in unix seconds, also when it was saved in milliseconds or not at all', async () => {
    const expiry = now() + 7200;
    await ok('save_token', { provider: 'ms', token: { access_token: 'AT-ms', expiry: expiry * 1000 } });
    expect((await ok('get_token', { provider: 'ms' })).expiry).toBe(expiry);
    await ok('save_token', { provider: 'noexp', token: { access_token: 'AT-noexp' } });
    const served = await ok('get_token', { provider: 'noexp' });
    expect(served.token_type).toBe('Bearer');
    expect(Number.isInteger(served.expiry)).toBe(true);
    expect(served.expiry).toBeGreaterThan(now());
    expect(served.expiry).toBeLessThan(now() + 10 * 86_400);
  });

  it('keeps buckets apart', async () => {
    await ok('save_token', { provider: 'gh', bucket: 'work', token: { access_token: 'AT-gh-work', expiry: now() + 3600 } });
    expect((await ok('get_token', { provider: 'gh', bucket: 'work' })).access_token).toBe('AT-gh-work');
    expect((await ok('get_token', { provider: 'gh', bucket: 'default' })).access_token).toBe('AT-gh-1');
  });

  it('get_token on a missing account answers NOT_FOUND (as llxprt expects) naming `credproxy login`', async () => {
    const answer = await fails('get_token', { provider: 'nobody' }, 'NOT_FOUND');
    expect(answer.value.error).toContain('credproxy login nobody');
    const bucket = await fails('get_token', { provider: 'gh', bucket: 'other' }, 'NOT_FOUND');
    expect(bucket.value.error).toContain('credproxy login gh --bucket other');
  });

  it('get_token on an expired token it cannot refresh asks for a new login', async () => {
    await ok('save_token', { provider: 'old', token: { access_token: 'AT-old', expiry: now() - 100 } });
    const answer = await fails('get_token', { provider: 'old' }, 'REAUTH_REQUIRED');
    expect(answer.value.error).toContain('credproxy login old');
    expect(answer.body.toString()).not.toContain('AT-old');
  });

  it('remove_token forgets the account', async () => {
    await ok('save_token', { provider: 'tmp', token: { access_token: 'AT-tmp', expiry: now() + 3600 } });
    expect(await ok('remove_token', { provider: 'tmp' })).toEqual({ removed: true });
    await fails('get_token', { provider: 'tmp' }, 'NOT_FOUND');
    expect(await ok('remove_token', { provider: 'tmp' })).toEqual({ removed: false });
  });

  it('logout of an account that does not exist answers NOT_LOGGED_IN', async () => {
    await fails('logout', { provider: 'ghost', revoke: false }, 'NOT_LOGGED_IN');
  });

  it('refuses a token without an access_token, and bad names', async () => {
    await fails('save_token', { provider: 'gh', token: { refresh_token: 'x' } }, 'INVALID_REQUEST');
    await fails('save_token', { provider: 'a/b', token: { access_token: 'x' } }, 'INVALID_REQUEST');
    await fails('get_token', { provider: 'gh', bucket: '.' }, 'INVALID_REQUEST');
  });

  it('keeps each token in a 0600 file', async () => {
    const file = path.join(layout.dataDir, 'tokens', 'gh', 'default.json');
    expect(await mode(file)).toBe(0o600);
  });
});

describe('status and listings', () => {
  beforeAll(async () => {
    await ok('save_token', { provider: 'st', bucket: 'valid', token: { access_token: 'AT-st-v', expiry: now() + 3600, scope: 's1' } });
    await ok('save_token', { provider: 'st', bucket: 'expiring', token: { access_token: 'AT-st-e', expiry: now() + 120 } });
    await ok('save_token', { provider: 'st', bucket: 'expired', token: { access_token: 'AT-st-x', expiry: now() - 60 } });
  });

  it('status reports valid / expiring / expired with expiry and scope, never a token', async () => {
    const answer = await c.request('status');
    const accounts = (answer.value.data.accounts as Array<Record<string, unknown>>).filter((a) => a.provider === 'st');
    const byBucket = Object.fromEntries(accounts.map((a) => [a.bucket, a]));
    expect(byBucket.valid).toMatchObject({ provider: 'st', bucket: 'valid', state: 'valid', scope: 's1' });
    expect(byBucket.expiring).toMatchObject({ state: 'expiring' });
    expect(byBucket.expired).toMatchObject({ state: 'expired' });
    for (const a of accounts) expect(typeof a.expiry).toBe('number');
    expect(answer.body.toString()).not.toMatch(/AT-|RT-|access_token|refresh_token/);
  });

  it('list_providers lists providers with accounts, sorted, names only', async () => {
    const { providers } = await ok('list_providers');
    expect(providers).toEqual([...providers].sort());
    expect(providers).toEqual(expect.arrayContaining(['gh', 'st']));
    for (const p of providers) expect(typeof p).toBe('string');
  });

  it('list_buckets lists a provider\'s buckets; [] for an unknown provider', async () => {
    expect((await ok('list_buckets', { provider: 'st' })).buckets.sort()).toEqual(['expired', 'expiring', 'valid']);
    expect(await ok('list_buckets', { provider: 'unknown' })).toEqual({ buckets: [] });
  });

  it('get_bucket_stats counts get_token requests per bucket', async () => {
    await ok('save_token', { provider: 'cnt', bucket: 'a', token: { access_token: 'x', expiry: now() + 3600 } });
    await ok('save_token', { provider: 'cnt', bucket: 'b', token: { access_token: 'y', expiry: now() + 3600 } });
    for (let i = 0; i < 3; i++) await ok('get_token', { provider: 'cnt', bucket: 'a' });
    await ok('get_token', { provider: 'cnt', bucket: 'b' });
    const a = await ok('get_bucket_stats', { provider: 'cnt', bucket: 'a' });
    expect(a).toMatchObject({ bucket: 'a', requestCount: 3, percentage: 75 });
    expect(a.lastUsed).toBeGreaterThan(0);
    expect(await ok('get_bucket_stats', { provider: 'cnt', bucket: 'b' })).toMatchObject({ bucket: 'b', requestCount: 1, percentage: 25 });
    expect(await ok('get_bucket_stats', { provider: 'cnt' })).toEqual({ bucket: 'default', requestCount: 0, percentage: 0 });
  });
});

describe('the typed client against the real proxy', () => {
  it('does the same ops through ProxyClient', async () => {
    const pc = await ProxyClient.connect({ socketPath: layout.socketPath });
    try {
      expect(pc.handshake).toMatchObject({ version: 2, client: 'owner' });
      await pc.call('set_api_key', { name: 'typed', key: 'v1' });
      expect(await pc.call('get_api_key', { name: 'typed' })).toEqual({ key: 'v1' });
      await expect(pc.call('get_token', { provider: 'nobody' })).rejects.toMatchObject({ code: 'NOT_FOUND' });
      expect((await pc.call('ping', {})).pid).toBe(process.pid);
    } finally {
      pc.close();
    }
  });
});

describe('files', () => {
  it('the audit log is 0600 and holds no secret bytes', async () => {
    const file = path.join(layout.dataDir, 'audit.log');
    let text = '';
    for (let i = 0; i < 100 && !text.includes('get_token'); i++) {
      text = await fs.readFile(file, 'utf8').catch(() => '');
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(text).toContain('get_token');
    expect(await mode(file)).toBe(0o600);
    expect(text).not.toMatch(/AT-|RT-SECRET|sk-KEY-VALUE|ID-gh/);
  });
});

describe('a peer that half-closes after its requests', () => {
  /** Write raw frames, end our side at once, and collect every answer until the proxy closes. */
  function halfClose(frames: object[]): Promise<{ answers: any[]; closedMs: number }> {
    return new Promise((resolve, reject) => {
      const t0 = Date.now();
      const sock = net.connect(layout.socketPath);
      let buf = Buffer.alloc(0);
      const answers: any[] = [];
      sock.on('data', (chunk) => {
        buf = Buffer.concat([buf, chunk]);
        while (buf.length >= 4 && buf.length >= 4 + buf.readUInt32BE(0)) {
          answers.push(JSON.parse(buf.subarray(4, 4 + buf.readUInt32BE(0)).toString()));
          buf = buf.subarray(4 + buf.readUInt32BE(0));
        }
      });
      sock.on('error', reject);
      sock.on('close', () => resolve({ answers, closedMs: Date.now() - t0 }));
      sock.end(Buffer.concat(frames.map((f) => encodeFrame(f))));
    });
  }

  it('gets the answer of an op still running at its EOF (a disk write), then the proxy closes', async () => {
    const { answers } = await halfClose([
      { v: 2, op: 'handshake', payload: { minVersion: 1, maxVersion: 2 } },
      { v: 2, id: 'k', op: 'set_api_key', payload: { name: 'half-closed', key: 'sk-HALF-CLOSED' } },
    ]);
    expect(answers.map((a) => a.ok)).toEqual([true, true]);
    expect(answers[1]).toMatchObject({ id: 'k', data: { saved: true } });
    expect(await ok('has_api_key', { name: 'half-closed' })).toEqual({ exists: true });
  });

  it('is closed as soon as its answers went out', async () => {
    const { answers, closedMs } = await halfClose([{ v: 2, op: 'handshake', payload: { minVersion: 1, maxVersion: 2 } }, { v: 2, id: 'p', op: 'ping' }]);
    expect(answers.map((a) => a.ok)).toEqual([true, true]);
    expect(closedMs).toBeLessThan(1000);
  });
});

/**
 * The Redis store (SPEC §8) against a real redis-server started here: the record-store contract
 * with compare-and-swap and the `SET NX PX` lock, two proxies sharing one Redis (a key set or a
 * client added on one is served by the other), bytes at rest, and Redis going away and coming back.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { resolvePaths, startProxy, type Logger, type RunningProxy } from '../../packages/core/src/index.js';
import { DEFAULT_LOCK_TTL_MS } from '../../packages/core/src/config/store-config.js';
import { openRedisBackend } from '../../packages/core/src/store/backends/redis-store.js';
import type { Backend } from '../../packages/core/src/store/backend.js';
import { newDataKey, RecordCipher } from '../../packages/core/src/store/crypto.js';
import { VersionConflictError } from '../../packages/core/src/util/record-store.js';
import { silentLogger } from '../../packages/core/src/util/logger.js';
import { RawClient } from '../support/raw-client.js';
import { startTestRedis, type TestRedis } from '../support/redis.js';
import { proxyLayout, removeTempDirs, tempDir, waitUntil, type ProxyLayout } from '../support/temp.js';

let redis: TestRedis;
const backends: Backend[] = [];
const running: RunningProxy[] = [];
const clients: RawClient[] = [];
beforeAll(async () => {
  redis = await startTestRedis();
});
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await Promise.all(running.splice(0).map((p) => p.stop()));
  await Promise.all(backends.splice(0).map((b) => b.close()));
});
afterAll(async () => {
  await redis.close();
  await removeTempDirs();
});

const prefix = (): string => `t${randomBytes(4).toString('hex')}:`;

async function backend(p: string, cipher = RecordCipher.encrypting(newDataKey()), lockTtl = DEFAULT_LOCK_TTL_MS, lockPollMs?: { first: number; max: number }): Promise<Backend> {
  const b = await openRedisBackend({ config: { type: 'redis', url: redis.url, prefix: p, lock_ttl_ms: lockTtl }, cipher, logger: silentLogger, onKeyChange: async () => undefined, lockPollMs });
  backends.push(b);
  return b;
}

const record = (bucket: string, v: number) => ({ provider: 'gh', bucket, token: { access_token: `at-${v}`, token_type: 'Bearer', refresh_token: `rt-${v}` }, updated_at: v });

describe('Redis backend: the record-store contract', () => {
  it('get/put/delete/list with copies, sorted keys, and sealed values', async () => {
    const b = await backend(prefix());
    expect(await b.tokens.get({ provider: 'gh', bucket: 'default' })).toBeUndefined();
    expect(await b.tokens.delete({ provider: 'gh', bucket: 'default' })).toBe(false);
    expect(await b.tokens.list()).toEqual([]);
    await b.tokens.put(record('work', 1));
    await b.tokens.put(record('.dot', 2));
    await b.keys.put({ name: 'openai', key: 'sk-secret-1' });
    expect(await b.tokens.get({ provider: 'gh', bucket: 'work' })).toEqual(record('work', 1));
    expect(await b.tokens.list()).toEqual([{ provider: 'gh', bucket: '.dot' }, { provider: 'gh', bucket: 'work' }]);
    expect(await b.keys.list()).toEqual(['openai']);
    expect(await b.tokens.delete({ provider: 'gh', bucket: 'work' })).toBe(true);
    expect(await b.tokens.list()).toEqual([{ provider: 'gh', bucket: '.dot' }]);
    const dump = await redis.dump();
    const all = Buffer.concat(dump.map((d) => d.bytes)).toString('latin1');
    expect(all).not.toContain('at-2');
    expect(all).not.toContain('sk-secret-1');
    expect(dump.some((d) => d.key.endsWith('{tokens/gh/.dot}'))).toBe(true);
  });

  it('compare-and-swap: a stale writer loses instead of overwriting', async () => {
    const b = await backend(prefix());
    await b.tokens.put(record('default', 1));
    const seen = await b.tokens.read!({ provider: 'gh', bucket: 'default' });
    await b.tokens.put(record('default', 2), { ifVersion: seen!.version }); // the fresh writer
    await expect(b.tokens.put(record('default', 3), { ifVersion: seen!.version })).rejects.toBeInstanceOf(VersionConflictError);
    expect((await b.tokens.get({ provider: 'gh', bucket: 'default' }))!.token.refresh_token).toBe('rt-2');
    await expect(b.tokens.put(record('new', 1), { ifVersion: 'nope' })).rejects.toBeInstanceOf(VersionConflictError);
    await b.tokens.put(record('new', 1), { ifVersion: null });
    await expect(b.tokens.put(record('new', 2), { ifVersion: null })).rejects.toBeInstanceOf(VersionConflictError);
  });

  it('a record copied to another name, or sealed under another data key, does not open', async () => {
    const p = prefix();
    const b = await backend(p);
    await b.tokens.put(record('default', 1));
    await redis.command('COPY', `${p}{tokens/gh/default}`, `${p}{tokens/gh/copy}`);
    await expect(b.tokens.get({ provider: 'gh', bucket: 'copy' })).rejects.toThrow(/does not decrypt/);
    const other = await backend(p); // another data key
    await expect(other.tokens.get({ provider: 'gh', bucket: 'default' })).rejects.toThrow(/data key/);
  });

  it('lock: exclusive across two connections; released by its owner only; a dead holder frees it after the TTL', async () => {
    const p = prefix();
    const cipher = RecordCipher.encrypting(newDataKey());
    const a = await backend(p, cipher, 600);
    const b = await backend(p, cipher, 600);
    const key = { provider: 'gh', bucket: 'default' };
    const unlockA = await a.tokens.lock(key);
    const order: string[] = [];
    const waiting = b.tokens.lock(key).then((u) => (order.push('b'), u));
    await new Promise((r) => setTimeout(r, 900)); // longer than the TTL: A's extension keeps it
    order.push('a releases');
    await unlockA();
    await (await waiting)();
    expect(order).toEqual(['a releases', 'b']);
    // The lock key shares the record's hash tag.
    await a.tokens.lock(key);
    expect(await redis.command('EXISTS', `${p}{tokens/gh/default}:lock`)).toContain(':1');
    // A holder that dies (its connection closed, no more extensions): the lock is gone after the TTL.
    await a.close();
    backends.splice(backends.indexOf(a), 1);
    const t0 = Date.now();
    await (await b.tokens.lock(key))();
    expect(Date.now() - t0).toBeLessThan(600 + 300);
  });

  it('lock: a waiter on another member takes the lock as soon as its holder releases it (the release is published)', async () => {
    const p = prefix();
    const cipher = RecordCipher.encrypting(newDataKey());
    const a = await backend(p, cipher);
    // The waiter's poll alone would not try again for 20 s or more: only the notice wakes it.
    const b = await backend(p, cipher, DEFAULT_LOCK_TTL_MS, { first: 20_000, max: 20_000 });
    const key = { provider: 'gh', bucket: 'fleet' };
    const other = { provider: 'gh', bucket: 'other' };
    const unlockA = await a.tokens.lock(key);
    const unlockOther = await a.tokens.lock(other);
    let acquiredAt = 0;
    const waiting = b.tokens.lock(key).then((u) => ((acquiredAt = Date.now()), u));
    await new Promise((r) => setTimeout(r, 300));
    // Another account's release does not wake it.
    await unlockOther();
    await new Promise((r) => setTimeout(r, 200));
    expect(acquiredAt).toBe(0);
    const releasedAt = Date.now();
    await unlockA();
    const unlockB = await waiting;
    expect(acquiredAt - releasedAt).toBeLessThan(2_000);
    await unlockB();
  });
});

// ---- proxies on one Redis ----------------------------------------------------------------------

interface Member {
  proxy: RunningProxy;
  c: RawClient;
  layout: ProxyLayout;
  logs: string[];
}

async function member(config: object, keyFile: string): Promise<Member> {
  const layout = proxyLayout(await tempDir());
  await fs.writeFile(layout.configFile, JSON.stringify(config));
  const logs: string[] = [];
  const logger: Logger = { log: (level, message) => logs.push(`${level} ${message}`) };
  const proxy = await startProxy({ paths: resolvePaths({ env: layout.env, socketPath: layout.socketPath }), logger, env: { ...layout.env, CREDPROXY_KEY_FILE: keyFile } });
  running.push(proxy);
  const c = await RawClient.open(layout.socketPath);
  clients.push(c);
  return { proxy, c, layout, logs };
}

async function ok(c: RawClient, op: string, payload: Record<string, unknown> = {}): Promise<any> {
  const answer = await c.request(op, payload);
  expect(answer.value, `${op}: ${answer.body.toString()}`).toMatchObject({ ok: true });
  return answer.value.data;
}

describe('proxies sharing one Redis', () => {
  it('a key set and a client added on one member are served by the other; nothing secret in Redis or the data dirs', async () => {
    const dir = await tempDir();
    const keyFile = path.join(dir, 'fleet.key');
    await fs.writeFile(keyFile, randomBytes(32).toString('base64'), { mode: 0o600 });
    const config = { store: { type: 'redis', url: redis.url, prefix: prefix() } };
    const a = await member(config, keyFile);
    const b = await member(config, keyFile);
    expect(await ok(a.c, 'store_status')).toMatchObject({ backend: 'redis', key_source: 'key_file', encrypted: true, connected: true });

    const apiKey = `sk-${randomBytes(16).toString('hex')}`;
    const access = `at-${randomBytes(16).toString('hex')}`;
    const refresh = `rt-${randomBytes(16).toString('hex')}`;
    expect((await b.c.request('get_api_key', { name: 'openai' })).value).toMatchObject({ ok: false, code: 'NOT_FOUND' });
    await ok(a.c, 'set_api_key', { name: 'openai', key: apiKey });
    await waitUntil(async () => (await b.c.request('get_api_key', { name: 'openai' })).value.ok === true, 2_000);
    expect(await ok(b.c, 'get_api_key', { name: 'openai' })).toEqual({ key: apiKey });

    await ok(a.c, 'save_token', { provider: 'gh', token: { access_token: access, refresh_token: refresh, expiry: Math.floor(Date.now() / 1000) + 3600 } });
    expect(await ok(b.c, 'get_token', { provider: 'gh' })).toMatchObject({ access_token: access });

    const added = await ok(a.c, 'client_add', { name: 'box', scopes: [{ provider: 'gh' }], api_keys: ['openai'] });
    await waitUntil(async () => ((await ok(b.c, 'client_list')).clients as unknown[]).length === 1, 2_000);
    const box = await RawClient.open(b.layout.socketPath, added.capability_token);
    clients.push(box);
    expect((await box.request('get_token', { provider: 'gh' })).value).toMatchObject({ ok: true, data: { access_token: access } });
    await ok(a.c, 'client_remove', { name: 'box' });
    await waitUntil(async () => ((await ok(b.c, 'client_list')).clients as unknown[]).length === 0, 2_000);

    // A token B holds in memory: a new one saved on A replaces it, a removal on A ends it.
    const access2 = `at-${randomBytes(16).toString('hex')}`;
    await ok(a.c, 'save_token', { provider: 'gh', bucket: 'two', token: { access_token: access, expiry: Math.floor(Date.now() / 1000) + 3600 } });
    expect(await ok(b.c, 'get_token', { provider: 'gh', bucket: 'two' })).toMatchObject({ access_token: access });
    await ok(a.c, 'save_token', { provider: 'gh', bucket: 'two', token: { access_token: access2, expiry: Math.floor(Date.now() / 1000) + 3600 } });
    await waitUntil(async () => (await ok(b.c, 'get_token', { provider: 'gh', bucket: 'two' })).access_token === access2, 2_000);
    await ok(a.c, 'remove_token', { provider: 'gh', bucket: 'two' });
    await waitUntil(async () => (await b.c.request('get_token', { provider: 'gh', bucket: 'two' })).value.ok === false, 2_000);

    const keyBytes = (await fs.readFile(keyFile, 'utf8')).trim();
    const secrets = [apiKey, access, access2, refresh, added.capability_token as string, keyBytes];
    const dump = await redis.dump();
    expect(dump.length).toBeGreaterThanOrEqual(3);
    for (const { key, bytes } of dump) {
      for (const s of secrets) {
        for (const form of [s, Buffer.from(s).toString('base64'), Buffer.from(s).toString('hex')]) {
          expect(bytes.includes(Buffer.from(form)), `${form.slice(0, 8)}… in Redis key ${key}`).toBe(false);
        }
      }
    }
    for (const m of [a, b]) {
      const files = (await fs.readdir(m.layout.dir, { recursive: true, withFileTypes: true })).filter((e) => e.isFile());
      for (const f of files) {
        const bytes = await fs.readFile(path.join(f.parentPath, f.name));
        for (const s of secrets) expect(bytes.includes(Buffer.from(s)), `${f.name}`).toBe(false);
      }
    }
  });

  it('Redis down: a valid token is still served from memory, a refresh answers UPSTREAM_UNAVAILABLE, nothing is deleted, service resumes', async () => {
    const dir = await tempDir();
    const keyFile = path.join(dir, 'fleet.key');
    await fs.writeFile(keyFile, randomBytes(32).toString('hex'), { mode: 0o600 });
    const p = prefix();
    const a = await member({ store: { type: 'redis', url: redis.url, prefix: p } }, keyFile);
    const access = `at-${randomBytes(8).toString('hex')}`;
    await ok(a.c, 'save_token', { provider: 'gh', token: { access_token: access, refresh_token: 'rt-x', expiry: Math.floor(Date.now() / 1000) + 3600 } });
    await ok(a.c, 'set_api_key', { name: 'openai', key: 'sk-down' });
    expect(await ok(a.c, 'get_token', { provider: 'gh' })).toMatchObject({ access_token: access });
    expect(await ok(a.c, 'get_api_key', { name: 'openai' })).toEqual({ key: 'sk-down' });

    await redis.kill();
    try {
      expect(await ok(a.c, 'get_token', { provider: 'gh' })).toMatchObject({ access_token: access });
      // Past the 250 ms recheck of a key whose feed is down: the last answer stands.
      await new Promise((r) => setTimeout(r, 400));
      expect(await ok(a.c, 'get_api_key', { name: 'openai' })).toEqual({ key: 'sk-down' });
      const refreshed = await a.c.request('refresh_token', { provider: 'gh' });
      // No provider is configured for gh here: the store is what must answer first (its lock).
      expect(refreshed.value.ok).toBe(false);
      const status = await ok(a.c, 'store_status');
      expect(status.connected).toBe(false);
      const expired = await a.c.request('get_token', { provider: 'gh', bucket: 'never-cached' });
      expect(expired.value).toMatchObject({ ok: false, code: 'UPSTREAM_UNAVAILABLE' });
      expect(expired.value.error).toMatch(/Redis/);
    } finally {
      await redis.start();
    }
    await waitUntil(async () => (await ok(a.c, 'store_status')).connected === true, 5_000, 50);
    expect(await ok(a.c, 'get_token', { provider: 'gh' })).toMatchObject({ access_token: access });
    expect(await ok(a.c, 'get_api_key', { name: 'openai' })).toEqual({ key: 'sk-down' });
    expect((await ok(a.c, 'store_status')).records).toEqual({ tokens: 1, api_keys: 1, clients: 0 });
    expect(a.logs.join('\n')).toMatch(/lost the connection to the Redis store/);
  });

  it('rekey on one member: the other reads the re-sealed records', async () => {
    const dir = await tempDir();
    const keyFile = path.join(dir, 'fleet.key');
    await fs.writeFile(keyFile, randomBytes(32).toString('hex'), { mode: 0o600 });
    const config = { store: { type: 'redis', url: redis.url, prefix: prefix() } };
    const a = await member(config, keyFile);
    const b = await member(config, keyFile);
    await ok(a.c, 'set_api_key', { name: 'openai', key: 'sk-rekey' });
    const result = await ok(a.c, 'store_rekey');
    expect(result.rekeyed.api_keys).toBe(1);
    await ok(a.c, 'set_api_key', { name: 'late', key: 'sk-late' });
    await waitUntil(async () => (await b.c.request('get_api_key', { name: 'late' })).value.ok === true, 2_000);
    expect(await ok(b.c, 'get_api_key', { name: 'openai' })).toEqual({ key: 'sk-rekey' });
    expect((await ok(b.c, 'store_status')).data_key_id).toBe(result.data_key_id);
  });
});

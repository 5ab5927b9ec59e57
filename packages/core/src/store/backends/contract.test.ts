/**
 * The record-store contract (util/record-store.ts), checked against every backend: the file
 * stores for tokens, API keys and the client registry, and the memory stores for tests. A new
 * backend (encrypted, Redis) is added to BACKENDS and must pass the same checks.
 */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ClientRecord } from '../../clients/registry.js';
import { type LockingRecordStore, type RecordStore, VersionConflictError } from '../../util/record-store.js';
import type { ApiKeyRecord } from '../api-keys.js';
import type { AccountKey, AccountRecord } from '../token-store.js';
import { FileClientStore } from './file-clients.js';
import { FileApiKeyStore } from './file-keys.js';
import { FileTokenStore } from './file-tokens.js';
import { MemoryRecordStore, MemoryTokenStore } from './memory.js';
import { newDataKey, RecordCipher } from '../crypto.js';

let dir: string;
const cipher = RecordCipher.encrypting(newDataKey());
beforeEach(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'cp-contract-'));
});
afterEach(() => fs.rm(dir, { recursive: true, force: true }));

interface Backend<K, R> {
  name: string;
  make(): RecordStore<K, R> | LockingRecordStore<K, R>;
  /** Three distinct keys, in the order list() answers them. */
  keys: [K, K, K];
  record(key: K, version: number): R;
  keyOf(record: R): K;
}

const account = (provider: string, bucket: string): AccountKey => ({ provider, bucket });
const tokenBackend = (name: string, make: () => RecordStore<AccountKey, AccountRecord>): Backend<AccountKey, AccountRecord> => ({
  name,
  make,
  keys: [account('gh', '.dot'), account('gh', 'work'), account('zz', 'default')],
  record: (k, v) => ({ ...k, token: { access_token: `at-${v}`, token_type: 'Bearer', refresh_token: `rt-${v}`, expiry: 2_000_000_000 + v }, updated_at: 1_700_000_000_000 + v }),
  keyOf: (r) => ({ provider: r.provider, bucket: r.bucket }),
});
const keyBackend = (name: string, make: () => RecordStore<string, ApiKeyRecord>): Backend<string, ApiKeyRecord> => ({
  name,
  make,
  keys: ['.env', 'anthropic', 'openai'],
  record: (k, v) => ({ name: k, key: `sk-${k}-${v}` }),
  keyOf: (r) => r.name,
});
const clientBackend = (name: string, make: () => RecordStore<string, ClientRecord>): Backend<string, ClientRecord> => ({
  name,
  make,
  keys: ['a-box', 'b-box', 'c-box'],
  record: (k, v) => ({ name: k, token_sha256: String(v).padStart(64, '0'), scopes: [{ provider: 'gh' }], api_keys: [], allow_login: false, allow_refresh: false, created_at: v }),
  keyOf: (r) => r.name,
});

const BACKENDS: Array<Backend<never, never>> = [
  tokenBackend('FileTokenStore', () => new FileTokenStore(path.join(dir, 'tokens'))),
  tokenBackend('MemoryTokenStore', () => new MemoryTokenStore()),
  keyBackend('FileApiKeyStore', () => new FileApiKeyStore(path.join(dir, 'keys'))),
  keyBackend('MemoryRecordStore (API keys)', () => new MemoryRecordStore<string, ApiKeyRecord>((r) => r.name)),
  clientBackend('FileClientStore', () => new FileClientStore(path.join(dir, 'clients.json'))),
  clientBackend('MemoryRecordStore (clients)', () => new MemoryRecordStore<string, ClientRecord>((r) => r.name)),
  // The same file stores sealing every record (encryption at rest, store/crypto.ts).
  tokenBackend('FileTokenStore (encrypted)', () => new FileTokenStore(path.join(dir, 'tokens'), { cipher })),
  keyBackend('FileApiKeyStore (encrypted)', () => new FileApiKeyStore(path.join(dir, 'keys'), { cipher })),
  clientBackend('FileClientStore (encrypted)', () => new FileClientStore(path.join(dir, 'clients.json'), { cipher })),
] as unknown as Array<Backend<never, never>>;

describe.each(BACKENDS.map((b) => [b.name, b] as const))('record-store contract: %s', (_name, b) => {
  it('answers undefined, false and [] for what is not there', async () => {
    const store = b.make();
    expect(await store.get(b.keys[0])).toBeUndefined();
    expect(await store.delete(b.keys[0])).toBe(false);
    expect(await store.list()).toEqual([]);
  });

  it('round-trips a record; put replaces the whole record under its key', async () => {
    const store = b.make();
    await store.put(b.record(b.keys[1], 1));
    expect(await store.get(b.keys[1])).toEqual(b.record(b.keys[1], 1));
    await store.put(b.record(b.keys[1], 2));
    expect(await store.get(b.keys[1])).toEqual(b.record(b.keys[1], 2));
    expect(await store.list()).toEqual([b.keys[1]]);
  });

  it('lists keys only, sorted, whatever the order of the puts', async () => {
    const store = b.make();
    for (const k of [b.keys[2], b.keys[0], b.keys[1]]) await store.put(b.record(k, 1));
    expect(await store.list()).toEqual(b.keys);
    expect(JSON.stringify(await store.list())).not.toContain('1');
  });

  it('deletes one record and leaves the others', async () => {
    const store = b.make();
    for (const k of b.keys) await store.put(b.record(k, 1));
    expect(await store.delete(b.keys[1])).toBe(true);
    expect(await store.get(b.keys[1])).toBeUndefined();
    expect(await store.get(b.keys[0])).toEqual(b.record(b.keys[0], 1));
    expect(await store.list()).toEqual([b.keys[0], b.keys[2]]);
  });

  it('keeps copies: changing a record after put or after get changes nothing stored', async () => {
    const store = b.make();
    const r = b.record(b.keys[0], 1) as Record<string, unknown>;
    await store.put(r as never);
    for (const field of Object.keys(r)) if (typeof r[field] === 'object') r[field] = 'mutated';
    const got = (await store.get(b.keys[0])) as unknown as Record<string, unknown>;
    expect(got).toEqual(b.record(b.keys[0], 1));
    for (const field of Object.keys(got)) if (typeof got[field] === 'object') got[field] = 'mutated';
    expect(await store.get(b.keys[0])).toEqual(b.record(b.keys[0], 1));
  });

  it('loses no write when puts and deletes of different keys run at once', async () => {
    const store = b.make();
    await store.put(b.record(b.keys[2], 0));
    await Promise.all([store.put(b.record(b.keys[0], 1)), store.put(b.record(b.keys[1], 1)), store.delete(b.keys[2])]);
    expect(await store.list()).toEqual([b.keys[0], b.keys[1]]);
  });

  it('a second instance on the same storage sees the writes (files: another process on the data dir)', async () => {
    const store = b.make();
    if (b.name.startsWith('Memory')) return; // keeps nothing: nothing shared by design
    const other = b.make();
    await store.put(b.record(b.keys[0], 7));
    expect(await other.get(b.keys[0])).toEqual(b.record(b.keys[0], 7));
    expect(await other.delete(b.keys[0])).toBe(true);
    expect(await store.get(b.keys[0])).toBeUndefined();
  });

  it('compare-and-swap (where the backend keeps versions): a stale writer loses', async () => {
    const store = b.make() as LockingRecordStore<never, never>;
    if (!('read' in store) || store.read === undefined) return;
    await store.put(b.record(b.keys[0], 1));
    const seen = (await store.read(b.keys[0]))!;
    expect(seen.record).toEqual(b.record(b.keys[0], 1));
    await store.put(b.record(b.keys[0], 2), { ifVersion: seen.version });
    await expect(store.put(b.record(b.keys[0], 3), { ifVersion: seen.version })).rejects.toBeInstanceOf(VersionConflictError);
    expect(await store.get(b.keys[0])).toEqual(b.record(b.keys[0], 2));
    await expect(store.put(b.record(b.keys[0], 4), { ifVersion: null })).rejects.toBeInstanceOf(VersionConflictError);
    await store.put(b.record(b.keys[1], 1), { ifVersion: null });
    expect(await store.get(b.keys[1])).toEqual(b.record(b.keys[1], 1));
  });

  it('lock (where the backend has one) is exclusive per key', async () => {
    const store = b.make();
    if (!('lock' in store)) return;
    const order: string[] = [];
    const unlockA = await store.lock(b.keys[0]);
    const other = await store.lock(b.keys[1]); // another key is not blocked
    const waiting = store.lock(b.keys[0]).then((unlock) => {
      order.push('b');
      return unlock;
    });
    await new Promise((r) => setTimeout(r, 50));
    order.push('a releases');
    await unlockA();
    await (await waiting)();
    await other();
    expect(order).toEqual(['a releases', 'b']);
  });
});

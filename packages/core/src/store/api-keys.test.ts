import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { StoreWatch } from '../util/record-store.js';
import { ApiKeyService, KEY_MAX_AGE_MS, KEY_RECHECK_MS, type ApiKeyRecord, type ApiKeyStore } from './api-keys.js';
import { FileApiKeyStore } from './backends/file-keys.js';
import { MemoryRecordStore } from './backends/memory.js';

let now = 1_700_000_000_000;
const clock = { now: () => now };

/** A memory store that counts reads and can hold them (to land a change while one is in flight). */
class CountingStore implements ApiKeyStore {
  readonly inner = new MemoryRecordStore<string, ApiKeyRecord>((r) => r.name);
  reads = 0;
  hold: Promise<void> | undefined;
  /** Without `feed`, the store offers no change feed; with `live: false`, a feed that is not live. */
  constructor(readonly feed: 'live' | 'not live' | 'none' = 'live') {
    if (feed === 'none') this.watch = undefined;
  }
  async get(name: string) {
    this.reads += 1;
    const record = await this.inner.get(name);
    await this.hold;
    return record;
  }
  put(record: ApiKeyRecord) {
    return this.inner.put(record);
  }
  delete(name: string) {
    return this.inner.delete(name);
  }
  list() {
    return this.inner.list();
  }
  watch?: (onChange: (name?: string) => void) => StoreWatch = (onChange) => {
    const w = this.inner.watch(onChange);
    return this.feed === 'live' ? w : { live: false, close: () => w.close() };
  };
}

beforeEach(() => {
  now = 1_700_000_000_000;
});

describe('ApiKeyService serves keys from memory', () => {
  it('after the first read, answers synchronously and never reads the store again while nothing changes', async () => {
    const store = new CountingStore();
    await store.put({ name: 'openai', key: 'sk-1' });
    const keys = new ApiKeyService({ store, clock });
    expect(keys.cached('openai')).toBeUndefined();
    expect(await keys.load('openai')).toEqual({ key: 'sk-1' });
    for (let i = 0; i < 1_000; i++) expect(keys.cached('openai')).toEqual({ key: 'sk-1' });
    expect(await keys.get('openai')).toBe('sk-1');
    expect(store.reads).toBe(1);
  });

  it('remembers that a key does not exist, until it is added', async () => {
    const store = new CountingStore();
    const keys = new ApiKeyService({ store, clock });
    expect(await keys.load('nope')).toBeNull();
    expect(keys.cached('nope')).toBeNull();
    expect(store.reads).toBe(1);
    await store.put({ name: 'nope', key: 'now-yes' });
    expect(keys.cached('nope')).toBeUndefined();
    expect(await keys.load('nope')).toEqual({ key: 'now-yes' });
  });

  it('hands out one frozen answer per key, so the connection serializes it once', async () => {
    const store = new CountingStore();
    await store.put({ name: 'openai', key: 'sk-1' });
    const keys = new ApiKeyService({ store, clock });
    const answer = await keys.load('openai');
    expect(Object.isFrozen(answer)).toBe(true);
    expect(keys.cached('openai')).toBe(answer);
  });

  it('reads the store once for many concurrent requests of one key', async () => {
    const store = new CountingStore();
    await store.put({ name: 'openai', key: 'sk-1' });
    const keys = new ApiKeyService({ store, clock });
    const answers = await Promise.all(Array.from({ length: 50 }, () => keys.load('openai')));
    expect(new Set(answers.map((a) => a?.key))).toEqual(new Set(['sk-1']));
    expect(store.reads).toBe(1);
  });

  it('does not remember a failed read', async () => {
    const store = new CountingStore();
    const failing = Object.assign(new Error('EACCES'), { code: 'EACCES' });
    store.hold = Promise.reject(failing);
    store.hold.catch(() => undefined);
    const keys = new ApiKeyService({ store, clock });
    await expect(keys.load('openai')).rejects.toBe(failing);
    expect(keys.cached('openai')).toBeUndefined();
    store.hold = undefined;
    await store.put({ name: 'openai', key: 'sk-1' });
    expect(await keys.load('openai')).toEqual({ key: 'sk-1' });
  });
});

describe('ApiKeyService stays consistent with the store', () => {
  it('its own set and remove are seen by the next request', async () => {
    const store = new CountingStore();
    const keys = new ApiKeyService({ store, clock });
    await keys.set('openai', 'sk-1');
    expect(await keys.load('openai')).toEqual({ key: 'sk-1' });
    await keys.set('openai', 'sk-2');
    expect(keys.cached('openai')).toBeUndefined();
    expect(await keys.get('openai')).toBe('sk-2');
    expect(await keys.remove('openai')).toBe(true);
    expect(keys.cached('openai')).toBeUndefined();
    expect(await keys.load('openai')).toBeNull();
    expect(await keys.remove('openai')).toBe(false);
  });

  it('a change by another writer, reported by the change feed, is seen by the next request', async () => {
    const store = new CountingStore();
    await store.put({ name: 'openai', key: 'sk-1' });
    await store.put({ name: 'other', key: 'o-1' });
    const keys = new ApiKeyService({ store, clock });
    await keys.load('openai');
    await keys.load('other');
    await store.inner.put({ name: 'openai', key: 'sk-2' }); // another process: not through the service
    expect(keys.cached('openai')).toBeUndefined();
    expect(keys.cached('other')).toEqual({ key: 'o-1' }); // only the changed name is forgotten
    expect(await keys.get('openai')).toBe('sk-2');
    await store.inner.delete('openai');
    expect(await keys.load('openai')).toBeNull();
  });

  it('does not remember a read that was in flight when a change landed (it may hold the old key)', async () => {
    const store = new CountingStore();
    await store.put({ name: 'openai', key: 'sk-old' });
    const keys = new ApiKeyService({ store, clock });
    let release!: () => void;
    store.hold = new Promise((r) => (release = r));
    const inFlight = keys.load('openai');
    await new Promise((r) => setTimeout(r, 5));
    await store.inner.put({ name: 'openai', key: 'sk-new' }); // lands after the read took the old bytes
    release();
    store.hold = undefined;
    expect(await inFlight).toEqual({ key: 'sk-old' });
    expect(keys.cached('openai')).toBeUndefined();
    // A request after the change does not join the stale read.
    expect(await keys.load('openai')).toEqual({ key: 'sk-new' });
  });

  it('without a change feed, reads a key again once it has been in memory for recheckMs', async () => {
    const store = new CountingStore('none');
    await store.put({ name: 'openai', key: 'sk-1' });
    const keys = new ApiKeyService({ store, clock });
    await keys.load('openai');
    await store.inner.put({ name: 'openai', key: 'sk-2' });
    now += KEY_RECHECK_MS - 1;
    expect(keys.cached('openai')).toEqual({ key: 'sk-1' });
    now += 1;
    expect(keys.cached('openai')).toBeUndefined();
    expect(await keys.get('openai')).toBe('sk-2');
    expect(store.reads).toBe(2);
  });

  it('with a feed that is not live, the same recheckMs bound holds', async () => {
    const store = new CountingStore('not live');
    await store.put({ name: 'openai', key: 'sk-1' });
    const keys = new ApiKeyService({ store, clock, recheckMs: 100 });
    await keys.load('openai');
    now += 100;
    expect(keys.cached('openai')).toBeUndefined();
  });

  it('with a live feed, a key is still read again after maxAgeMs (a lost event costs that much at most)', async () => {
    const store = new CountingStore('live');
    await store.put({ name: 'openai', key: 'sk-1' });
    const keys = new ApiKeyService({ store, clock });
    await keys.load('openai');
    now += KEY_MAX_AGE_MS - 1;
    expect(keys.cached('openai')).toEqual({ key: 'sk-1' });
    now += 1;
    expect(keys.cached('openai')).toBeUndefined();
  });
});

describe('ApiKeyService on the file store', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'cp-keysvc-'));
  });
  afterEach(() => fs.rm(dir, { recursive: true, force: true }));

  async function eventually(check: () => Promise<boolean>, ms = 2_000): Promise<number> {
    const start = Date.now();
    while (!(await check())) {
      if (Date.now() - start > ms) throw new Error(`not seen within ${ms} ms`);
      await new Promise((r) => setTimeout(r, 5));
    }
    return Date.now() - start;
  }

  it('sees a key file written in place or removed by someone else, through fs.watch', async () => {
    const keysDir = path.join(dir, 'keys');
    await fs.mkdir(keysDir, { mode: 0o700 }); // as the proxy does at start
    const keys = new ApiKeyService({ store: new FileApiKeyStore(keysDir) });
    try {
      await keys.set('openai', 'sk-1');
      expect(await keys.get('openai')).toBe('sk-1');
      await fs.writeFile(path.join(keysDir, 'openai.key'), 'sk-2'); // in place: the inode stays
      await eventually(async () => (await keys.get('openai')) === 'sk-2');
      await fs.rm(path.join(keysDir, 'openai.key'));
      await eventually(async () => (await keys.get('openai')) === undefined);
    } finally {
      keys.close();
    }
  });

  it('with fs.watch unavailable, a key written in place is served at most recheckMs later', async () => {
    const keysDir = path.join(dir, 'keys');
    const unavailable = (): never => {
      throw Object.assign(new Error('ENOSPC: System limit for number of file watchers reached'), { code: 'ENOSPC' });
    };
    const keys = new ApiKeyService({ store: new FileApiKeyStore(keysDir, { watch: { watch: unavailable } }), recheckMs: 50 });
    try {
      await keys.set('openai', 'sk-1');
      expect(await keys.get('openai')).toBe('sk-1');
      await fs.writeFile(path.join(keysDir, 'openai.key'), 'sk-2');
      const waited = await eventually(async () => (await keys.get('openai')) === 'sk-2');
      expect(waited).toBeLessThan(1_000);
    } finally {
      keys.close();
    }
  });

  it('still refuses a key file replaced by a symlink after the key was served from memory (issue 9, item 10)', async () => {
    const keysDir = path.join(dir, 'keys');
    const keys = new ApiKeyService({ store: new FileApiKeyStore(keysDir) });
    try {
      await keys.set('openai', 'sk-1');
      expect(await keys.get('openai')).toBe('sk-1');
      const target = path.join(dir, 'owner-private');
      await fs.writeFile(target, 'OWNER-PRIVATE-BYTES');
      await fs.rm(path.join(keysDir, 'openai.key'));
      await fs.symlink(target, path.join(keysDir, 'openai.key'));
      await eventually(async () => (await keys.get('openai').catch((e: Error) => e.message))?.includes('symbolic link') === true);
      await expect(keys.get('openai')).rejects.toThrow(/symbolic link/);
    } finally {
      keys.close();
    }
  });
});

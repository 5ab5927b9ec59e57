/**
 * The shared store (SPEC §8): tokens, API keys and clients in one Redis, for a fleet of proxies.
 *
 * Layout, with the configured prefix (default `credproxy:`):
 * - `<prefix>{tokens/<provider>/<bucket>}`, `<prefix>{keys/<name>}`, `<prefix>{clients/<name>}`:
 *   a hash of `d` (the sealed record) and `v` (its version, random per write);
 * - `<prefix>{tokens/<provider>/<bucket>}:lock`: the account's lock (`SET NX PX` with an owner id,
 *   extended and released by compare-and-delete scripts); the hash tag `{…}` puts a record and its
 *   lock in one slot, so the scripts also run on Redis Cluster or Valkey;
 * - `<prefix>store-key`: the wrapped data key (store/storage.ts);
 * - channel `<prefix>changes`: every write publishes the record's name, so the other members
 *   forget what they hold in memory (`key set`, `client add` on any member reach all); a released
 *   account lock publishes `unlock:<name>`, so the members waiting for it try again at once.
 *
 * Every value is sealed by the RecordCipher before it leaves the process. Redis unreachable: each
 * call fails at once with UPSTREAM_UNAVAILABLE (no offline queue); ioredis reconnects by itself.
 */
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import { Redis, type RedisOptions } from 'ioredis';
import type { ClientRecord } from '../../clients/registry.js';
import { redactRedisUrl, type RedisStoreConfig } from '../../config/store-config.js';
import { ErrorCode, ProxyError } from '../../protocol/errors.js';
import { isName, isPlainObject } from '../../protocol/validate.js';
import type { Logger } from '../../util/logger.js';
import { type LockingRecordStore, type PutOptions, type RecordStore, type StoreWatch, type Unlock, type Versioned, VersionConflictError } from '../../util/record-store.js';
import type { ApiKeyRecord } from '../api-keys.js';
import { type RecordCipher, UnreadableRecordError } from '../crypto.js';
import type { Backend, KeyRecordHolder } from '../backend.js';
import type { AccountKey, AccountRecord } from '../token-store.js';

/** Write `d` if `v` is as expected ('' any, '-' absent); a new random `v`. 0: conflict. */
const PUT_SCRIPT = `
local cur = redis.call('HGET', KEYS[1], 'v')
if ARGV[1] ~= '' then
  if ARGV[1] == '-' then
    if cur then return 0 end
  elseif cur ~= ARGV[1] then
    return 0
  end
end
redis.call('HSET', KEYS[1], 'd', ARGV[2], 'v', ARGV[3])
return 1`;
/** Delete the lock if `owner` (ARGV[1]) holds it, and tell the fleet (PUBLISH ARGV[2] ARGV[3]): its waiters retry at once. */
const RELEASE_SCRIPT = `if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', ARGV[2], ARGV[3])
  return 1
end
return 0`;
const EXTEND_SCRIPT = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end`;

/** How long lock() waits for another holder before answering UPSTREAM_UNAVAILABLE. */
const LOCK_WAIT_MS = 30_000;
const COMMAND_TIMEOUT_MS = 3_000;
const KEY_CHANNEL_NAME = 'store-key';
/** What a released account lock publishes, before the record's name (no record name starts so). */
const UNLOCK_NOTICE = 'unlock:';

type Scripted = Redis & {
  cpPut(key: string, expected: string, data: string, version: string): Promise<number>;
  cpRelease(key: string, owner: string, channel: string, notice: string): Promise<number>;
  cpExtend(key: string, owner: string, ttl: number): Promise<number>;
};

function connectionOptions(url: string): { url?: string; options: RedisOptions } {
  const options: RedisOptions = {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    connectTimeout: COMMAND_TIMEOUT_MS,
    commandTimeout: COMMAND_TIMEOUT_MS,
    retryStrategy: (times) => Math.min(50 * times, 1_000),
  };
  if (url.startsWith('unix://')) return { options: { ...options, path: new URL(url).pathname } };
  return { url, options };
}

function makeClient(url: string): Scripted {
  const { url: u, options } = connectionOptions(url);
  const client = (u === undefined ? new Redis(options) : new Redis(u, options)) as Scripted;
  client.defineCommand('cpPut', { numberOfKeys: 1, lua: PUT_SCRIPT });
  client.defineCommand('cpRelease', { numberOfKeys: 1, lua: RELEASE_SCRIPT });
  client.defineCommand('cpExtend', { numberOfKeys: 1, lua: EXTEND_SCRIPT });
  // Errors surface on the calls; without a listener ioredis would print each reconnect failure.
  client.on('error', () => undefined);
  return client;
}

function globEscape(s: string): string {
  return s.replace(/[*?[\]\\]/g, (c) => `\\${c}`);
}

interface Shared {
  client: Scripted;
  prefix: string;
  where: string;
  cipher: RecordCipher;
  logger: Logger;
  lockTtlMs: number;
  lockPollMs: { first: number; max: number };
  feed: ChangeFeed;
  onKeyChange: () => Promise<void>;
}

/** Any failure that is not ours (a connection error, a timeout) is the store being unreachable. */
function unreachable(s: Shared, err: unknown): unknown {
  if (err instanceof ProxyError || err instanceof VersionConflictError || err instanceof UnreadableRecordError || err instanceof SyntaxError) return err;
  const why = err instanceof Error ? err.message.split('\n')[0]!.slice(0, 120) : 'unknown error';
  return new ProxyError(ErrorCode.UPSTREAM_UNAVAILABLE, `the shared store (Redis at ${s.where}) is unreachable (${why}) — still-valid tokens are served from memory; check that Redis runs`);
}

/** One subscriber connection for all stores: names published on `<prefix>changes`. */
class ChangeFeed {
  readonly #sub: Redis;
  readonly #listeners = new Set<(name?: string) => void>();
  #live = false;

  constructor(url: string, channel: string, onKeyChange: () => Promise<void>) {
    const { url: u, options } = connectionOptions(url);
    // The subscriber keeps its queue: it re-subscribes after a reconnect by itself.
    const sub = u === undefined ? new Redis({ ...options, enableOfflineQueue: true, commandTimeout: undefined }) : new Redis(u, { ...options, enableOfflineQueue: true, commandTimeout: undefined });
    this.#sub = sub;
    sub.on('error', () => undefined);
    sub.on('message', (_ch: string, name: string) => {
      if (name === KEY_CHANNEL_NAME) {
        void onKeyChange().catch(() => undefined);
        return;
      }
      for (const l of this.#listeners) l(name);
    });
    sub.on('ready', () => {
      // Changes made while we were away were not heard: everything may have changed.
      this.#live = true;
      for (const l of this.#listeners) l(undefined);
    });
    for (const event of ['close', 'end', 'reconnecting']) {
      sub.on(event, () => {
        this.#live = false;
      });
    }
    this.channel = channel;
  }

  readonly channel: string;

  async start(): Promise<void> {
    await this.#sub.connect();
    await this.#sub.subscribe(this.channel);
    this.#live = true;
  }

  get live(): boolean {
    return this.#live;
  }

  add(listener: (name?: string) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  close(): void {
    this.#sub.disconnect();
  }
}

/** How one kind of record is named and checked. */
interface RecordKind<K, R> {
  /** `tokens`, `keys`, `clients`: the first part of every name. */
  kind: string;
  nameOf(key: K): string;
  keyOfRecord(record: R): K;
  /** The key for a stored name (`tokens/gh/default` → {provider, bucket}); undefined: not ours. */
  keyOfName(rest: string): K | undefined;
  encode(record: R): string;
  decode(text: string, key: K): R;
}

class RedisRecordStore<K, R> implements RecordStore<K, R> {
  protected readonly s: Shared;
  readonly #k: RecordKind<K, R>;

  constructor(shared: Shared, kind: RecordKind<K, R>) {
    this.s = shared;
    this.#k = kind;
  }

  protected redisKey(name: string): string {
    return `${this.s.prefix}{${name}}`;
  }

  protected async call<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw unreachable(this.s, err);
    }
  }

  /** Open a sealed value; sealed with a key we do not hold yet (a rekey elsewhere): reload the key record once. */
  async #open(name: string, sealed: string): Promise<string> {
    try {
      return this.s.cipher.open(name, sealed);
    } catch (err) {
      if (!(err instanceof UnreadableRecordError) || err.unknownKeyId === undefined) throw err;
      await this.s.onKeyChange();
      return this.s.cipher.open(name, sealed);
    }
  }

  async read(key: K): Promise<Versioned<R> | undefined> {
    const name = this.#k.nameOf(key);
    const [d, v] = await this.call(() => this.s.client.hmget(this.redisKey(name), 'd', 'v'));
    if (d === null || d === undefined || v === null || v === undefined) return undefined;
    return { record: this.#k.decode(await this.#open(name, d), key), version: v };
  }

  async get(key: K): Promise<R | undefined> {
    return (await this.read(key))?.record;
  }

  async put(record: R, options: PutOptions = {}): Promise<void> {
    const name = this.#k.nameOf(this.#k.keyOfRecord(record));
    const sealed = this.s.cipher.seal(name, this.#k.encode(record));
    const expected = options.ifVersion === undefined ? '' : options.ifVersion === null ? '-' : options.ifVersion;
    const ok = await this.call(() => this.s.client.cpPut(this.redisKey(name), expected, sealed, randomBytes(12).toString('hex')));
    if (ok !== 1) throw new VersionConflictError(name);
    await this.#publish(name);
  }

  async delete(key: K): Promise<boolean> {
    const name = this.#k.nameOf(key);
    const n = await this.call(() => this.s.client.del(this.redisKey(name)));
    if (n > 0) await this.#publish(name);
    return n > 0;
  }

  async #publish(name: string): Promise<void> {
    // The write is done; a lost notice costs the others the feed's bounded staleness only.
    await this.s.client.publish(this.s.feed.channel, name).catch(() => undefined);
  }

  async list(): Promise<K[]> {
    const start = `${this.s.prefix}{${this.#k.kind}/`;
    const match = `${globEscape(start)}*}`;
    const names = new Set<string>();
    await this.call(async () => {
      let cursor = '0';
      do {
        const [next, keys] = await this.s.client.scan(cursor, 'MATCH', match, 'COUNT', 500);
        cursor = next;
        for (const k of keys) if (k.startsWith(start) && k.endsWith('}')) names.add(k.slice(start.length, -1));
      } while (cursor !== '0');
    });
    const out: Array<{ name: string; key: K }> = [];
    for (const name of names) {
      const key = this.#k.keyOfName(name);
      if (key !== undefined) out.push({ name, key });
    }
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)).map((e) => e.key);
  }

  watch(onChange: (key?: K) => void): StoreWatch {
    const prefix = `${this.#k.kind}/`;
    const remove = this.s.feed.add((name) => {
      if (name === undefined) return onChange();
      if (!name.startsWith(prefix)) return;
      onChange(this.#k.keyOfName(name.slice(prefix.length)));
    });
    const feed = this.s.feed;
    return {
      get live() {
        return feed.live;
      },
      close: remove,
    };
  }
}

class RedisTokenStore extends RedisRecordStore<AccountKey, AccountRecord> implements LockingRecordStore<AccountKey, AccountRecord> {
  /**
   * `SET <record>:lock <owner> NX PX <ttl>`, extended every ttl/3 while held and released by a
   * compare-and-delete script. A holder killed with -9 stops extending: its lock is gone after at
   * most the TTL, and the next waiter takes it.
   */
  async lock(key: AccountKey): Promise<Unlock> {
    const name = `tokens/${key.provider}/${key.bucket}`;
    const lockKey = `${this.redisKey(name)}:lock`;
    const notice = `${UNLOCK_NOTICE}${name}`;
    const owner = `${os.hostname()}:${process.pid}:${randomBytes(8).toString('hex')}`;
    const ttl = this.s.lockTtlMs;
    const deadline = Date.now() + Math.max(LOCK_WAIT_MS, ttl * 2);
    let wait = this.s.lockPollMs.first;
    // A waiter (one per account per proxy: the account service single-flights) tries again when
    // the holder's release is published, else when its poll timer fires — the fallback for a
    // holder that died (its lock expires by the TTL) or a notice the feed missed.
    let wake: (() => void) | undefined;
    // Counted: a notice may arrive (on the subscriber's connection) before the answer to a SET
    // that Redis ran before the release — then the waiter must not sleep.
    let notices = 0;
    const stopListening = this.s.feed.add((published) => {
      if (published !== notice && published !== undefined) return;
      notices += 1;
      wake?.();
    });
    try {
      for (;;) {
        const seen = notices;
        const got = await this.call(() => this.s.client.set(lockKey, owner, 'PX', ttl, 'NX'));
        if (got === 'OK') break;
        if (Date.now() > deadline) {
          throw new ProxyError(ErrorCode.UPSTREAM_UNAVAILABLE, `${key.provider}/${key.bucket} is locked by another credproxy of the fleet that has not finished a refresh — try again`);
        }
        if (notices !== seen) continue;
        await new Promise<void>((resolve) => {
          const done = (): void => {
            clearTimeout(timer);
            wake = undefined;
            resolve();
          };
          const timer = setTimeout(done, wait + Math.random() * wait);
          wake = done;
        });
        wait = Math.min(wait * 1.5, this.s.lockPollMs.max);
      }
    } finally {
      stopListening();
    }
    const timer = setInterval(() => {
      void this.s.client.cpExtend(lockKey, owner, ttl).catch(() => undefined);
    }, Math.max(100, Math.floor(ttl / 3)));
    timer.unref();
    let released = false;
    return async () => {
      if (released) return;
      released = true;
      clearInterval(timer);
      // A release that fails leaves the lock to expire by its TTL: nothing to retry.
      await this.s.client.cpRelease(lockKey, owner, this.s.feed.channel, notice).catch((err: unknown) => {
        this.s.logger.log('warn', 'could not release a token lock in Redis; it expires by itself', { provider: key.provider, bucket: key.bucket, error: err instanceof Error ? err.name : 'unknown' });
      });
    };
  }
}

function parseJson(text: string): unknown {
  return JSON.parse(text);
}

const TOKENS: RecordKind<AccountKey, AccountRecord> = {
  kind: 'tokens',
  nameOf: (k) => `tokens/${k.provider}/${k.bucket}`,
  keyOfRecord: (r) => ({ provider: r.provider, bucket: r.bucket }),
  keyOfName(rest) {
    const [provider, bucket, extra] = rest.split('/');
    return provider !== undefined && bucket !== undefined && extra === undefined && isName(provider) && isName(bucket) ? { provider, bucket } : undefined;
  },
  encode: (r) => JSON.stringify(r),
  decode(text, key) {
    const r = parseJson(text);
    if (!isPlainObject(r) || !isPlainObject(r.token) || typeof r.token.access_token !== 'string' || r.provider !== key.provider || r.bucket !== key.bucket) {
      throw new UnreadableRecordError(`tokens/${key.provider}/${key.bucket}`, 'is not a credproxy account record');
    }
    return r as unknown as AccountRecord;
  },
};

const KEYS: RecordKind<string, ApiKeyRecord> = {
  kind: 'keys',
  nameOf: (n) => `keys/${n}`,
  keyOfRecord: (r) => r.name,
  keyOfName: (rest) => (isName(rest) ? rest : undefined),
  encode: (r) => r.key,
  decode: (text, name) => ({ name, key: text }),
};

const CLIENTS: RecordKind<string, ClientRecord> = {
  kind: 'clients',
  nameOf: (n) => `clients/${n}`,
  keyOfRecord: (r) => r.name,
  keyOfName: (rest) => (isName(rest) ? rest : undefined),
  encode: (r) => JSON.stringify(r),
  decode(text, name) {
    const r = parseJson(text);
    if (!isPlainObject(r) || r.name !== name) throw new UnreadableRecordError(`clients/${name}`, 'is not a credproxy client record');
    return r as unknown as ClientRecord;
  },
};

export interface RedisBackendOptions {
  config: RedisStoreConfig;
  cipher: RecordCipher;
  logger: Logger;
  /** Another member changed the key record (rekey): read it again. */
  onKeyChange: () => Promise<void>;
  /**
   * A lock waiter's poll, the fallback to the release notice: the first wait and the longest
   * (default 2 and 15 ms, growing ×1.5, each randomized up to twice as long).
   */
  lockPollMs?: { first: number; max: number };
}

/** Connect (failing the start with a clear message when Redis does not answer) and build the stores. */
export async function openRedisBackend(o: RedisBackendOptions): Promise<Backend> {
  const where = redactRedisUrl(o.config.url);
  const client = makeClient(o.config.url);
  const feed = new ChangeFeed(o.config.url, `${o.config.prefix}changes`, o.onKeyChange);
  try {
    await client.connect();
    await feed.start();
  } catch (err) {
    client.disconnect();
    feed.close();
    throw new ProxyError(ErrorCode.UPSTREAM_UNAVAILABLE, `cannot reach the Redis store at ${where} (${err instanceof Error ? err.message : String(err)}) — start Redis, or fix "store.url" in the config`);
  }
  const shared: Shared = { client, prefix: o.config.prefix, where, cipher: o.cipher, logger: o.logger, lockTtlMs: o.config.lock_ttl_ms, lockPollMs: o.lockPollMs ?? { first: 2, max: 15 }, feed, onKeyChange: o.onKeyChange };
  let wasReady = true;
  let closing = false;
  client.on('ready', () => {
    if (!wasReady) o.logger.log('info', `the Redis store at ${where} is reachable again`);
    wasReady = true;
  });
  client.on('close', () => {
    if (wasReady && !closing) o.logger.log('warn', `lost the connection to the Redis store at ${where}; reconnecting (still-valid tokens are served from memory)`);
    wasReady = false;
  });
  const keyName = `${o.config.prefix}store-key`;
  const call = async <T>(fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (err) {
      throw unreachable(shared, err);
    }
  };
  const keyHolder: KeyRecordHolder = {
    read: async () => (await call(() => client.get(keyName))) ?? undefined,
    create: async (text) => (await call(() => client.set(keyName, text, 'NX'))) === 'OK',
    write: async (text) => {
      await call(() => client.set(keyName, text));
    },
  };
  return {
    kind: 'redis',
    location: `${o.config.url}#${o.config.prefix}`,
    tokens: new RedisTokenStore(shared, TOKENS),
    keys: new RedisRecordStore(shared, KEYS),
    clients: new RedisRecordStore(shared, CLIENTS),
    keyHolder,
    connected: () => client.status === 'ready',
    announceKeyChange: async () => {
      await client.publish(feed.channel, KEY_CHANNEL_NAME).catch(() => undefined);
    },
    close: async () => {
      closing = true;
      feed.close();
      await client.quit().catch(() => client.disconnect());
    },
  };
}

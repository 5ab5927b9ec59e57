/**
 * The config file's `"store"` and `"encryption"` fields (SPEC §8). Read once at start: changing
 * the store needs a restart.
 */
import { isPlainObject } from '../protocol/validate.js';

export interface FileStoreConfig {
  type: 'file';
}

export interface RedisStoreConfig {
  type: 'redis';
  /** `redis://[user:password@]host:port[/db]`, `rediss://…` (TLS) or `unix:///path/to/redis.sock`. */
  url: string;
  /** Every key of this store starts with it, so several stores can share one Redis. */
  prefix: string;
  /** How long a lock outlives a holder that died (kill -9) — the most a crash delays the others. */
  lock_ttl_ms: number;
}

export type StoreConfig = FileStoreConfig | RedisStoreConfig;

/** `aes-256-gcm` (the default) or `none` (plaintext, warned about at every start). */
export type EncryptionSetting = 'aes-256-gcm' | 'none';

export const DEFAULT_REDIS_PREFIX = 'credproxy:';
export const DEFAULT_LOCK_TTL_MS = 15_000;

export interface StoreSettings {
  store: StoreConfig;
  encryption: EncryptionSetting;
}

export function defaultStoreSettings(): StoreSettings {
  return { store: { type: 'file' }, encryption: 'aes-256-gcm' };
}

/** `fail(field, problem)` throws the config error naming the file. */
export function parseStoreSettings(raw: Record<string, unknown>, fail: (field: string, problem: string) => never): StoreSettings {
  const settings = defaultStoreSettings();
  if (raw.encryption !== undefined) {
    if (raw.encryption !== 'none' && raw.encryption !== 'aes-256-gcm') fail('encryption', 'must be "aes-256-gcm" (the default) or "none" (plaintext on disk)');
    settings.encryption = raw.encryption;
  }
  const s = raw.store;
  if (s === undefined) return settings;
  if (!isPlainObject(s)) fail('store', 'must be an object such as {"type": "file"} or {"type": "redis", "url": "redis://127.0.0.1:6379"}');
  if (s.type === undefined || s.type === 'file') return settings;
  if (s.type !== 'redis') fail('store.type', 'must be "file" or "redis"');
  if (typeof s.url !== 'string' || !/^(rediss?:\/\/|unix:\/\/\/)/.test(s.url)) fail('store.url', 'must be a redis://, rediss:// or unix:/// URL such as "redis://127.0.0.1:6379"');
  try {
    new URL(s.url);
  } catch {
    fail('store.url', 'is not a valid URL');
  }
  let prefix = DEFAULT_REDIS_PREFIX;
  if (s.prefix !== undefined) {
    if (typeof s.prefix !== 'string' || !/^[A-Za-z0-9:._-]{0,64}$/.test(s.prefix)) fail('store.prefix', 'must be up to 64 letters, digits or ":._-" (e.g. "credproxy:")');
    prefix = s.prefix;
  }
  let lockTtl = DEFAULT_LOCK_TTL_MS;
  if (s.lock_ttl_ms !== undefined) {
    if (typeof s.lock_ttl_ms !== 'number' || !Number.isInteger(s.lock_ttl_ms) || s.lock_ttl_ms < 500 || s.lock_ttl_ms > 300_000) {
      fail('store.lock_ttl_ms', 'must be a whole number of milliseconds between 500 and 300000');
    }
    lockTtl = s.lock_ttl_ms;
  }
  if (settings.encryption === 'none') fail('encryption', 'cannot be "none" with a Redis store — a shared store is always encrypted; set CREDPROXY_KEY_FILE or CREDPROXY_PASSPHRASE_FILE');
  settings.store = { type: 'redis', url: s.url, prefix, lock_ttl_ms: lockTtl };
  return settings;
}

/** The URL without its password, for status and logs. */
export function redactRedisUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== '') u.password = '***';
    return u.toString();
  } catch {
    return '(invalid url)';
  }
}

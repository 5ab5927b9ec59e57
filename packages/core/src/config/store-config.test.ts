import { describe, expect, it } from 'vitest';
import { parseStoreSettings, redactRedisUrl } from './store-config.js';

const fail = (field: string, problem: string): never => {
  throw new Error(`${field} ${problem}`);
};

describe('store settings', () => {
  it('defaults to an encrypted file store', () => {
    expect(parseStoreSettings({}, fail)).toEqual({ store: { type: 'file' }, encryption: 'aes-256-gcm' });
  });

  it('reads a Redis store with its defaults', () => {
    expect(parseStoreSettings({ store: { type: 'redis', url: 'redis://127.0.0.1:6379' } }, fail)).toEqual({
      store: { type: 'redis', url: 'redis://127.0.0.1:6379', prefix: 'credproxy:', lock_ttl_ms: 15_000 },
      encryption: 'aes-256-gcm',
    });
  });

  it('refuses what it cannot use, naming the field', () => {
    expect(() => parseStoreSettings({ encryption: 'rot13' }, fail)).toThrow(/^encryption /);
    expect(() => parseStoreSettings({ store: { type: 'mongo' } }, fail)).toThrow(/^store.type /);
    expect(() => parseStoreSettings({ store: { type: 'redis', url: 'http://x' } }, fail)).toThrow(/^store.url /);
    expect(() => parseStoreSettings({ store: { type: 'redis', url: 'redis://x', prefix: 'a b' } }, fail)).toThrow(/^store.prefix /);
    expect(() => parseStoreSettings({ store: { type: 'redis', url: 'redis://x', lock_ttl_ms: 10 } }, fail)).toThrow(/^store.lock_ttl_ms /);
    expect(() => parseStoreSettings({ store: { type: 'redis', url: 'redis://x' }, encryption: 'none' }, fail)).toThrow(/cannot be "none" with a Redis store/);
  });

  it('never shows a Redis password', () => {
    const shown = redactRedisUrl('redis://:hunter2-secret@redis.internal:6379/0#credproxy:');
    expect(shown).not.toContain('hunter2-secret');
    expect(shown).toContain('redis.internal:6379');
  });
});

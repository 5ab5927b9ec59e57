import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { newDataKey, RecordCipher, SEALED_PREFIX, unwrapDataKey, UnreadableRecordError, wrapDataKey } from './crypto.js';
import { parseKeyFile } from './key-source.js';

describe('RecordCipher', () => {
  const key = newDataKey();
  const cipher = RecordCipher.encrypting(key);

  it('seals with a fresh IV each time and opens only under the same record name', () => {
    const a = cipher.seal('keys/openai', 'sk-secret');
    const b = cipher.seal('keys/openai', 'sk-secret');
    expect(a).not.toBe(b);
    expect(a.startsWith(`${SEALED_PREFIX}${key.id}:`)).toBe(true);
    expect(a).not.toContain('sk-secret');
    expect(cipher.open('keys/openai', a)).toBe('sk-secret');
    expect(() => cipher.open('keys/other', a)).toThrow(UnreadableRecordError);
  });

  it('refuses a changed byte, another data key, and plaintext outside a sweep', () => {
    const sealed = cipher.seal('tokens/gh/default', '{"a":1}');
    const body = Buffer.from(sealed.slice(sealed.lastIndexOf(':') + 1), 'base64');
    body[body.length - 20]! ^= 1;
    expect(() => cipher.open('tokens/gh/default', sealed.slice(0, sealed.lastIndexOf(':') + 1) + body.toString('base64'))).toThrow(/does not decrypt/);
    expect(() => RecordCipher.encrypting(newDataKey()).open('tokens/gh/default', sealed)).toThrow(/data key/);
    expect(() => cipher.open('keys/x', 'sk-plain')).toThrow(/not encrypted/);
    expect(() => RecordCipher.plaintext().open('keys/x', sealed)).toThrow(/"encryption": "none"/);
  });

  it('a sweep reads plaintext and old-key records and names only those as stale', () => {
    const old = newDataKey();
    const next = newDataKey();
    const c = RecordCipher.encrypting(next, [old]);
    const byOld = RecordCipher.encrypting(old).seal('keys/a', 'A');
    const byNew = c.seal('keys/b', 'B');
    c.beginSweep();
    expect(c.open('keys/a', byOld)).toBe('A');
    expect(c.open('keys/b', byNew)).toBe('B');
    expect(c.open('keys/c', 'C')).toBe('C');
    expect([c.takeStale('keys/a'), c.takeStale('keys/b'), c.takeStale('keys/c')]).toEqual([true, false, true]);
    c.endSweep();
    expect(() => c.open('keys/c', 'C')).toThrow(/not encrypted/);
  });
});

describe('data key wrapping', () => {
  it('unwraps with the right key only, bound to the key id', () => {
    const kek = randomBytes(32);
    const dk = newDataKey();
    const wrapped = wrapDataKey(kek, dk);
    expect(unwrapDataKey(kek, dk.id, wrapped)?.key.equals(dk.key)).toBe(true);
    expect(unwrapDataKey(randomBytes(32), dk.id, wrapped)).toBeUndefined();
    expect(unwrapDataKey(kek, '0000000000000000', wrapped)).toBeUndefined();
    expect(wrapped).not.toContain(dk.key.toString('base64'));
  });

  it('key files: raw 32 bytes, 64 hex, base64; anything else names the fix', () => {
    const raw = randomBytes(32);
    expect(parseKeyFile(raw, 'k').equals(raw)).toBe(true);
    expect(parseKeyFile(Buffer.from(raw.toString('hex') + '\n'), 'k').equals(raw)).toBe(true);
    expect(parseKeyFile(Buffer.from(raw.toString('base64') + '\n'), 'k').equals(raw)).toBe(true);
    expect(() => parseKeyFile(Buffer.from('short'), 'k')).toThrow(/head -c 32 \/dev\/urandom/);
  });
});

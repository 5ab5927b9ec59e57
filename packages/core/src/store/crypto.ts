/**
 * Encryption at rest (SPEC §8): every record that holds a secret is sealed with AES-256-GCM under
 * a random 256-bit data key, with the record's name (`tokens/<provider>/<bucket>`, `keys/<name>`,
 * `clients/<name>`) as associated data, so a record copied under another name does not open.
 * The data key is stored only wrapped (AES-256-GCM again) by a key-encryption key that comes
 * from a key source (key-source.ts) and never lives beside the store.
 *
 * Everything here is node:crypto; nothing is hand-built.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { ErrorCode, ProxyError } from '../protocol/errors.js';

/** A sealed value: this prefix, the data key's id, ':', base64 of IV (12) | ciphertext | tag (16). */
export const SEALED_PREFIX = 'credproxy-sealed:v1:';
const IV_BYTES = 12;
const TAG_BYTES = 16;
export const DATA_KEY_BYTES = 32;

/** A data key and its id (16 hex characters, random, not derived from the key). */
export interface DataKey {
  readonly id: string;
  readonly key: Buffer;
}

export function newDataKey(): DataKey {
  return { id: randomBytes(8).toString('hex'), key: randomBytes(DATA_KEY_BYTES) };
}

function gcmSeal(key: Buffer, aad: string, plaintext: Buffer): Buffer {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
  cipher.setAAD(Buffer.from(aad, 'utf8'));
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([iv, body, cipher.getAuthTag()]);
}

/** Throws when the key is wrong, the AAD differs or a byte was changed (GCM authentication). */
function gcmOpen(key: Buffer, aad: string, sealed: Buffer): Buffer {
  if (sealed.length < IV_BYTES + TAG_BYTES) throw new Error('sealed value too short');
  const iv = sealed.subarray(0, IV_BYTES);
  const tag = sealed.subarray(sealed.length - TAG_BYTES);
  const decipher = createDecipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
  decipher.setAAD(Buffer.from(aad, 'utf8'));
  decipher.setAuthTag(tag);
  return Buffer.concat([decipher.update(sealed.subarray(IV_BYTES, sealed.length - TAG_BYTES)), decipher.final()]);
}

/** The data key wrapped by a key-encryption key (AES-256-GCM key wrap, the key id bound in). */
export function wrapDataKey(kek: Buffer, dataKey: DataKey): string {
  return gcmSeal(kek, `credproxy data key ${dataKey.id}`, dataKey.key).toString('base64');
}

/** Undefined when `kek` is not the key that wrapped it. */
export function unwrapDataKey(kek: Buffer, id: string, wrapped: string): DataKey | undefined {
  try {
    const key = gcmOpen(kek, `credproxy data key ${id}`, Buffer.from(wrapped, 'base64'));
    return key.length === DATA_KEY_BYTES ? { id, key } : undefined;
  } catch {
    return undefined;
  }
}

/** A record the store cannot open: sealed with an unknown key, tampered with, or plaintext where none is allowed. */
export class UnreadableRecordError extends ProxyError {
  /** Set when the record is sealed with a data key this process does not hold (a rekey elsewhere). */
  unknownKeyId?: string;

  constructor(readonly recordName: string, problem: string) {
    super(ErrorCode.FORBIDDEN, `stored record ${recordName} ${problem}`);
    this.name = 'UnreadableRecordError';
  }
}

export function isSealed(stored: string): boolean {
  return stored.startsWith(SEALED_PREFIX);
}

/**
 * Seals and opens records for a backend. Encrypting: every write is sealed with the current data
 * key; a read opens values sealed with any key of the ring (the previous one stays in the ring
 * while a rekey re-seals, so a crash midway leaves every record readable). Plaintext (config
 * `"encryption": "none"`): values are stored as they are, and a sealed one is refused.
 *
 * A sweep (migration of a plaintext data dir, rekey) reads records that are plaintext or sealed
 * with an older key and remembers their names, so only those are written again.
 */
export class RecordCipher {
  #current: DataKey | undefined;
  #ring = new Map<string, DataKey>();
  #sweeping = false;
  readonly #stale = new Set<string>();

  private constructor(keys: DataKey[], current: DataKey | undefined) {
    for (const k of keys) this.#ring.set(k.id, k);
    this.#current = current;
  }

  /** Values stored as they are (config `"encryption": "none"`). */
  static plaintext(): RecordCipher {
    return new RecordCipher([], undefined);
  }

  /** Seal with `current`; open anything sealed by a key in `keys` (current included). */
  static encrypting(current: DataKey, keys: DataKey[] = []): RecordCipher {
    return new RecordCipher([current, ...keys], current);
  }

  get encrypting(): boolean {
    return this.#current !== undefined;
  }

  get currentKeyId(): string | undefined {
    return this.#current?.id;
  }

  /** Replace the keys (rekey): seal with `current` from now on, open with any of `keys`. */
  setKeys(current: DataKey, keys: DataKey[]): void {
    this.#ring = new Map([current, ...keys].map((k) => [k.id, k]));
    this.#current = current;
  }

  seal(name: string, plaintext: string): string {
    const key = this.#current;
    if (key === undefined) return plaintext;
    return `${SEALED_PREFIX}${key.id}:${gcmSeal(key.key, name, Buffer.from(plaintext, 'utf8')).toString('base64')}`;
  }

  /** The plaintext of a stored value, or UnreadableRecordError naming the record and the fix. */
  open(name: string, stored: string): string {
    if (!isSealed(stored)) {
      if (this.#current === undefined) return stored;
      if (this.#sweeping) {
        this.#stale.add(name);
        return stored;
      }
      throw new UnreadableRecordError(name, 'is not encrypted although the store is — restart credproxy to encrypt it (plaintext records are migrated at start)');
    }
    if (this.#current === undefined) {
      throw new UnreadableRecordError(name, 'is encrypted but the config says "encryption": "none" — remove that setting so credproxy uses its data key');
    }
    const rest = stored.slice(SEALED_PREFIX.length);
    const colon = rest.indexOf(':');
    const id = rest.slice(0, colon);
    const key = colon > 0 ? this.#ring.get(id) : undefined;
    if (key === undefined) {
      const err = new UnreadableRecordError(name, `is sealed with data key ${colon > 0 ? id : '(none)'}, which this store's key record does not hold — was it copied from another store?`);
      err.unknownKeyId = id;
      throw err;
    }
    let plain: Buffer;
    try {
      plain = gcmOpen(key.key, name, Buffer.from(rest.slice(colon + 1), 'base64'));
    } catch {
      throw new UnreadableRecordError(name, 'does not decrypt: it was changed, or copied from another record name');
    }
    if (this.#sweeping && id !== this.#current.id) this.#stale.add(name);
    return plain.toString('utf8');
  }

  /** Start a sweep: plaintext and old-key records are readable and remembered. */
  beginSweep(): void {
    this.#sweeping = true;
    this.#stale.clear();
  }

  /** During a sweep: whether the record just read must be written again (and forget it). */
  takeStale(name: string): boolean {
    return this.#stale.delete(name);
  }

  endSweep(): void {
    this.#sweeping = false;
    this.#stale.clear();
  }

  /** The ids of the keys that can open records (current first). */
  get keyIds(): string[] {
    return [...this.#ring.keys()];
  }
}

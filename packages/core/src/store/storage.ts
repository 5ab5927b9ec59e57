/**
 * The proxy's storage (SPEC §8): the backend the config names (file or Redis), its data key
 * unwrapped from the key source, the three record stores sealing through one RecordCipher, the
 * migration of a plaintext data dir, `store status` and `store rekey`.
 */
import { promises as fs } from 'node:fs';
import type { ClientRecord, ClientStore } from '../clients/registry.js';
import { ConfigSource } from '../config/config-file.js';
import { defaultStoreSettings, redactRedisUrl, type StoreSettings } from '../config/store-config.js';
import type { CredproxyPaths } from '../paths.js';
import { ErrorCode, ProxyError } from '../protocol/errors.js';
import type { StoreRekeyResult, StoreStatusResult } from '../protocol/ops.js';
import { readFileIfExists, writeFileAtomic } from '../util/fs-secure.js';
import type { Logger } from '../util/logger.js';
import type { RecordStore } from '../util/record-store.js';
import type { ApiKeyRecord, ApiKeyStore } from './api-keys.js';
import { FileClientStore } from './backends/file-clients.js';
import { FileApiKeyStore } from './backends/file-keys.js';
import { FileTokenStore, tokenRecordName } from './backends/file-tokens.js';
import { type DataKey, newDataKey, RecordCipher, unwrapDataKey, wrapDataKey } from './crypto.js';
import {
  ensureAutoKeyFile,
  keyFileSource,
  keyringAccount,
  keyringSource,
  type KeySource,
  type KeySourceKind,
  passphraseFileSource,
  passphraseSource,
  type ScryptParams,
} from './key-source.js';
import type { AccountRecord, TokenStore } from './token-store.js';
import type { Backend, KeyRecordHolder } from './backend.js';

export type { Backend, KeyRecordHolder };

/** The wrapped data key and which source wraps it (store-key.json, or the Redis key). */
export interface StoreKeyRecord {
  format: 'credproxy-store-key';
  version: 1;
  key_source: Exclude<KeySourceKind, 'none'>;
  /** The key that seals new writes; the others only open older records (a rekey in progress, or retired). */
  current: string;
  keys: Array<{ id: string; wrapped: string }>;
  kdf?: ScryptParams;
}

function parseKeyRecord(text: string, where: string): StoreKeyRecord {
  let r: StoreKeyRecord;
  try {
    r = JSON.parse(text) as StoreKeyRecord;
  } catch {
    throw new ProxyError(ErrorCode.INTERNAL_ERROR, `${where} is not a credproxy store key record`);
  }
  if (r?.format !== 'credproxy-store-key' || !Array.isArray(r.keys) || typeof r.current !== 'string') {
    throw new ProxyError(ErrorCode.INTERNAL_ERROR, `${where} is not a credproxy store key record`);
  }
  return r;
}

export function fileKeyRecordHolder(file: string): KeyRecordHolder {
  return {
    read: () => readFileIfExists(file),
    async create(text) {
      // link() fails when the name exists: of two first starts, one wins and the other reads it.
      const tmp = `${file}.${process.pid}.new`;
      await writeFileAtomic(tmp, text);
      try {
        await fs.link(tmp, file);
        return true;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
        throw err;
      } finally {
        await fs.rm(tmp, { force: true });
      }
    },
    write: (text) => writeFileAtomic(file, text),
  };
}

export interface KeySourceChoice {
  /** Build the source for `recorded` (the one that wrapped the stored key), or for a new store. */
  resolve(recorded: StoreKeyRecord['key_source'] | undefined): Promise<KeySource>;
  /** The source that wrapped the stored key, when it differs from the chosen one and can still be reached. */
  previous(recorded: StoreKeyRecord['key_source']): Promise<KeySource | undefined>;
}

export interface KeySourceOptions {
  env: NodeJS.ProcessEnv;
  backend: 'file' | 'redis';
  paths: Pick<CredproxyPaths, 'autoKeyFile' | 'dataDir'>;
  /** Where the store lives (data dir or Redis URL + prefix): names the keyring entry. */
  storeLocation: string;
  askPassphrase?: () => Promise<string>;
  logger: Logger;
}

function refuse(message: string): ProxyError {
  return new ProxyError(ErrorCode.INVALID_REQUEST, message);
}

/** SPEC §8's order: key file, passphrase, keyring, else a key file made in the config dir. */
export function keySourceChoice(o: KeySourceOptions): KeySourceChoice {
  const explicit = (): KeySource | undefined => {
    if (o.env.CREDPROXY_KEY_FILE) return keyFileSource(o.env.CREDPROXY_KEY_FILE);
    if (o.env.CREDPROXY_PASSPHRASE_FILE) return passphraseFileSource(o.env.CREDPROXY_PASSPHRASE_FILE);
    return undefined;
  };
  return {
    async resolve(recorded) {
      const chosen = explicit();
      if (chosen) return chosen;
      if (o.askPassphrase && (recorded === 'passphrase' || o.backend === 'redis')) return passphraseSource(o.askPassphrase, 'terminal prompt');
      if (o.backend === 'redis') {
        throw refuse('a Redis store needs an explicit key: set CREDPROXY_KEY_FILE (the same 32-byte key file on every machine of the fleet) or CREDPROXY_PASSPHRASE_FILE — the keyring is per machine, and a key beside one proxy would not reach the others');
      }
      if (recorded === 'passphrase') throw refuse('this store\'s data key is wrapped by a passphrase — set CREDPROXY_PASSPHRASE_FILE, or run `credproxy serve` in a terminal to type it');
      if (recorded === 'key_file') throw refuse('this store\'s data key is wrapped by a key file — set CREDPROXY_KEY_FILE to it');
      const auto = keyFileSource(o.paths.autoKeyFile, 'auto_key_file');
      if (recorded === 'auto_key_file') return auto;
      const keyring = o.env.CREDPROXY_NO_KEYRING ? undefined : await keyringSource(keyringAccount(o.storeLocation), o.env);
      if (keyring) return keyring;
      if (recorded === 'keyring') {
        throw refuse('this store\'s data key is wrapped by the OS keyring, which does not answer — unlock it (a desktop session, or gnome-keyring-daemon --unlock), or set CREDPROXY_KEY_FILE to move away from it once the keyring answers');
      }
      if (await ensureAutoKeyFile(o.paths.autoKeyFile, o.paths.dataDir)) {
        o.logger.log('warn', `NOTICE: no key source is configured and no OS keyring answers, so credproxy created the key file ${o.paths.autoKeyFile} (0600) to encrypt its data. Anyone who can read that file and the data dir can read your tokens. Stronger: CREDPROXY_KEY_FILE (a key on another disk, or a systemd credential), CREDPROXY_PASSPHRASE_FILE, or an OS keyring.`);
      }
      return auto;
    },
    async previous(recorded) {
      if (recorded === 'auto_key_file') {
        const exists = await fs.stat(o.paths.autoKeyFile).then(() => true, () => false);
        return exists ? keyFileSource(o.paths.autoKeyFile, 'auto_key_file') : undefined;
      }
      if (recorded === 'keyring') return keyringSource(keyringAccount(o.storeLocation), o.env);
      return undefined;
    },
  };
}

interface LoadedKeys {
  record: StoreKeyRecord;
  source: KeySource;
  current: DataKey;
  others: DataKey[];
}

async function unwrapAll(record: StoreKeyRecord, kek: Buffer, where: string): Promise<{ current: DataKey; others: DataKey[] } | undefined> {
  const keys: DataKey[] = [];
  for (const k of record.keys) {
    const key = unwrapDataKey(kek, k.id, k.wrapped);
    if (!key) return undefined;
    keys.push(key);
  }
  const current = keys.find((k) => k.id === record.current);
  if (!current) throw new ProxyError(ErrorCode.INTERNAL_ERROR, `${where} names a current key it does not hold`);
  return { current, others: keys.filter((k) => k !== current) };
}

/** Read (or create) the wrapped data key and unwrap it with the chosen source. */
export async function loadDataKeys(holder: KeyRecordHolder, choice: KeySourceChoice, where: string, logger: Logger): Promise<LoadedKeys> {
  for (let attempt = 0; attempt < 3; attempt++) {
    const text = await holder.read();
    if (text === undefined) {
      const source = await choice.resolve(undefined);
      const { kek, kdf } = await source.kek();
      const current = newDataKey();
      const record: StoreKeyRecord = { format: 'credproxy-store-key', version: 1, key_source: source.kind, current: current.id, keys: [{ id: current.id, wrapped: wrapDataKey(kek, current) }], ...(kdf ? { kdf } : {}) };
      if (await holder.create(JSON.stringify(record, null, 2) + '\n')) {
        logger.log('info', 'created a new data key for the store', { key_source: source.kind });
        return { record, source, current, others: [] };
      }
      continue; // another proxy created it first: use theirs
    }
    const record = parseKeyRecord(text, where);
    const source = await choice.resolve(record.key_source);
    if (source.kind === record.key_source) {
      const { kek } = await source.kek(record.kdf);
      const keys = await unwrapAll(record, kek, where);
      if (!keys) {
        throw refuse(`the ${source.kind.replace(/_/g, ' ')}${source.location ? ` (${source.location})` : ''} does not unwrap this store's data key (${where}) — it is not the key or passphrase this store was encrypted with`);
      }
      return { record, source, ...keys };
    }
    // The configured source changed (e.g. CREDPROXY_KEY_FILE set on a store the keyring wrapped):
    // unwrap with the old one, wrap again with the new one.
    const previous = await choice.previous(record.key_source);
    const keys = previous ? await unwrapAll(record, (await previous.kek(record.kdf)).kek, where) : undefined;
    if (!keys) {
      throw refuse(`this store's data key is wrapped by the ${record.key_source.replace(/_/g, ' ')}, which is not available to unwrap it for the ${source.kind.replace(/_/g, ' ')} now configured — unset the new setting, or restore the old key source once`);
    }
    const { kek, kdf } = await source.kek();
    const rewrapped: StoreKeyRecord = {
      format: 'credproxy-store-key',
      version: 1,
      key_source: source.kind,
      current: record.current,
      keys: [keys.current, ...keys.others].map((k) => ({ id: k.id, wrapped: wrapDataKey(kek, k) })),
      ...(kdf ? { kdf } : {}),
    };
    await holder.write(JSON.stringify(rewrapped, null, 2) + '\n');
    logger.log('warn', `the store's data key is now wrapped by the ${source.kind.replace(/_/g, ' ')} (was the ${record.key_source.replace(/_/g, ' ')})`);
    return { record: rewrapped, source, ...keys };
  }
  throw new ProxyError(ErrorCode.INTERNAL_ERROR, `${where} keeps changing while credproxy reads it`);
}

export interface Storage {
  readonly kind: 'file' | 'redis';
  readonly tokens: TokenStore;
  readonly keys: ApiKeyStore;
  readonly clients: ClientStore;
  readonly cipher: RecordCipher;
  status(): Promise<StoreStatusResult>;
  rekey(): Promise<StoreRekeyResult>;
  /** Re-read the key record (another member rekeyed). */
  reloadKeys(): Promise<void>;
  close(): Promise<void>;
}

export interface StorageOptions {
  paths: CredproxyPaths;
  settings: StoreSettings;
  env: NodeJS.ProcessEnv;
  logger: Logger;
  askPassphrase?: () => Promise<string>;
  /** Builds the Redis backend (store/backends/redis-store.ts), loaded only for a Redis store. */
  redis?: (cipher: RecordCipher, reloadKeys: () => Promise<void>) => Promise<Backend>;
}

interface Counts {
  tokens: number;
  api_keys: number;
  clients: number;
}

/**
 * Read every record; write again each one the cipher marks stale (plaintext, or sealed with a key
 * that is not the current one). Tokens are rewritten under their lock with compare-and-swap, so
 * a concurrent refresh is never overwritten. A record that cannot be read is logged and left.
 */
async function sweep(cipher: RecordCipher, tokens: TokenStore, keys: ApiKeyStore, clients: RecordStore<string, ClientRecord>, logger: Logger): Promise<Counts> {
  const counts: Counts = { tokens: 0, api_keys: 0, clients: 0 };
  cipher.beginSweep();
  try {
    for (const key of await tokens.list()) {
      const unlock = await tokens.lock(key);
      try {
        const current = tokens.read ? await tokens.read(key) : undefined;
        if (current && cipher.takeStale(tokenRecordName(key))) {
          await tokens.put(current.record, { ifVersion: current.version });
          counts.tokens += 1;
        }
      } catch (err) {
        logger.log('error', `could not re-encrypt ${tokenRecordName(key)}: ${err instanceof Error ? err.message : String(err)}`);
      } finally {
        await unlock();
      }
    }
    for (const name of await keys.list()) {
      const record: ApiKeyRecord | undefined = await keys.get(name).catch((err: unknown) => {
        logger.log('error', `could not re-encrypt keys/${name}: ${err instanceof Error ? err.message : String(err)}`);
        return undefined;
      });
      if (record && cipher.takeStale(`keys/${name}`)) {
        await keys.put(record);
        counts.api_keys += 1;
      }
    }
    for (const name of await clients.list()) {
      const record = await clients.get(name);
      if (record && cipher.takeStale(`clients/${name}`)) {
        await clients.put(record);
        counts.clients += 1;
      }
    }
  } finally {
    cipher.endSweep();
  }
  return counts;
}

export async function openStorage(options: StorageOptions): Promise<Storage> {
  const { paths, settings, logger } = options;
  const plaintext = settings.encryption === 'none';
  const cipher = plaintext ? RecordCipher.plaintext() : RecordCipher.encrypting(newDataKey()); // replaced below
  let reload: () => Promise<void> = async () => undefined;
  let backend: Backend;
  if (settings.store.type === 'redis') {
    if (!options.env.CREDPROXY_KEY_FILE && !options.env.CREDPROXY_PASSPHRASE_FILE && !options.askPassphrase) {
      // Refused before connecting: the fix is the same whether Redis answers or not.
      await keySourceChoice({ env: options.env, backend: 'redis', paths, storeLocation: '', logger }).resolve(undefined);
    }
    if (!options.redis) throw new ProxyError(ErrorCode.INTERNAL_ERROR, 'the Redis store is not available in this build');
    backend = await options.redis(cipher, () => reload());
  } else {
    const holder = fileKeyRecordHolder(paths.storeKeyFile);
    backend = {
      kind: 'file',
      location: paths.dataDir,
      tokens: new FileTokenStore(paths.tokensDir, { logger, cipher }),
      keys: new FileApiKeyStore(paths.keysDir, { cipher }),
      clients: new FileClientStore(paths.clientsFile, { cipher }),
      keyHolder: holder,
      connected: () => true,
      announceKeyChange: async () => undefined,
      close: async () => undefined,
    };
  }
  const where = backend.kind === 'file' ? paths.storeKeyFile : `the store key in Redis (${redactRedisUrl(backend.location)})`;
  const warnings: string[] = [];
  let source: KeySource | undefined;
  let record: StoreKeyRecord | undefined;
  try {
    if (plaintext) {
      const msg = 'encryption is off ("encryption": "none" in the config): tokens, API keys and the client registry are stored in plaintext — remove that setting to encrypt them';
      logger.log('warn', `WARNING: ${msg}`);
      warnings.push(msg);
      if ((await backend.keyHolder.read()) !== undefined) {
        throw refuse(`this store is encrypted (${where}) but the config says "encryption": "none" — remove that setting`);
      }
    } else {
      const choice = keySourceChoice({
        env: options.env,
        backend: backend.kind,
        paths,
        storeLocation: backend.kind === 'file' ? paths.dataDir : backend.location,
        ...(options.askPassphrase ? { askPassphrase: options.askPassphrase } : {}),
        logger,
      });
      const loaded = await loadDataKeys(backend.keyHolder, choice, where, logger);
      source = loaded.source;
      record = loaded.record;
      cipher.setKeys(loaded.current, loaded.others);
      if (source.kind === 'auto_key_file') {
        warnings.push(`the data key is wrapped by ${source.location}, a key file credproxy created in the config dir — set CREDPROXY_KEY_FILE, CREDPROXY_PASSPHRASE_FILE or use an OS keyring for stronger protection`);
      }
      reload = async () => {
        const text = await backend.keyHolder.read();
        if (text === undefined || !source) return;
        const next = parseKeyRecord(text, where);
        const keys = await unwrapAll(next, (await source.kek(next.kdf)).kek, where);
        if (!keys) return;
        record = next;
        cipher.setKeys(keys.current, keys.others);
        logger.log('info', 'the store\'s data key changed elsewhere; using the new one');
      };
      // Migration: plaintext records (an older credproxy's data dir) and records of a rekey that
      // a crash interrupted are sealed again with the current key, one atomic write each.
      const migrated = await sweep(cipher, backend.tokens, backend.keys, backend.clients, logger);
      const total = migrated.tokens + migrated.api_keys + migrated.clients;
      if (total > 0) logger.log('warn', `encrypted ${total} stored records with the current data key`, { ...migrated });
    }
  } catch (err) {
    await backend.close().catch(() => undefined);
    throw err;
  }

  const counts = async (): Promise<Counts> => ({
    tokens: (await backend.tokens.list()).length,
    api_keys: (await backend.keys.list()).length,
    clients: (await backend.clients.list()).length,
  });

  let rekeying: Promise<StoreRekeyResult> | undefined;
  return {
    kind: backend.kind,
    tokens: backend.tokens,
    keys: backend.keys,
    clients: backend.clients,
    cipher,
    async status() {
      const result: StoreStatusResult = {
        backend: backend.kind,
        key_source: source?.kind ?? 'none',
        encrypted: cipher.encrypting,
        location: backend.kind === 'file' ? backend.location : redactRedisUrl(backend.location),
        connected: backend.connected(),
        warnings: [...warnings],
      };
      if (source?.location !== undefined) result.key_location = source.location;
      if (cipher.currentKeyId !== undefined) result.data_key_id = cipher.currentKeyId;
      try {
        result.records = await counts();
      } catch {
        // Redis down: status still answers, without counts.
      }
      return result;
    },
    rekey() {
      rekeying ??= (async (): Promise<StoreRekeyResult> => {
        if (!source || !record) throw refuse('encryption is off ("encryption": "none") — there is no data key to replace');
        const { kek } = await source.kek(record.kdf);
        const old = await unwrapAll(record, kek, where);
        if (!old) throw refuse(`the ${source.kind.replace(/_/g, ' ')} no longer unwraps the data key — restart credproxy`);
        const next = newDataKey();
        const olds = [old.current, ...old.others];
        const during: StoreKeyRecord = { ...record, current: next.id, keys: [next, ...olds].map((k) => ({ id: k.id, wrapped: wrapDataKey(kek, k) })) };
        // The new key is stored (beside the old ones) before any record is sealed with it.
        await backend.keyHolder.write(JSON.stringify(during, null, 2) + '\n');
        record = during;
        cipher.setKeys(next, olds);
        await backend.announceKeyChange();
        const resealed = await sweep(cipher, backend.tokens, backend.keys, backend.clients, logger);
        // Files: one proxy per data dir, so the old keys go. A fleet keeps the previous key
        // (retired: opens, never seals) so a member that has not heard of the rekey yet still reads.
        const keep = backend.kind === 'redis' ? [old.current] : [];
        const after: StoreKeyRecord = { ...during, keys: [next, ...keep].map((k) => ({ id: k.id, wrapped: wrapDataKey(kek, k) })) };
        await backend.keyHolder.write(JSON.stringify(after, null, 2) + '\n');
        record = after;
        cipher.setKeys(next, keep);
        await backend.announceKeyChange();
        logger.log('info', 'the store\'s data key was replaced', { ...resealed });
        return { rekeyed: resealed, key_source: source.kind, data_key_id: next.id };
      })().finally(() => {
        rekeying = undefined;
      });
      return rekeying;
    },
    reloadKeys: () => reload(),
    close: () => backend.close(),
  };
}

export type { AccountRecord };

/** The storage the config file names (read once at start), the Redis backend loaded only when used. */
export async function openConfiguredStorage(options: Omit<StorageOptions, 'settings' | 'redis'>): Promise<Storage> {
  const config = await new ConfigSource(options.paths.configFile).get();
  const settings = config.storage ?? defaultStoreSettings();
  const store = settings.store;
  return openStorage({
    ...options,
    settings,
    redis: async (cipher, reloadKeys) => {
      if (store.type !== 'redis') throw new ProxyError(ErrorCode.INTERNAL_ERROR, 'not a Redis store');
      const { openRedisBackend } = await import('./backends/redis-store.js');
      return openRedisBackend({ config: store, cipher, logger: options.logger, onKeyChange: reloadKeys });
    },
  });
}

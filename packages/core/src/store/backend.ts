/**
 * What a storage backend (file or Redis) hands store/storage.ts: the three record stores and
 * the place of the wrapped data key. Its own file so that backends and storage.ts import it and
 * not each other.
 */
import type { ClientStore } from '../clients/registry.js';
import type { ApiKeyStore } from './api-keys.js';
import type { TokenStore } from './token-store.js';

/** Where the wrapped data key lives: a file in the data dir, or a key in Redis. */
export interface KeyRecordHolder {
  read(): Promise<string | undefined>;
  /** Write only if there is none yet; false when another writer was first. */
  create(text: string): Promise<boolean>;
  write(text: string): Promise<void>;
}

/** What a backend offers the storage besides the three stores. */
export interface Backend {
  kind: 'file' | 'redis';
  location: string;
  tokens: TokenStore;
  keys: ApiKeyStore;
  clients: ClientStore;
  keyHolder: KeyRecordHolder;
  connected(): boolean;
  /** Tell the other members that the key record changed (Redis); no-op for files. */
  announceKeyChange(): Promise<void>;
  close(): Promise<void>;
}


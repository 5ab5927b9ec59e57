/**
 * The token store contract. The file store is the default; encrypted-at-rest and shared (Redis)
 * stores are meant to be adapters of this same small interface.
 */

/** What the proxy keeps for one account, secrets included. Expiry in unix seconds. */
export interface StoredToken {
  access_token: string;
  token_type: string;
  refresh_token?: string;
  expiry?: number;
  scope?: string;
  id_token?: string;
  [providerField: string]: unknown;
}

export interface AccountRecord {
  provider: string;
  bucket: string;
  token: StoredToken;
  /** Set when the provider refused the refresh token (invalid_grant): a new login is needed. */
  needs_login?: boolean;
  /** Unix milliseconds of the last write. */
  updated_at: number;
}

export interface AccountKey {
  provider: string;
  bucket: string;
}

/**
 * Releases a lock taken with {@link TokenStore.lock}. It should not reject: a release that fails
 * is the store's to retry (with backoff, in the background) until the lock is gone, so a passing
 * fault such as EMFILE never leaves a stale lock behind.
 */
export type Unlock = () => Promise<void>;

export interface TokenStore {
  get(key: AccountKey): Promise<AccountRecord | undefined>;
  /**
   * Durable before it resolves: a crash after this leaves the new record on disk. It may fail
   * (EMFILE, ENOSPC, ...); the account service then holds the record in memory and retries.
   */
  put(record: AccountRecord): Promise<void>;
  delete(key: AccountKey): Promise<boolean>;
  list(): Promise<AccountKey[]>;
  /** Exclusive lock on one account, across processes sharing the store. */
  lock(key: AccountKey): Promise<Unlock>;
}

/** Fields that are secret and never leave the proxy in a response. */
export const SECRET_TOKEN_FIELDS: ReadonlySet<string> = new Set([
  'refresh_token',
  'client_secret',
  'code_verifier',
  'device_code',
]);

/**
 * The token store: records of OAuth accounts, secrets included, under the storage contract of
 * util/record-store.ts plus a per-account lock. The file store (backends/file-tokens.ts) is the
 * default; backends/memory.ts is for tests. Only the account service (accounts.ts) reads and
 * writes it.
 */
import type { LockingRecordStore, Unlock } from '../util/record-store.js';

export type { Unlock };

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
  /** Who is logged in (SPEC §7), found at login; not a secret. */
  account?: string;
  /** Unix milliseconds of the last write. */
  updated_at: number;
}

export interface AccountKey {
  provider: string;
  bucket: string;
}

/**
 * The token store. `put` is durable before it resolves; it may fail (EMFILE, ENOSPC, ...), and the
 * account service then holds the record in memory and retries. `lock` is exclusive on one
 * account across processes sharing the store, held for at most one refresh or login write.
 */
export type TokenStore = LockingRecordStore<AccountKey, AccountRecord>;

/** Fields that are secret and never leave the proxy in a response. */
export const SECRET_TOKEN_FIELDS: ReadonlySet<string> = new Set([
  'refresh_token',
  'client_secret',
  'code_verifier',
  'device_code',
]);

/**
 * The storage contract every credproxy store implements: the token store (AccountRecord by
 * provider/bucket, plus a lock), the API-key store (ApiKeyRecord by name) and the client
 * registry's storage (ClientRecord by name). A backend is one file implementing it:
 * `store/backends/file-*.ts` (the default, one data dir on local disk) and
 * `store/backends/memory.ts` (for tests; keeps nothing). An encrypted-at-rest wrapper and a
 * shared (Redis) backend are meant to be one file each, implementing this same interface.
 *
 * It lives in util/, not store/, because the client registry (clients/, a lower layer than
 * store/) reads and writes through it too.
 *
 * What every backend guarantees:
 * - A record carries its own key; `put` replaces the whole record stored under that key.
 * - `put` and `delete` are durable when they resolve: a crash afterwards, or a `get` from another
 *   process sharing the store, sees the new state. They may reject (EMFILE, ENOSPC, a refused
 *   directory, ...); nothing is half-written then.
 * - `get` of a missing key is `undefined`, `delete` of a missing key is `false`: absence is not an
 *   error. A record that cannot be trusted or parsed is an error (ProxyError FORBIDDEN naming
 *   the fix for files planted by someone else), never an empty answer.
 * - `list` answers keys only, in a stable order, never secrets.
 * - Values are copies: mutating a record after `put` or after `get` changes nothing stored.
 *
 * - Compare-and-swap: a store that can say which version of a record it holds (`read`) takes
 *   `put(record, {ifVersion})` and rejects with VersionConflictError when the stored version is
 *   another one (`null`: the record must not exist) — so a stale writer (a proxy whose lock
 *   expired mid-refresh) loses instead of overwriting a rotated refresh token. Stores without
 *   versions ignore `ifVersion`.
 */
export interface RecordStore<K, R> {
  get(key: K): Promise<R | undefined>;
  put(record: R, options?: PutOptions): Promise<void>;
  delete(key: K): Promise<boolean>;
  list(): Promise<K[]>;
  /**
   * Optional change feed, for callers that keep records in memory: `onChange(key)` is called
   * after the record under `key` may have changed by any writer (another process included),
   * `onChange()` when any record may have. Calls may be spurious or coalesced, never missed
   * while the watch is live. A store without it gets no caching in front of it.
   */
  watch?(onChange: (key?: K) => void): StoreWatch;
}

/** An opaque tag of one stored state of a record: equal tags, same bytes. */
export type RecordVersion = string;

export interface PutOptions {
  /** Write only if the stored record is at this version (`null`: only if there is none). */
  ifVersion?: RecordVersion | null;
}

export interface Versioned<R> {
  record: R;
  version: RecordVersion;
}

/** put with `ifVersion` found another version stored: someone else wrote first. */
export class VersionConflictError extends Error {
  constructor(readonly recordName: string) {
    super(`${recordName} was changed by another writer`);
    this.name = 'VersionConflictError';
  }
}

/** A change feed opened with {@link RecordStore.watch}. */
export interface StoreWatch {
  /**
   * True while changes are being reported. When false (watching is unavailable, or broke), a
   * caller may keep a record in memory only briefly and must read it again after that. Cheap
   * to read on every request.
   */
  readonly live: boolean;
  close(): void;
}

/**
 * Releases a lock taken with {@link LockingRecordStore.lock}. It should not reject: a release that
 * fails is the store's to retry (with backoff, in the background) until the lock is gone, so a
 * passing fault such as EMFILE never leaves a stale lock behind.
 */
export type Unlock = () => Promise<void>;

/** A record store whose records can be locked, one at a time, across processes sharing it. */
export interface LockingRecordStore<K, R> extends RecordStore<K, R> {
  /** Exclusive lock on one key; waits (bounded) while another holder has it. */
  lock(key: K): Promise<Unlock>;
  /** The record with its version, for a compare-and-swap put (optional: test stores may lack it). */
  read?(key: K): Promise<Versioned<R> | undefined>;
}

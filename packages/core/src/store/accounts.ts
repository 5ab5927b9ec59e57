/**
 * Accounts: the token store behind an in-memory cache, the refresh single-flight, the token view
 * served to clients, and per-bucket request counts. Serving a valid cached token does no disk I/O.
 */
import type {
  AccountState,
  AccountStatus,
  BucketStatsResult,
  ImportedToken,
  TokenView,
} from '../protocol/ops.js';
import { ErrorCode, ProxyError } from '../protocol/errors.js';
import { deepFreeze } from '../protocol/codec.js';
import { DEFAULT_MIN_VALID_SECONDS } from '../protocol/limits.js';
import { type Clock, unixSeconds } from '../util/clock.js';
import { silentLogger, type Logger } from '../util/logger.js';
import { type RecordVersion, type Versioned, VersionConflictError } from '../util/record-store.js';
import { SECRET_TOKEN_FIELDS, type AccountKey, type AccountRecord, type StoredToken, type TokenStore } from './token-store.js';

/** A token within this many seconds of expiry is reported as `expiring`. */
export const EXPIRING_WINDOW_SECONDS = 300;

/**
 * Tokens imported or issued without an expiry are served with this lifetime from the moment they
 * were stored; clients (llxprt's among them) need a number, and a refresh later corrects it.
 */
export const UNKNOWN_EXPIRY_SECONDS = 3600;

/** What one refresh grant gave: a new record to store, or the provider's refusal (invalid_grant). */
export type GrantOutcome =
  | { kind: 'refreshed'; record: AccountRecord }
  | { kind: 'refused' };

/**
 * Turns a stored record into a fresh one by asking the provider; the refresh flow provides it. It
 * writes nothing: the account service takes the lock, re-reads, calls it and stores the result.
 */
export interface TokenRefresher {
  /** One refresh grant (with its own retries of transient failures) for `record`'s refresh token. */
  grant(record: AccountRecord): Promise<GrantOutcome>;
  /** Whether this record can be refreshed at all (a refresh token and a configured provider). */
  canRefresh(record: AccountRecord): boolean;
}

interface Usage {
  count: number;
  lastUsed: number;
}

function cacheKey(key: AccountKey): string {
  return `${key.provider}\u0000${key.bucket}`;
}

/**
 * No such account. get_token answers NOT_FOUND (llxprt's sandbox client maps exactly that code to
 * "no token"); other ops answer NOT_LOGGED_IN. The message is the same: it names the fix.
 */
export function notLoggedIn(provider: string, bucket: string, code: ErrorCode = ErrorCode.NOT_LOGGED_IN): ProxyError {
  const suffix = bucket === 'default' ? '' : ` --bucket ${bucket}`;
  return new ProxyError(
    code,
    `${provider}${bucket === 'default' ? '' : ` (bucket ${bucket})`} is not logged in — run \`credproxy login ${provider}${suffix}\``,
  );
}

export function reauthRequired(provider: string, bucket: string, why: string): ProxyError {
  const suffix = bucket === 'default' ? '' : ` --bucket ${bucket}`;
  return new ProxyError(
    ErrorCode.REAUTH_REQUIRED,
    `${provider}: ${why} — run \`credproxy login ${provider}${suffix}\``,
  );
}

/** The token without its secrets: what get_token and refresh_token answer. */
export function toTokenView(record: AccountRecord): TokenView {
  const view: TokenView = {
    access_token: record.token.access_token,
    token_type: 'Bearer',
    expiry: effectiveExpiry(record),
  };
  for (const [field, value] of Object.entries(record.token)) {
    if (field === 'access_token' || field === 'token_type' || field === 'expiry') continue;
    if (SECRET_TOKEN_FIELDS.has(field) || value === undefined) continue;
    view[field] = value;
  }
  return view;
}

export function effectiveExpiry(record: AccountRecord): number {
  return record.token.expiry ?? Math.floor(record.updated_at / 1000) + UNKNOWN_EXPIRY_SECONDS;
}

/**
 * At most one refresh grant per account per this interval, unless the token is near expiry
 * (within the default get_token threshold): a client that keeps asking for more validity than
 * the provider issues, or keeps forcing refreshes, gets the token refreshed moments ago instead
 * of rotating the grant on every call.
 */
export const MIN_REFRESH_INTERVAL_MS = 30_000;

/** Backoff of the background retries of a token write that failed: doubled, with jitter, capped. */
export const WRITE_RETRY_BASE_MS = 250;
export const WRITE_RETRY_MAX_MS = 30_000;

export interface AccountServiceOptions {
  store: TokenStore;
  clock: Clock;
  refresher?: TokenRefresher;
  /** Warnings about token writes that failed and are being retried (never token bytes). */
  logger?: Logger;
  minRefreshIntervalMs?: number;
  /** Backoff of write retries, ms. */
  retryBaseMs?: number;
  retryMaxMs?: number;
  random?: () => number;
}

export interface RefreshRequest {
  /** Skip the per-account rate bound (the owner's explicit refresh_token). */
  force?: boolean;
}

/** A record the store refused to write: served from memory and written again until it lands. */
interface PendingWrite {
  record: AccountRecord;
  failures: number;
  timer: NodeJS.Timeout | undefined;
  flushing: boolean;
}

/** The errno code (EMFILE, ENOSPC, ...) or class name of a failure: safe to log, no token bytes. */
function failureCode(err: unknown): string {
  if (err instanceof ProxyError) return err.code;
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string') return code;
  return err instanceof Error ? err.name : 'unknown';
}

/**
 * A record read from disk replaces the one held in memory only when it was written later and is
 * not merely the refusal of an older refresh token (another process that tried the consumed one).
 */
function supersedes(onDisk: AccountRecord, held: AccountRecord): boolean {
  if (onDisk.updated_at <= held.updated_at) return false;
  return !(onDisk.needs_login === true && onDisk.token.refresh_token !== held.token.refresh_token);
}

function raceAbort<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      if (signal.aborted) reject(signal.reason);
      signal.addEventListener('abort', () => reject(signal.reason), { once: true });
    }),
  ]);
}

/**
 * The one reader and writer of the token store for the proxy. Writes are durable when the disk
 * works; a record the store cannot write (EMFILE, ENOSPC, ...) is never dropped — it stays the
 * account's source of truth in memory, is served and used for the next refresh, and is written
 * again in the background with backoff, on every later write of the account, and at close().
 */
export class AccountService {
  readonly #store: TokenStore;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #refresher: TokenRefresher | undefined;
  readonly #cache = new Map<string, AccountRecord>();
  /** The served view of each cached record, built once per record. */
  readonly #views = new WeakMap<AccountRecord, TokenView>();
  readonly #usage = new Map<string, Usage>();
  /** Records not yet on disk, by account. */
  readonly #pending = new Map<string, PendingWrite>();
  /** One refresh per account at a time inside this process (across processes: the store lock). */
  readonly #inflight = new Map<string, Promise<AccountRecord>>();
  /** When this process last obtained a new record for each account by refreshing. */
  readonly #lastRefresh = new Map<string, number>();
  readonly #minRefreshIntervalMs: number;
  readonly #retryBaseMs: number;
  readonly #retryMaxMs: number;
  readonly #random: () => number;
  #closed = false;

  constructor(options: AccountServiceOptions) {
    this.#store = options.store;
    this.#clock = options.clock;
    this.#logger = options.logger ?? silentLogger;
    this.#refresher = options.refresher;
    this.#minRefreshIntervalMs = options.minRefreshIntervalMs ?? MIN_REFRESH_INTERVAL_MS;
    this.#retryBaseMs = options.retryBaseMs ?? WRITE_RETRY_BASE_MS;
    this.#retryMaxMs = options.retryMaxMs ?? WRITE_RETRY_MAX_MS;
    this.#random = options.random ?? Math.random;
  }

  /**
   * Run `fn` holding the account's lock (shared with other processes on the data dir). A release
   * that fails is logged; the store retries it (TokenStore.lock).
   */
  async withLock<T>(key: AccountKey, fn: () => Promise<T>): Promise<T> {
    const unlock = await this.#store.lock(key);
    try {
      return await fn();
    } finally {
      await unlock().catch((err: unknown) =>
        this.#logger.log('warn', 'could not release an account lock', { provider: key.provider, bucket: key.bucket, error: failureCode(err) }),
      );
    }
  }

  /** The record, from memory when we have it. */
  async load(key: AccountKey): Promise<AccountRecord | undefined> {
    const k = cacheKey(key);
    const cached = this.#cache.get(k) ?? this.#pending.get(k)?.record;
    if (cached) return cached;
    const record = await this.#store.get(key);
    if (record) this.#cache.set(k, record);
    return record;
  }

  /**
   * Drop the cached copy so the next read goes to the store (another process wrote it). A record
   * the disk has not taken yet is kept: it is newer than anything the store holds.
   */
  forget(key: AccountKey): void {
    this.#cache.delete(cacheKey(key));
  }

  /** Drop every cached copy (a shared store's change feed reconnected: anything may have changed). */
  forgetAll(): void {
    this.#cache.clear();
  }

  /**
   * Store a record (call it holding the account's lock). Durable before it resolves when the
   * disk works; when it does not, the record is held in memory, served, and written later.
   */
  async save(record: AccountRecord): Promise<void> {
    await this.#persist(record);
  }

  async importToken(key: AccountKey, token: ImportedToken): Promise<void> {
    const stored: StoredToken = { ...token, token_type: token.token_type ?? 'Bearer' };
    await this.withLock(key, () => this.save({ provider: key.provider, bucket: key.bucket, token: stored, updated_at: this.#clock.now() }));
  }

  /** Forget an account (call it holding the account's lock): memory, pending write and file. */
  async remove(key: AccountKey): Promise<boolean> {
    const k = cacheKey(key);
    this.#cache.delete(k);
    this.#lastRefresh.delete(k);
    const held = this.#dropPending(k);
    return (await this.#store.delete(key)) || held;
  }

  /** Whether the account has a record the disk has not taken yet. */
  hasPendingWrite(key: AccountKey): boolean {
    return this.#pending.has(cacheKey(key));
  }

  /**
   * Stop the background retries and try one last write of every held record (graceful stop).
   * A record that still cannot be written is reported: its account will need a new login.
   */
  async close(): Promise<void> {
    this.#closed = true;
    for (const entry of this.#pending.values()) {
      clearTimeout(entry.timer);
      entry.timer = undefined;
    }
    for (const [k, entry] of [...this.#pending]) {
      const key = { provider: entry.record.provider, bucket: entry.record.bucket };
      try {
        await this.#flush(k, key, entry);
      } catch (err) {
        this.#logger.log('error', 'stopping with a refreshed token that could not be written; this account will need a new login', {
          provider: key.provider,
          bucket: key.bucket,
          error: failureCode(err),
        });
      }
    }
  }

  /**
   * The hot path: a cached token that stays valid for `minValidSeconds` is answered synchronously,
   * with no disk I/O, no timer and no AbortController. Undefined when loadToken() must do more.
   */
  cachedToken(key: AccountKey, minValidSeconds: number): TokenView | undefined {
    const k = cacheKey(key);
    const record = this.#cache.get(k);
    if (!record || record.needs_login) return undefined;
    const nowMs = this.#clock.now();
    if (effectiveExpiry(record) - Math.floor(nowMs / 1000) <= minValidSeconds) return undefined;
    this.#recordUseOf(k, nowMs);
    let view = this.#views.get(record);
    if (!view) {
      // Frozen, so the connection serializes it once for every caller (codec FrozenJson).
      view = deepFreeze(structuredClone(toTokenView(record)));
      this.#views.set(record, view);
    }
    return view;
  }

  /**
   * What get_token does after cachedToken() missed: a token valid for at least `minValidSeconds`,
   * loaded, refreshed first when needed and possible. Counts the request for get_bucket_stats.
   * `signal` is read only if the token must be refreshed.
   */
  async loadToken(key: AccountKey, minValidSeconds: number, cancel?: { readonly signal: AbortSignal }): Promise<TokenView> {
    let record = await this.load(key);
    if (!record) throw notLoggedIn(key.provider, key.bucket, ErrorCode.NOT_FOUND);
    this.#recordUse(key);
    if (record.needs_login) {
      throw reauthRequired(key.provider, key.bucket, 'the provider refused the saved refresh token');
    }
    const now = unixSeconds(this.#clock);
    if (effectiveExpiry(record) - now <= minValidSeconds && this.#refresher?.canRefresh(record)) {
      try {
        record = await this.refresh(key, cancel?.signal);
      } catch (err) {
        // A provider hiccup must not take away a token that still works: serve it until it expires.
        const stillValid = effectiveExpiry(record) > unixSeconds(this.#clock);
        if (!stillValid || !(err instanceof ProxyError) || err.code === ErrorCode.REAUTH_REQUIRED || err.code === ErrorCode.NOT_LOGGED_IN) throw err;
      }
    }
    if (effectiveExpiry(record) <= now) {
      throw reauthRequired(key.provider, key.bucket, 'the access token has expired and cannot be refreshed');
    }
    return toTokenView(record);
  }

  /**
   * Refresh (refresh_token op, get_token when the token is too old, background renewal). One grant
   * per account at a time; at most one per MIN_REFRESH_INTERVAL_MS unless the token is near
   * expiry or `force` — within that window the token refreshed moments ago is the answer.
   */
  async refresh(key: AccountKey, signal?: AbortSignal, request: RefreshRequest = {}): Promise<AccountRecord> {
    const record = await this.load(key);
    if (!record) throw notLoggedIn(key.provider, key.bucket);
    const refresher = this.#refresher;
    if (!refresher || !refresher.canRefresh(record)) {
      throw reauthRequired(key.provider, key.bucket, 'this account has no refresh token or no configured provider');
    }
    const k = cacheKey(key);
    let flight = this.#inflight.get(k);
    if (!flight) {
      if (request.force !== true && this.#refreshedRecently(k, record)) return record;
      // The shared refresh is not tied to one caller's cancellation: others may be waiting on it.
      flight = this.#refreshLocked(key, record, refresher).finally(() => this.#inflight.delete(k));
      this.#inflight.set(k, flight);
    }
    return signal ? raceAbort(flight, signal) : flight;
  }

  #refreshedRecently(k: string, record: AccountRecord): boolean {
    if (record.needs_login) return false;
    const last = this.#lastRefresh.get(k);
    const nowMs = this.#clock.now();
    if (last === undefined || nowMs - last >= this.#minRefreshIntervalMs) return false;
    return effectiveExpiry(record) - Math.floor(nowMs / 1000) > DEFAULT_MIN_VALID_SECONDS;
  }

  async #refreshLocked(key: AccountKey, seen: AccountRecord, refresher: TokenRefresher): Promise<AccountRecord> {
    const k = cacheKey(key);
    return this.withLock(key, async () => {
      const read = await this.#readLocked(key);
      if (!read) throw notLoggedIn(key.provider, key.bucket);
      const current = read.record;
      this.#cache.set(k, current);
      if (current.needs_login) throw reauthRequired(key.provider, key.bucket, 'the provider refused the saved refresh token');
      // Another process (or an earlier refresh) replaced the token while we waited for the lock.
      if (current.token.access_token !== seen.token.access_token && effectiveExpiry(current) > effectiveExpiry(seen)) {
        this.#lastRefresh.set(k, this.#clock.now());
        return current;
      }
      const outcome = await refresher.grant(current);
      if (outcome.kind === 'refused') {
        await this.#persistOrYield(key, { ...current, needs_login: true, updated_at: this.#clock.now() }, read.version);
        throw reauthRequired(key.provider, key.bucket, 'the provider refused the refresh token (invalid_grant)');
      }
      // Durable before anyone sees the new access token whenever the disk works; held in memory
      // (and still served, and used for the next refresh) when it does not.
      const stored = await this.#persistOrYield(key, outcome.record, read.version);
      this.#lastRefresh.set(k, this.#clock.now());
      return stored;
    });
  }

  /** The newest record of an account, read under its lock: a held record unless the disk has a newer one. */
  async #readLocked(key: AccountKey): Promise<{ record: AccountRecord; version?: RecordVersion } | undefined> {
    const k = cacheKey(key);
    const held = this.#pending.get(k);
    let onDisk: Versioned<AccountRecord> | undefined;
    try {
      onDisk = this.#store.read ? await this.#store.read(key) : await this.#store.get(key).then((record) => (record ? { record, version: '' } : undefined));
    } catch (err) {
      if (!held) throw err;
      return { record: held.record };
    }
    const version = this.#store.read ? onDisk?.version ?? null : undefined;
    const withVersion = (record: AccountRecord): { record: AccountRecord; version?: RecordVersion } => (version === undefined || version === null ? { record } : { record, version });
    if (!held) return onDisk ? withVersion(onDisk.record) : undefined;
    if (onDisk && supersedes(onDisk.record, held.record)) {
      this.#dropPending(k);
      this.#logger.log('info', 'another process stored a newer token; the one held in memory is dropped', { provider: key.provider, bucket: key.bucket });
      return withVersion(onDisk.record);
    }
    return withVersion(held.record);
  }

  /**
   * Store a refresh's outcome with compare-and-swap on the version read under the lock. Another
   * writer in between (our lock expired while the provider was slow, in a fleet) wins: its record
   * is what the store holds, and ours — made from a refresh token it had already used — is
   * dropped instead of overwriting a rotated one.
   */
  async #persistOrYield(key: AccountKey, record: AccountRecord, version: RecordVersion | undefined): Promise<AccountRecord> {
    try {
      await this.#persist(record, version);
      return record;
    } catch (err) {
      if (!(err instanceof VersionConflictError)) throw err;
      this.#logger.log('warn', 'another process stored this account while our refresh ran; keeping its record', { provider: key.provider, bucket: key.bucket });
      const theirs = await this.#store.get(key);
      if (!theirs) throw notLoggedIn(key.provider, key.bucket);
      this.#cache.set(cacheKey(key), theirs);
      if (theirs.needs_login) throw reauthRequired(key.provider, key.bucket, 'the provider refused the saved refresh token');
      return theirs;
    }
  }

  /** Write, or hold in memory and retry: never drops the record. */
  async #persist(record: AccountRecord, ifVersion?: RecordVersion): Promise<void> {
    const k = cacheKey(record);
    try {
      await this.#store.put(record, ifVersion === undefined ? undefined : { ifVersion });
    } catch (err) {
      if (err instanceof VersionConflictError) throw err;
      this.#hold(k, record, err);
      return;
    }
    // This write supersedes any held record: it was made under the same lock, later.
    if (this.#dropPending(k)) {
      this.#logger.log('info', 'token file written; the record held in memory is on disk now', { provider: record.provider, bucket: record.bucket });
    }
    this.#cache.set(k, record);
  }

  #hold(k: string, record: AccountRecord, err: unknown): void {
    let entry = this.#pending.get(k);
    if (entry) {
      entry.record = record;
    } else {
      entry = { record, failures: 0, timer: undefined, flushing: false };
      this.#pending.set(k, entry);
    }
    entry.failures += 1;
    this.#cache.set(k, record);
    this.#logger.log('warn', 'could not write the token file; serving the new token from memory and retrying the write', {
      provider: record.provider,
      bucket: record.bucket,
      error: failureCode(err),
    });
    this.#schedule(k, entry);
  }

  #dropPending(k: string): boolean {
    const entry = this.#pending.get(k);
    if (!entry) return false;
    clearTimeout(entry.timer);
    this.#pending.delete(k);
    return true;
  }

  #schedule(k: string, entry: PendingWrite): void {
    if (this.#closed || entry.timer !== undefined || entry.flushing) return;
    const base = Math.min(this.#retryMaxMs, this.#retryBaseMs * 2 ** Math.min(entry.failures - 1, 20));
    const delay = Math.min(this.#retryMaxMs, base + Math.floor(this.#random() * base * 0.5));
    entry.timer = setTimeout(() => {
      entry.timer = undefined;
      void this.#retry(k, entry);
    }, delay);
    // A held record does not keep the process alive; stop() makes one last attempt (close()).
    entry.timer.unref();
  }

  async #retry(k: string, entry: PendingWrite): Promise<void> {
    if (this.#closed || this.#pending.get(k) !== entry) return;
    const key = { provider: entry.record.provider, bucket: entry.record.bucket };
    try {
      await this.#flush(k, key, entry);
    } catch (err) {
      if (this.#pending.get(k) !== entry) return;
      entry.failures += 1;
      // Warn on the first failures, then now and then: the disk may stay broken for hours.
      if (entry.failures <= 3 || entry.failures % 20 === 0) {
        this.#logger.log('warn', 'retrying the write of a token held in memory failed again', { provider: key.provider, bucket: key.bucket, error: failureCode(err), attempts: entry.failures });
      }
      this.#schedule(k, entry);
    }
  }

  /** Write a held record under the account's lock, unless the disk has a newer one meanwhile. */
  async #flush(k: string, key: AccountKey, entry: PendingWrite): Promise<void> {
    entry.flushing = true;
    try {
      await this.withLock(key, async () => {
        if (this.#pending.get(k) !== entry) return; // written or replaced while we waited
        const onDisk = await this.#store.get(key);
        if (onDisk && supersedes(onDisk, entry.record)) {
          this.#dropPending(k);
          this.#cache.set(k, onDisk);
          this.#logger.log('info', 'another process stored a newer token; the one held in memory is dropped', { provider: key.provider, bucket: key.bucket });
          return;
        }
        await this.#store.put(entry.record);
        this.#dropPending(k);
        this.#logger.log('info', 'token file written; the record held in memory is on disk now', { provider: key.provider, bucket: key.bucket, attempts: entry.failures });
      });
    } finally {
      entry.flushing = false;
    }
  }

  async list(): Promise<AccountKey[]> {
    const keys = await this.#store.list();
    if (this.#pending.size === 0) return keys;
    // An account whose first write failed exists only in memory until it lands.
    const seen = new Set(keys.map(cacheKey));
    for (const [k, entry] of this.#pending) {
      if (!seen.has(k)) keys.push({ provider: entry.record.provider, bucket: entry.record.bucket });
    }
    return keys.sort((a, b) => (a.provider === b.provider ? (a.bucket < b.bucket ? -1 : 1) : a.provider < b.provider ? -1 : 1));
  }

  async status(filter: (key: AccountKey) => boolean = () => true): Promise<AccountStatus[]> {
    const now = unixSeconds(this.#clock);
    const out: AccountStatus[] = [];
    for (const key of await this.list()) {
      if (!filter(key)) continue;
      const k = cacheKey(key);
      let record: AccountRecord | undefined = this.#pending.get(k)?.record;
      if (!record) {
        try {
          record = await this.#store.get(key);
        } catch {
          continue; // an unreadable file is reported by the proxy log, not as an account
        }
        if (!record) continue;
        this.#cache.set(k, record);
      }
      const expiry = effectiveExpiry(record);
      const state: AccountState = record.needs_login
        ? 'needs_login'
        : expiry <= now
          ? 'expired'
          : expiry - now <= EXPIRING_WINDOW_SECONDS
            ? 'expiring'
            : 'valid';
      const entry: AccountStatus = { provider: key.provider, bucket: key.bucket, state, expiry };
      if (typeof record.token.scope === 'string') entry.scope = record.token.scope;
      if (typeof record.account === 'string') entry.account = record.account;
      out.push(entry);
    }
    return out;
  }
  #recordUse(key: AccountKey): void {
    this.#recordUseOf(cacheKey(key), this.#clock.now());
  }

  #recordUseOf(k: string, now: number): void {
    const usage = this.#usage.get(k);
    if (usage) {
      usage.count += 1;
      usage.lastUsed = now;
    } else {
      this.#usage.set(k, { count: 1, lastUsed: now });
    }
  }

  /** Accounts served by get_token since `sinceMs` (for proactive renewal). */
  recentlyUsed(sinceMs: number): AccountKey[] {
    const out: AccountKey[] = [];
    for (const [k, usage] of this.#usage) {
      if (usage.lastUsed >= sinceMs) {
        const [provider, bucket] = k.split('\u0000') as [string, string];
        out.push({ provider, bucket });
      }
    }
    return out;
  }

  /**
   * Requests served for one bucket and its share of the provider's requests — counted over the
   * buckets `visible` lets the caller see, so a client learns nothing of buckets outside its scope.
   */
  bucketStats(key: AccountKey, visible: (bucket: string) => boolean = () => true): BucketStatsResult {
    const usage = this.#usage.get(cacheKey(key));
    let total = 0;
    const prefix = `${key.provider}\u0000`;
    for (const [k, u] of this.#usage) if (k.startsWith(prefix) && visible(k.slice(prefix.length))) total += u.count;
    const count = usage?.count ?? 0;
    const result: BucketStatsResult = {
      bucket: key.bucket,
      requestCount: count,
      percentage: total === 0 ? 0 : Math.round((count / total) * 10_000) / 100,
    };
    if (usage) result.lastUsed = usage.lastUsed;
    return result;
  }
}

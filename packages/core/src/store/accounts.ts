/**
 * Accounts: the token store behind an in-memory cache, the token view served to clients, and
 * per-bucket request counts. Serving a valid cached token does no disk I/O.
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
import { type Clock, unixSeconds } from '../util/clock.js';
import { SECRET_TOKEN_FIELDS, type AccountKey, type AccountRecord, type StoredToken, type TokenStore } from './token-store.js';

/** A token within this many seconds of expiry is reported as `expiring`. */
export const EXPIRING_WINDOW_SECONDS = 300;

/**
 * Tokens imported or issued without an expiry are served with this lifetime from the moment they
 * were stored; clients (llxprt's among them) need a number, and a refresh later corrects it.
 */
export const UNKNOWN_EXPIRY_SECONDS = 3600;

/** Turns a stored record into a fresh one; the login and refresh flows provide it. */
export interface TokenRefresher {
  /** Refresh `record` (already re-read under the account's lock); resolves to the stored result. */
  refresh(record: AccountRecord, signal?: AbortSignal): Promise<AccountRecord>;
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

export interface AccountServiceOptions {
  store: TokenStore;
  clock: Clock;
  refresher?: TokenRefresher;
}

export class AccountService {
  readonly #store: TokenStore;
  readonly #clock: Clock;
  #refresher: TokenRefresher | undefined;
  readonly #cache = new Map<string, AccountRecord>();
  /** The served view of each cached record, built once per record. */
  readonly #views = new WeakMap<AccountRecord, TokenView>();
  readonly #usage = new Map<string, Usage>();

  constructor(options: AccountServiceOptions) {
    this.#store = options.store;
    this.#clock = options.clock;
    this.#refresher = options.refresher;
  }

  get store(): TokenStore {
    return this.#store;
  }

  setRefresher(refresher: TokenRefresher): void {
    this.#refresher = refresher;
  }

  /** The record, from memory when we have it. */
  async load(key: AccountKey): Promise<AccountRecord | undefined> {
    const k = cacheKey(key);
    const cached = this.#cache.get(k);
    if (cached) return cached;
    const record = await this.#store.get(key);
    if (record) this.#cache.set(k, record);
    return record;
  }

  /** Drop the cached copy so the next read goes to the store (another process wrote it). */
  forget(key: AccountKey): void {
    this.#cache.delete(cacheKey(key));
  }

  async save(record: AccountRecord): Promise<void> {
    await this.#store.put(record);
    this.#cache.set(cacheKey(record), record);
  }

  async importToken(key: AccountKey, token: ImportedToken): Promise<void> {
    const stored: StoredToken = { ...token, token_type: token.token_type ?? 'Bearer' };
    await this.save({ provider: key.provider, bucket: key.bucket, token: stored, updated_at: this.#clock.now() });
  }

  async remove(key: AccountKey): Promise<boolean> {
    this.#cache.delete(cacheKey(key));
    return this.#store.delete(key);
  }

  /**
   * The hot path: a cached token that stays valid for `minValidSeconds` is answered synchronously,
   * with no disk I/O, no timer and no AbortController. Undefined when getToken must do more.
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
   * A token valid for at least `minValidSeconds`, refreshing first when needed and possible.
   * Counts the request for get_bucket_stats. `signal` is read only if the token must be refreshed.
   */
  async getToken(key: AccountKey, minValidSeconds: number, cancel?: { readonly signal: AbortSignal }): Promise<TokenView> {
    return this.cachedToken(key, minValidSeconds) ?? this.loadToken(key, minValidSeconds, cancel);
  }

  /** The part of getToken after the cache missed: load, refresh when needed and possible. */
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

  /** Force a refresh (refresh_token op, or getToken when the token is too old). */
  async refresh(key: AccountKey, signal?: AbortSignal): Promise<AccountRecord> {
    const record = await this.load(key);
    if (!record) throw notLoggedIn(key.provider, key.bucket);
    if (!this.#refresher || !this.#refresher.canRefresh(record)) {
      throw reauthRequired(key.provider, key.bucket, 'this account has no refresh token or no configured provider');
    }
    const fresh = await this.#refresher.refresh(record, signal);
    this.#cache.set(cacheKey(key), fresh);
    return fresh;
  }

  async list(): Promise<AccountKey[]> {
    return this.#store.list();
  }

  async status(filter: (key: AccountKey) => boolean = () => true): Promise<AccountStatus[]> {
    const now = unixSeconds(this.#clock);
    const out: AccountStatus[] = [];
    for (const key of await this.#store.list()) {
      if (!filter(key)) continue;
      let record: AccountRecord | undefined;
      try {
        record = await this.#store.get(key);
      } catch {
        continue; // an unreadable file is reported by the proxy log, not as an account
      }
      if (!record) continue;
      this.#cache.set(cacheKey(key), record);
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

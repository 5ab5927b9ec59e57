/**
 * Refresh, single-flight: one refresh per account at a time inside this proxy (a shared promise)
 * and across processes sharing the data dir (the store's lock, then a re-read: if another process
 * already refreshed, its result is used). A rotated refresh token is durable on disk before the
 * new access token is handed to anyone.
 * @see RFC 6749 §6
 */
import * as oauth from 'oauth4webapi';
import { ErrorCode, ProxyError } from '../protocol/errors.js';
import { effectiveExpiry, notLoggedIn, reauthRequired, type TokenRefresher } from '../store/accounts.js';
import type { AccountKey, AccountRecord, TokenStore } from '../store/token-store.js';
import type { Clock } from '../util/clock.js';
import type { Logger } from '../util/logger.js';
import { describeUpstream, isTransient, oauthErrorCode } from './oauth-provider.js';
import type { ProviderDirectory } from './providers.js';

export interface RefreshOptions {
  store: TokenStore;
  providers: ProviderDirectory;
  clock: Clock;
  logger: Logger;
  /** Attempts for transient failures (network, timeouts, 5xx). */
  attempts?: number;
  /** Base backoff, ms; doubled per attempt, with jitter. */
  backoffMs?: number;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  random?: () => number;
}

function defaultSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(t);
      reject(signal.reason instanceof Error ? signal.reason : new ProxyError(ErrorCode.CANCELLED, 'cancelled'));
    }, { once: true });
  });
}

function keyOf(k: AccountKey): string {
  return `${k.provider}\u0000${k.bucket}`;
}

export class RefreshCoordinator implements TokenRefresher {
  readonly #o: Required<Omit<RefreshOptions, 'sleep' | 'random'>> & Pick<RefreshOptions, 'sleep' | 'random'>;
  readonly #inflight = new Map<string, Promise<AccountRecord>>();
  /** Refresh grants sent upstream by this process (for tests and the bench). */
  grantsSent = 0;

  constructor(options: RefreshOptions) {
    this.#o = { attempts: 3, backoffMs: 200, ...options };
  }

  canRefresh(record: AccountRecord): boolean {
    return typeof record.token.refresh_token === 'string' && record.token.refresh_token.length > 0;
  }

  refresh(record: AccountRecord, signal?: AbortSignal): Promise<AccountRecord> {
    const k = keyOf(record);
    let p = this.#inflight.get(k);
    if (!p) {
      // The shared refresh is not tied to one caller's cancellation: others may be waiting on it.
      p = this.#refreshLocked(record).finally(() => this.#inflight.delete(k));
      this.#inflight.set(k, p);
    }
    if (!signal) return p;
    return Promise.race([
      p,
      new Promise<never>((_, reject) => {
        if (signal.aborted) reject(signal.reason);
        signal.addEventListener('abort', () => reject(signal.reason), { once: true });
      }),
    ]);
  }

  async #refreshLocked(seen: AccountRecord): Promise<AccountRecord> {
    const { store } = this.#o;
    const key = { provider: seen.provider, bucket: seen.bucket };
    const unlock = await store.lock(key);
    try {
      const current = await store.get(key);
      if (!current) throw notLoggedIn(key.provider, key.bucket);
      if (current.needs_login) throw reauthRequired(key.provider, key.bucket, 'the provider refused the saved refresh token');
      // Another process (or an earlier refresh) replaced the token while we waited for the lock.
      if (current.token.access_token !== seen.token.access_token && effectiveExpiry(current) > effectiveExpiry(seen)) {
        return current;
      }
      return await this.#grant(current);
    } finally {
      await unlock();
    }
  }

  async #grant(record: AccountRecord): Promise<AccountRecord> {
    const { providers, store, clock, logger } = this.#o;
    const provider = await providers.get(record.provider);
    const refreshToken = record.token.refresh_token;
    if (!refreshToken) throw reauthRequired(record.provider, record.bucket, 'this account has no refresh token');
    const sleep = this.#o.sleep ?? defaultSleep;
    const random = this.#o.random ?? Math.random;
    let lastError: unknown;
    for (let attempt = 1; attempt <= this.#o.attempts; attempt++) {
      try {
        const as = await provider.metadata();
        this.grantsSent += 1;
        const response = await oauth.refreshTokenGrantRequest(as, provider.client, provider.clientAuth(), refreshToken, provider.http());
        const result = await oauth.processRefreshTokenResponse(as, provider.client, response);
        const next: AccountRecord = {
          provider: record.provider,
          bucket: record.bucket,
          token: provider.toStoredToken(result, record.token),
          updated_at: clock.now(),
        };
        // Durable before anyone sees the new access token: a rotated refresh token is never lost.
        await store.put(next);
        logger.log('info', 'token refreshed', { provider: record.provider, bucket: record.bucket, rotated: result.refresh_token !== undefined && result.refresh_token !== refreshToken });
        return next;
      } catch (err) {
        if (err instanceof ProxyError) throw err;
        const code = oauthErrorCode(err);
        if (code === 'invalid_grant') {
          await store.put({ ...record, needs_login: true, updated_at: clock.now() });
          logger.log('warn', 'refresh token refused; account needs a new login', { provider: record.provider, bucket: record.bucket });
          throw reauthRequired(record.provider, record.bucket, 'the provider refused the refresh token (invalid_grant)');
        }
        if (!isTransient(err)) {
          throw new ProxyError(ErrorCode.REFRESH_FAILED, `${record.provider}: refresh failed: ${describeUpstream(err)}; the saved token is unchanged`);
        }
        lastError = err;
        logger.log('warn', 'refresh attempt failed', { provider: record.provider, bucket: record.bucket, attempt, error: describeUpstream(err) });
        if (attempt < this.#o.attempts) {
          const base = this.#o.backoffMs * 2 ** (attempt - 1);
          await sleep(base + Math.floor(random() * base));
        }
      }
    }
    throw new ProxyError(ErrorCode.UPSTREAM_UNAVAILABLE, `${record.provider}: the token endpoint is unreachable or failing (${describeUpstream(lastError)}) — the saved token is unchanged; try again shortly`);
  }
}

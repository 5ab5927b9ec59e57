/**
 * The refresh grant: one request to the provider's token endpoint (retried with backoff on
 * transient failures) that turns a record into a fresh one. It writes nothing — the account
 * service holds the lock, re-reads, calls grant() and stores the result durably — so the new
 * refresh token is never lost to a failing write here.
 * @see RFC 6749 §6
 */
import * as oauth from 'oauth4webapi';
import { ErrorCode, ProxyError } from '../protocol/errors.js';
import { reauthRequired, type GrantOutcome, type TokenRefresher } from '../store/accounts.js';
import type { AccountRecord } from '../store/token-store.js';
import type { Clock } from '../util/clock.js';
import type { Logger } from '../util/logger.js';
import { describeUpstream, isTransient, oauthErrorCode } from './oauth-provider.js';
import type { ProviderDirectory } from './providers.js';

export interface RefreshOptions {
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

export class RefreshCoordinator implements TokenRefresher {
  readonly #o: Required<Omit<RefreshOptions, 'sleep' | 'random'>> & Pick<RefreshOptions, 'sleep' | 'random'>;
  /** Refresh grants sent upstream by this process (for tests and the bench). */
  grantsSent = 0;

  constructor(options: RefreshOptions) {
    this.#o = { attempts: 3, backoffMs: 200, ...options };
  }

  canRefresh(record: AccountRecord): boolean {
    return typeof record.token.refresh_token === 'string' && record.token.refresh_token.length > 0;
  }

  async grant(record: AccountRecord): Promise<GrantOutcome> {
    const { providers, clock, logger } = this.#o;
    const provider = await providers.get(record.provider);
    const refreshToken = record.token.refresh_token;
    if (!refreshToken) throw reauthRequired(record.provider, record.bucket, 'this account has no refresh token');
    // What this request sends that the provider's answer must not carry back to anyone.
    const secrets = [refreshToken, ...provider.secrets()];
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
        if (record.account !== undefined) next.account = record.account;
        logger.log('info', 'token refreshed', { provider: record.provider, bucket: record.bucket, rotated: result.refresh_token !== undefined && result.refresh_token !== refreshToken });
        return { kind: 'refreshed', record: next };
      } catch (err) {
        if (err instanceof ProxyError) throw err;
        const code = oauthErrorCode(err);
        if (code === 'invalid_grant') {
          logger.log('warn', 'refresh token refused; account needs a new login', { provider: record.provider, bucket: record.bucket });
          return { kind: 'refused' };
        }
        if (!isTransient(err)) {
          throw new ProxyError(ErrorCode.REFRESH_FAILED, `${record.provider}: refresh failed: ${describeUpstream(err, secrets)}; the saved token is unchanged`);
        }
        lastError = err;
        logger.log('warn', 'refresh attempt failed', { provider: record.provider, bucket: record.bucket, attempt, error: describeUpstream(err, secrets) });
        if (attempt < this.#o.attempts) {
          const base = this.#o.backoffMs * 2 ** (attempt - 1);
          await sleep(base + Math.floor(random() * base));
        }
      }
    }
    throw new ProxyError(ErrorCode.UPSTREAM_UNAVAILABLE, `${record.provider}: the token endpoint is unreachable or failing (${describeUpstream(lastError, secrets)}) — the saved token is unchanged; try again shortly`);
  }
}

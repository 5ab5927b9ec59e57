/**
 * Proactive renewal: accounts a client used recently (get_token in the last 10 minutes, kept in
 * memory) are refreshed in the background once less than half their lifetime is left, with
 * jitter, a few at a time — so a long-running agent never meets an expired token and many
 * accounts expiring together cause no storm.
 */
import { effectiveExpiry, type AccountService } from './accounts.js';
import type { Clock } from '../util/clock.js';
import type { Logger } from '../util/logger.js';
import { ProxyError } from '../protocol/errors.js';

export const RECENT_USE_WINDOW_MS = 10 * 60_000;

export interface RenewalOptions {
  accounts: AccountService;
  clock: Clock;
  logger: Logger;
  tickMs?: number;
  maxConcurrent?: number;
  random?: () => number;
}

export class RenewalScheduler {
  readonly #o: RenewalOptions;
  readonly #timer: NodeJS.Timeout;
  readonly #running = new Set<string>();
  /** Per account: the jitter drawn for its current token, so the threshold is stable per token. */
  readonly #jitter = new Map<string, { token: string; factor: number }>();

  constructor(options: RenewalOptions) {
    this.#o = options;
    this.#timer = setInterval(() => void this.tick(), options.tickMs ?? 1_000);
    this.#timer.unref();
  }

  async tick(): Promise<void> {
    const { accounts, clock } = this.#o;
    const now = clock.now();
    const max = this.#o.maxConcurrent ?? 2;
    for (const key of accounts.recentlyUsed(now - RECENT_USE_WINDOW_MS)) {
      if (this.#running.size >= max) return;
      const id = `${key.provider}\u0000${key.bucket}`;
      if (this.#running.has(id)) continue;
      const record = await accounts.load(key).catch(() => undefined);
      if (!record || record.needs_login || typeof record.token.refresh_token !== 'string' || record.token.expiry === undefined) continue;
      const expiry = effectiveExpiry(record) * 1000;
      const issued = record.updated_at;
      const lifetime = Math.max(0, expiry - issued);
      let j = this.#jitter.get(id);
      if (!j || j.token !== record.token.access_token) {
        j = { token: record.token.access_token, factor: 0.4 + 0.1 * (this.#o.random ?? Math.random)() };
        this.#jitter.set(id, j);
      }
      // Renew when less than ~40-50% of the lifetime remains: at most once per half lifetime.
      if (expiry - now > lifetime * j.factor) continue;
      this.#running.add(id);
      void accounts
        .refresh(key)
        .then(() => this.#o.logger.log('info', 'renewed in the background', { provider: key.provider, bucket: key.bucket }))
        .catch((err: unknown) =>
          this.#o.logger.log('warn', 'background renewal failed', {
            provider: key.provider,
            bucket: key.bucket,
            code: err instanceof ProxyError ? err.code : 'INTERNAL_ERROR',
          }),
        )
        .finally(() => this.#running.delete(id));
    }
  }

  close(): void {
    clearInterval(this.#timer);
  }
}

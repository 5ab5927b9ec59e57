/**
 * Failed handshakes counted per peer (pid, else uid) in a sliding window. Only failures are
 * counted and only failures are refused: the gate checks a token before it asks here, so a right
 * token passes even when its peer key is shared with a guesser (no visible pid).
 */
import type { Clock } from '../util/clock.js';

export interface RateLimitOptions {
  maxFailures: number;
  windowMs: number;
  /** Peers tracked at once; the oldest are forgotten past this. */
  maxPeers?: number;
}

export class FailureRateLimiter {
  readonly #clock: Clock;
  readonly #max: number;
  readonly #windowMs: number;
  readonly #maxPeers: number;
  readonly #failures = new Map<string, number[]>();

  constructor(clock: Clock, options: RateLimitOptions) {
    this.#clock = clock;
    this.#max = options.maxFailures;
    this.#windowMs = options.windowMs;
    this.#maxPeers = options.maxPeers ?? 10_000;
  }

  #recent(key: string): number[] {
    const cutoff = this.#clock.now() - this.#windowMs;
    const list = (this.#failures.get(key) ?? []).filter((t) => t > cutoff);
    if (list.length === 0) this.#failures.delete(key);
    else this.#failures.set(key, list);
    return list;
  }

  /** Seconds until this peer may try again, or 0 when it may try now. */
  retryAfter(key: string): number {
    const list = this.#recent(key);
    if (list.length < this.#max) return 0;
    const oldest = list[list.length - this.#max]!;
    return Math.max(1, Math.ceil((oldest + this.#windowMs - this.#clock.now()) / 1000));
  }

  recordFailure(key: string): void {
    const list = this.#recent(key);
    list.push(this.#clock.now());
    // Only the newest maxFailures decide retryAfter: a guesser that goes on costs no memory.
    if (list.length > this.#max) list.splice(0, list.length - this.#max);
    this.#failures.set(key, list);
    if (this.#failures.size > this.#maxPeers) {
      const first = this.#failures.keys().next().value;
      if (first !== undefined) this.#failures.delete(first);
    }
  }
}

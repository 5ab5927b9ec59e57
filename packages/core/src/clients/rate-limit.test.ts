import { describe, expect, it } from 'vitest';
import { FailureRateLimiter } from './rate-limit.js';

function limiter(max = 10, windowMs = 60_000, maxPeers?: number) {
  const clock = { t: 1_000_000, now() { return this.t; } };
  const l = new FailureRateLimiter(clock, { maxFailures: max, windowMs, ...(maxPeers !== undefined ? { maxPeers } : {}) });
  return { l, clock };
}

describe('FailureRateLimiter', () => {
  it('lets a peer through until it has failed maxFailures times in the window', () => {
    const { l } = limiter();
    for (let i = 0; i < 9; i++) {
      l.recordFailure('pid:1');
      expect(l.retryAfter('pid:1')).toBe(0);
    }
    l.recordFailure('pid:1');
    expect(l.retryAfter('pid:1')).toBeGreaterThan(0);
  });

  it('answers how long to wait, in whole seconds, until the oldest failure leaves the window', () => {
    const { l, clock } = limiter();
    for (let i = 0; i < 10; i++) {
      l.recordFailure('pid:1');
      clock.t += 1_000;
    }
    // Oldest failure at t0, now t0+10s: it leaves the window at t0+60s.
    expect(l.retryAfter('pid:1')).toBe(50);
    clock.t += 49_500;
    expect(l.retryAfter('pid:1')).toBe(1);
    clock.t += 500;
    expect(l.retryAfter('pid:1')).toBe(0);
  });

  it('charges only the guesser: other peers are never slowed', () => {
    const { l } = limiter();
    for (let i = 0; i < 100; i++) l.recordFailure('pid:1');
    expect(l.retryAfter('pid:1')).toBeGreaterThan(0);
    expect(l.retryAfter('pid:2')).toBe(0);
    expect(l.retryAfter('uid:1000')).toBe(0);
  });

  it('forgets failures older than the window', () => {
    const { l, clock } = limiter(3, 1_000);
    l.recordFailure('k');
    l.recordFailure('k');
    clock.t += 1_001;
    l.recordFailure('k');
    l.recordFailure('k');
    expect(l.retryAfter('k')).toBe(0);
    l.recordFailure('k');
    expect(l.retryAfter('k')).toBe(1);
  });

  it('keeps memory bounded by forgetting the oldest peers', () => {
    const { l } = limiter(1, 60_000, 3);
    for (const k of ['a', 'b', 'c', 'd']) l.recordFailure(k);
    expect(l.retryAfter('a')).toBe(0);
    expect(l.retryAfter('d')).toBeGreaterThan(0);
  });
});

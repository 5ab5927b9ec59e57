/**
 * A long-running proxy allocates a little short-lived garbage per request, and whatever happens
 * to be alive at a scavenge (answers in flight, a burst of new login sessions) counts toward
 * V8's decision to double its young generation, up to 3 × 16 MB that it then keeps for good.
 * For a proxy that is ~20–30 MB of resident memory for nothing: measured with 10k pending logins,
 * 103 MB with V8's default against 84 MB with semi-spaces held at 4 MB, at no cost in throughput
 * (project-plans/06-bench-hardening.md).
 *
 * The cap is 16 MB (V8's own limit here: 32 MB). It was 8 MB; under connection churn — a fresh
 * connection per call, the common case — a young generation that small let each connection's
 * socket and stream objects survive a scavenge and be promoted, and the extra scavenges and old
 * generation work cost ~5–8 % of the calls a second (paired runs, project-plans/16-bench-hardening.md,
 * round 6), for ~8 MB less resident memory under load only; idle memory is the same either way.
 *
 * `--max-semi-space-size` only works as a start-up flag (and in the bin's shebang it slowed every
 * `credproxy token` by 13 ms), so instead this watches garbage collections and, once the young
 * generation has reached the cap, stops its growth: V8 reads `--semi-space-growth-factor` each
 * time it would grow. Stopping growth from the start (factor 1 at 1 MB) cost 25 % throughput.
 */
import { PerformanceObserver } from 'node:perf_hooks';
import v8 from 'node:v8';

const STOP_GROWTH = '--semi-space-growth-factor=1';
/** V8's default (checked by `node --v8-options`). */
const DEFAULT_GROWTH = '--semi-space-growth-factor=2';
/** The young generation's size (both semi-spaces) at which growth stops. */
export const YOUNG_GENERATION_CAP_BYTES = 16 * 1024 * 1024;

function youngGenerationBytes(): number {
  return v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')?.space_size ?? 0;
}

/**
 * After each batch of garbage collections: at or above the cap, stop growth; below it (V8 also
 * shrinks the young generation when allocation is slow), allow growth again, or a proxy that
 * idled would stay at the smallest size and lose throughput. Returns a function that stops it.
 */
export function capYoungGeneration(capBytes = YOUNG_GENERATION_CAP_BYTES): () => void {
  let stopped = false;
  const adjust = (): void => {
    const atCap = youngGenerationBytes() >= capBytes;
    if (atCap === stopped) return;
    v8.setFlagsFromString(atCap ? STOP_GROWTH : DEFAULT_GROWTH);
    stopped = atCap;
  };
  adjust();
  const observer = new PerformanceObserver(adjust);
  observer.observe({ entryTypes: ['gc'] });
  return () => {
    observer.disconnect();
    if (stopped) v8.setFlagsFromString(DEFAULT_GROWTH);
  };
}

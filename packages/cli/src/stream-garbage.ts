/**
 * A body relayed through a route arrives in buffers node allocates for each socket read and that
 * are garbage once written on. V8 frees them at a scavenge, and a fast stream allocates almost
 * nothing else on V8's heap, so the scavenge that frees them comes from V8's rule for young
 * buffers ("external memory pressure" in `--trace-gc`): measured here, one every ~32–40 MB
 * relayed, the same with `--max-semi-space-size=4`. Any node process relaying at full speed
 * grows by about that much in dead buffers (the pass-through floor in `npm run bench`: +31–37 MB
 * for 1 GiB).
 *
 * `serve` asks for a young-generation collection itself every RELAY_COLLECT_BYTES relayed
 * instead (~0.5 ms each): a 1 GiB stream then grows the proxy by ~11 MB, not ~34, and runs no
 * slower — less memory is touched (project-plans/11-routes.md, round 6). Small answers reach
 * the threshold rarely: one collection per 8 MiB, whatever the number of streams.
 */
import v8 from 'node:v8';
import vm from 'node:vm';

/** Bytes relayed between two requested collections. */
export const RELAY_COLLECT_BYTES = 8 * 1024 * 1024;

type Collect = () => void;

/**
 * V8's `gc` function: `--expose-gc` set at run time adds it to contexts made afterwards, and a
 * context's `gc` collects the whole heap of the process. Undefined when this node does not
 * allow it (the counter then does nothing).
 */
function youngGenerationCollector(): Collect | undefined {
  try {
    v8.setFlagsFromString('--expose-gc');
    const gc: unknown = vm.runInNewContext('gc');
    if (typeof gc !== 'function') return undefined;
    return () => (gc as (options: { type: 'minor' }) => void)({ type: 'minor' });
  } catch {
    return undefined;
  }
}

/**
 * A `relayed(bytes)` for startProxy: counts what routes relay and collects the young generation
 * every `everyBytes`. `collect` is injectable for tests.
 */
export function collectRelayedGarbage(options: { everyBytes?: number; collect?: Collect } = {}): (bytes: number) => void {
  const everyBytes = options.everyBytes ?? RELAY_COLLECT_BYTES;
  // Found at the first collection: the context it takes is memory a proxy without routes never needs.
  let collect: Collect | undefined | null = options.collect ?? null;
  let pending = 0;
  return (bytes) => {
    pending += bytes;
    if (pending < everyBytes) return;
    pending = 0;
    if (collect === null) collect = youngGenerationCollector();
    collect?.();
  };
}

/**
 * `@credproxy/core/server`: what `credproxy serve` needs to run a proxy, and nothing more. The
 * package's main entry re-exports every module (routes, flows, the stores' helpers), and
 * importing it loads them all; the server itself loads the rest — the HTTP side of routes,
 * the Redis backend, undici — when it first needs them, so an idle proxy stays small.
 */
export { resolvePaths } from './paths.js';
export { startProxy, AlreadyRunningError } from './server/proxy.js';
export type { ProxyOptions, RunningProxy } from './server/proxy.js';
export { streamLogger } from './util/logger.js';

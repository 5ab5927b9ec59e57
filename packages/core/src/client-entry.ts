/**
 * `@credproxy/core/client`: only what a client needs (connect, call, errors, the socket path).
 * The CLI's client commands import this entry so they start without loading the server,
 * oauth4webapi or the stores.
 */
export { ErrorCode, ProxyError, isErrorCode } from './protocol/errors.js';
export type * from './protocol/ops.js';
export { FLOW_TYPES } from './protocol/ops.js';
export { ProxyClient, ProxyUnavailableError, UntrustedSocketError, checkSocketTrust } from './client/proxy-client.js';
export type { ConnectOptions, CallOptions } from './client/proxy-client.js';
export { defaultSocketPath } from './socket-path.js';
// For the CLI's shell completion (route names from the config file) without the server.
export { resolvePaths } from './paths.js';
export { CREDPROXY_VERSION } from './version.js';
export { isRunning } from './util/process.js';

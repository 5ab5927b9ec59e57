/**
 * The one place the CLI takes the client side of @credproxy/core from. Every command except
 * `serve` needs only this part (connect, call, errors, the socket path), and `credproxy token`
 * must start fast, so nothing here may pull in the server, the flows or the store.
 * Hence the light entry '@credproxy/core/client': the full index costs ~40 ms of startup
 * (server, oauth4webapi, proper-lockfile, koffi).
 */
export {
  CREDPROXY_VERSION,
  ErrorCode,
  isErrorCode,
  ProxyClient,
  ProxyError,
  ProxyUnavailableError,
  UntrustedSocketError,
  defaultSocketPath,
  resolvePaths,
  isRunning,
  FLOW_TYPES,
} from '@credproxy/core/client';
export type { FlowType, Op, OpPayload, OpResult, OAuthInitiateResult, OAuthPollResult } from '@credproxy/core/client';

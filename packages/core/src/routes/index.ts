/**
 * Routes (SPEC §6): the credential-injecting HTTP forward. What a listener host, the config
 * loader, the ops and the CLI need; nothing else of this folder is public.
 */
export { listRoutePresets, ROUTE_PRESETS, routePreset, type RoutePreset } from './presets.js';
export {
  assertRouteName,
  DEFAULT_ROUTE_FORMAT,
  DEFAULT_ROUTE_HEADER,
  formatCredential,
  isRouteName,
  parseAccountRef,
  resolveRoute,
  resolveRoutes,
  routeToConfig,
  validateRouteConfig,
  type ResolvedRoute,
  type RouteConfig,
  type RouteCredentialRef,
  type RouteUpstream,
} from './route-config.js';
export {
  createRouteHandler,
  createRouteServer,
  MAX_RETRY_BODY_BYTES,
  mountRouteHandler,
  type CredentialOptions,
  type RouteAuditRecord,
  type RouteHandlerDeps,
  type RouteRequestHandler,
  type RouteSecret,
} from './forward.js';
export {
  UpstreamError,
  UpstreamPool,
  type LookupFunction,
  type UpstreamClient,
  type UpstreamPoolOptions,
} from './upstream.js';
export { tokensEqual } from './request-auth.js';
export { classifyAddress, type AddressClass } from './address-guard.js';
export { PROXY_ERROR_HEADER } from './proxy-response.js';

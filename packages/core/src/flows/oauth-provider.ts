/**
 * One configured provider as oauth4webapi sees it: authorization server metadata (discovered or
 * explicit), the client, its authentication, and the HTTP options (injected fetch, loopback-only
 * plain http, a timeout per request).
 */
import * as oauth from 'oauth4webapi';
import { isLoopbackHost, type ProviderConfig } from '../config/config-file.js';
import { ErrorCode, ProxyError } from '../protocol/errors.js';
import type { StoredToken } from '../store/token-store.js';
import type { Clock } from '../util/clock.js';

export type FetchLike = typeof fetch;

/** Per-request upstream timeout. */
export const UPSTREAM_TIMEOUT_MS = 10_000;
/** Discovered metadata is reused for this long. */
const METADATA_TTL_MS = 10 * 60_000;

export interface OAuthProviderDeps {
  fetch?: FetchLike;
  /** Per-request upstream timeout, ms (default UPSTREAM_TIMEOUT_MS). */
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  clock: Clock;
}

function isInsecureLoopback(url: string): boolean {
  const u = new URL(url);
  return u.protocol === 'http:' && isLoopbackHost(u.hostname);
}

const ENDPOINT_KEYS = ['authorization_endpoint', 'token_endpoint', 'device_authorization_endpoint', 'revocation_endpoint', 'userinfo_endpoint'] as const;

function explicitEndpoints(c: ProviderConfig): Partial<Record<(typeof ENDPOINT_KEYS)[number], string>> {
  const out: Partial<Record<(typeof ENDPOINT_KEYS)[number], string>> = {};
  for (const key of ENDPOINT_KEYS) if (c[key] !== undefined) out[key] = c[key];
  return out;
}

export class OAuthProvider {
  readonly config: ProviderConfig;
  readonly client: oauth.Client;
  readonly #deps: OAuthProviderDeps;
  #metadata: { as: oauth.AuthorizationServer; at: number } | undefined;
  #discovering: Promise<oauth.AuthorizationServer> | undefined;

  constructor(config: ProviderConfig, deps: OAuthProviderDeps) {
    this.config = config;
    this.#deps = deps;
    this.client = { client_id: config.client_id };
  }

  /** The client secret, from the config or the named environment variable. */
  #secret(): string | undefined {
    if (this.config.client_secret !== undefined) return this.config.client_secret;
    if (this.config.client_secret_env !== undefined) {
      const value = (this.#deps.env ?? process.env)[this.config.client_secret_env];
      if (value === undefined || value === '') {
        throw new ProxyError(
          ErrorCode.PROVIDER_NOT_CONFIGURED,
          `${this.config.name}: the environment variable ${this.config.client_secret_env} (client_secret_env) is not set in the proxy's environment — export it before \`credproxy serve\``,
        );
      }
      return value;
    }
    return undefined;
  }

  clientAuth(): oauth.ClientAuth {
    const secret = this.#secret();
    return secret === undefined ? oauth.None() : oauth.ClientSecretBasic(secret);
  }

  /** Options for every oauth4webapi request: fetch, timeout/cancel, loopback-only http. */
  http(signal?: AbortSignal): oauth.HttpRequestOptions<'GET' | 'POST', unknown> {
    const timeout = AbortSignal.timeout(this.#deps.timeoutMs ?? UPSTREAM_TIMEOUT_MS);
    const options: oauth.HttpRequestOptions<'GET' | 'POST', unknown> = {
      signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
    };
    if (this.#deps.fetch) options[oauth.customFetch] = this.#deps.fetch as never;
    const base = this.config.issuer ?? this.config.token_endpoint!;
    if (isInsecureLoopback(base)) options[oauth.allowInsecureRequests] = true;
    return options;
  }

  /** Authorization server metadata: discovery when an issuer is configured, else the explicit endpoints. */
  async metadata(signal?: AbortSignal): Promise<oauth.AuthorizationServer> {
    const now = this.#deps.clock.now();
    if (this.#metadata && now - this.#metadata.at < METADATA_TTL_MS) return this.#metadata.as;
    this.#discovering ??= this.#resolve(signal).finally(() => (this.#discovering = undefined));
    return this.#discovering;
  }

  async #resolve(signal?: AbortSignal): Promise<oauth.AuthorizationServer> {
    const c = this.config;
    let as: oauth.AuthorizationServer;
    if (c.issuer !== undefined) {
      const issuer = new URL(c.issuer);
      try {
        const response = await oauth.discoveryRequest(issuer, { ...this.http(signal), algorithm: 'oidc' });
        as = await oauth.processDiscoveryResponse(issuer, response);
      } catch (err) {
        throw upstreamError(err, `${c.name}: discovery at ${c.issuer} failed`);
      }
      // Explicit endpoints in the config override discovered ones.
      as = { ...as, ...explicitEndpoints(c) };
    } else {
      as = { issuer: new URL(c.token_endpoint!).origin, ...explicitEndpoints(c) };
    }
    this.#metadata = { as, at: this.#deps.clock.now() };
    return as;
  }

  /** Map a token endpoint response to what we store. Expiry in unix seconds. */
  toStoredToken(response: oauth.TokenEndpointResponse, previous?: StoredToken): StoredToken {
    const now = Math.floor(this.#deps.clock.now() / 1000);
    const token: StoredToken = {
      access_token: response.access_token,
      token_type: 'Bearer',
    };
    const refresh = response.refresh_token ?? previous?.refresh_token;
    if (refresh !== undefined) token.refresh_token = refresh;
    if (typeof response.expires_in === 'number') token.expiry = now + response.expires_in;
    const scope = response.scope ?? previous?.scope;
    if (scope !== undefined) token.scope = scope;
    const idToken = response.id_token ?? previous?.id_token;
    if (idToken !== undefined) token.id_token = idToken;
    // Non-secret provider extras (account_id, resource_url, ...) pass through.
    for (const [k, v] of Object.entries(response)) {
      if (!(k in token) && !['expires_in', 'token_type', 'access_token', 'refresh_token', 'scope', 'id_token'].includes(k) && v !== undefined) {
        token[k] = v;
      }
    }
    return token;
  }
}

/** Network failures, timeouts and 5xx: transient. */
export function isTransient(err: unknown): boolean {
  if (err instanceof oauth.ResponseBodyError) return err.status >= 500;
  if (err instanceof oauth.OperationProcessingError) {
    const cause = (err as { cause?: unknown }).cause;
    // A non-OAuth error status (e.g. a 502 page from a gateway) carries the response.
    if (cause instanceof Response) return cause.status >= 500 || cause.status === 429;
    return false;
  }
  if (err instanceof TypeError) return true; // fetch network error
  if (err instanceof DOMException) return err.name === 'TimeoutError' || err.name === 'AbortError';
  const name = (err as { name?: unknown } | null)?.name;
  return name === 'TimeoutError';
}

/** The OAuth error code the provider sent, if it sent one (in the body or a WWW-Authenticate challenge). */
export function oauthErrorCode(err: unknown): string | undefined {
  if (err instanceof oauth.ResponseBodyError || err instanceof oauth.AuthorizationResponseError) return err.error;
  if (err instanceof oauth.WWWAuthenticateChallengeError) {
    const error = err.cause[0]?.parameters.error;
    return typeof error === 'string' ? error : undefined;
  }
  return undefined;
}

/** Describe an upstream failure without secrets: provider error codes and statuses only. */
export function describeUpstream(err: unknown): string {
  if (err instanceof oauth.ResponseBodyError) {
    return `${err.error}${err.error_description ? `: ${err.error_description}` : ''} (HTTP ${err.status})`;
  }
  if (err instanceof oauth.AuthorizationResponseError) return err.error;
  if (err instanceof oauth.WWWAuthenticateChallengeError) {
    return `${oauthErrorCode(err) ?? 'authentication challenge'} (HTTP ${err.response.status}) — check client_id and the client secret`;
  }
  if (err instanceof oauth.OperationProcessingError) {
    const cause = (err as { cause?: unknown }).cause;
    if (cause instanceof Response) return `${err.message} (HTTP ${cause.status})`;
    return err.message;
  }
  if (err instanceof Error) {
    if (err.name === 'TimeoutError') return `no answer within ${UPSTREAM_TIMEOUT_MS / 1000} s`;
    const why = networkCause(err);
    return why ? `${err.message}: ${why}` : err.message;
  }
  return String(err);
}

const NETWORK_CODES: Readonly<Record<string, string>> = {
  ECONNREFUSED: 'connection refused (ECONNREFUSED)',
  ECONNRESET: 'connection reset (ECONNRESET)',
  ENOTFOUND: 'host not found (ENOTFOUND)',
  EAI_AGAIN: 'DNS lookup failed (EAI_AGAIN)',
  ETIMEDOUT: 'connection timed out (ETIMEDOUT)',
  EHOSTUNREACH: 'host unreachable (EHOSTUNREACH)',
  ENETUNREACH: 'network unreachable (ENETUNREACH)',
  UND_ERR_SOCKET: 'the connection closed mid-answer',
};

/** fetch says only "fetch failed"; the reason is in its cause chain (undici). */
function networkCause(err: Error): string | undefined {
  let cause: unknown = err.cause;
  for (let depth = 0; depth < 4 && cause instanceof Error; depth++) {
    const code = (cause as { code?: unknown }).code;
    if (typeof code === 'string') {
      const known = NETWORK_CODES[code];
      if (known) return known;
    }
    cause = cause.cause;
  }
  return undefined;
}

export function upstreamError(err: unknown, what: string): ProxyError {
  if (err instanceof ProxyError) return err;
  if (isTransient(err)) {
    return new ProxyError(ErrorCode.UPSTREAM_UNAVAILABLE, `${what}: ${describeUpstream(err)} — the provider is unreachable or failing; try again shortly`, { cause: err });
  }
  return new ProxyError(ErrorCode.FLOW_INITIATION_FAILED, `${what}: ${describeUpstream(err)}`, { cause: err });
}

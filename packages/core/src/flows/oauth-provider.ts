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

/**
 * oauth4webapi's hooks for issuers that are not one fixed string (exported at run time, left out
 * of its typings): skip discovery's issuer comparison (checked here instead), and name the `iss`
 * an id token must carry per response (Microsoft's multi-tenant endpoints).
 */
const internals = oauth as unknown as { _nodiscoverycheck: symbol; _expectedIssuer: symbol };
const NO_DISCOVERY_CHECK = internals._nodiscoverycheck;
const EXPECTED_ISSUER = internals._expectedIssuer;
if (typeof NO_DISCOVERY_CHECK !== 'symbol' || typeof EXPECTED_ISSUER !== 'symbol') throw new Error('oauth4webapi lacks _nodiscoverycheck/_expectedIssuer');

/** Per-request upstream timeout. */
export const UPSTREAM_TIMEOUT_MS = 10_000;
/** Discovered metadata is reused for this long. */
const METADATA_TTL_MS = 10 * 60_000;

/**
 * How one provider bends the standard (SPEC §7). Presets (flows/presets/) supply these; a provider
 * configured by hand has none and is treated as the RFCs describe it.
 */
export interface ProviderQuirks {
  /**
   * Discovery's `issuer` may differ from the URL it was fetched from (Microsoft's multi-tenant
   * `{tenantid}` template, or a tenant named by domain): true accepts `discovered` for `configured`.
   */
  acceptDiscoveredIssuer?(discovered: string, configured: string): boolean;
  /** The `iss` an id token must carry, given its claims (Microsoft: the real tenant's issuer). */
  expectedIdTokenIssuer?(claims: Record<string, unknown>, as: oauth.AuthorizationServer): string | undefined;
  /**
   * Tokens issued without `expires_in` and without a refresh token do not expire (GitHub OAuth
   * apps): stored with this lifetime, in seconds, instead of the one-hour guess.
   */
  nonExpiringLifetimeSeconds?: number;
  /** Revocation other than RFC 7009, or none; undefined: RFC 7009 at the revocation endpoint. */
  revoke?(provider: OAuthProvider, token: StoredToken, signal?: AbortSignal): Promise<RevocationResult>;
  /** The client secret goes in the request body (client_secret_post), as GitHub documents it. */
  clientSecretInBody?: boolean;
  /** Who is logged in, from an endpoint of the provider's (GitHub's `GET /user`). */
  identity?(provider: OAuthProvider, token: StoredToken, signal?: AbortSignal): Promise<string | undefined>;
}

export interface RevocationResult {
  revoked: boolean;
  reason?: string;
}

/** Asymmetric JWS algorithms an id token may be signed with when nothing says which (see #algorithms). */
const ASYMMETRIC_ALGS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'];

/** The JWS algorithm a JWK is for: its `alg`, else what its key type implies. */
export function jwkAlgorithm(key: Record<string, unknown>): string | undefined {
  if (typeof key.alg === 'string') return key.alg;
  if (key.use !== undefined && key.use !== 'sig') return undefined;
  if (key.kty === 'RSA') return 'RS256';
  if (key.kty === 'EC') return ({ 'P-256': 'ES256', 'P-384': 'ES384', 'P-521': 'ES512' } as Record<string, string>)[String(key.crv)];
  if (key.kty === 'OKP' && key.crv === 'Ed25519') return 'EdDSA';
  return undefined;
}

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
  readonly quirks: ProviderQuirks;
  readonly #deps: OAuthProviderDeps;
  #metadata: { as: oauth.AuthorizationServer; at: number } | undefined;
  #discovering: Promise<oauth.AuthorizationServer> | undefined;

  constructor(config: ProviderConfig, deps: OAuthProviderDeps, quirks: ProviderQuirks = {}) {
    this.config = config;
    this.#deps = deps;
    this.quirks = quirks;
    this.client = { client_id: config.client_id };
  }

  /** Whether a client secret is configured (it may still be missing from the environment). */
  hasSecret(): boolean {
    return this.config.client_secret !== undefined || this.config.client_secret_env !== undefined;
  }

  /** The client secret, for preset requests oauth4webapi does not make (GitHub's revocation). */
  clientSecret(): string | undefined {
    return this.#secret();
  }

  /** What of this provider's own must never be repeated from its answers: the client secret, if any. */
  secrets(): string[] {
    try {
      const secret = this.#secret();
      return secret === undefined ? [] : [secret];
    } catch {
      return [];
    }
  }

  /** The fetch every request to this provider goes through, with a timeout and the caller's signal. */
  fetch(url: string, init: RequestInit = {}, signal?: AbortSignal): Promise<Response> {
    const timeout = AbortSignal.timeout(this.#deps.timeoutMs ?? UPSTREAM_TIMEOUT_MS);
    const f = this.#deps.fetch ?? fetch;
    return f(url, { ...init, redirect: 'manual', signal: signal ? AbortSignal.any([signal, timeout]) : timeout });
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
    if (secret === undefined) return oauth.None();
    return this.quirks.clientSecretInBody ? oauth.ClientSecretPost(secret) : oauth.ClientSecretBasic(secret);
  }

  /** Options for every oauth4webapi request: fetch, timeout/cancel, loopback-only http. */
  http(signal?: AbortSignal): oauth.HttpRequestOptions<'GET' | 'POST', unknown> {
    const timeout = AbortSignal.timeout(this.#deps.timeoutMs ?? UPSTREAM_TIMEOUT_MS);
    const options: oauth.HttpRequestOptions<'GET' | 'POST', unknown> = {
      signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
    };
    options[oauth.customFetch] = ((url: string, init: RequestInit) => this.#dialectFetch(url, init)) as never;
    const base = this.config.issuer ?? this.config.token_endpoint!;
    if (isInsecureLoopback(base)) options[oauth.allowInsecureRequests] = true;
    return options;
  }

  /**
   * Every oauth4webapi request passes here (its customFetch hook), so the provider's dialect is
   * spoken in one place: the generic options of SPEC §7 on the way out (`extra_token_params`,
   * `token_request: "json"`, `accept_json`), and on the way back a form-encoded answer becomes
   * JSON and a token endpoint's error sent as HTTP 200 (GitHub's device polling) becomes the 400
   * RFC 6749 §5.2 prescribes — never a success, never a parse failure.
   */
  async #dialectFetch(url: string, init: RequestInit): Promise<Response> {
    const f = this.#deps.fetch ?? fetch;
    const as = this.#metadata?.as;
    const c = this.config;
    const isTokenEndpoint = init.method === 'POST' && as?.token_endpoint !== undefined && sameEndpoint(url, as.token_endpoint);
    const isDeviceEndpoint = init.method === 'POST' && as?.device_authorization_endpoint !== undefined && sameEndpoint(url, as.device_authorization_endpoint);
    if (isTokenEndpoint || isDeviceEndpoint) {
      const headers = new Headers(init.headers);
      if (c.accept_json) headers.set('accept', 'application/json');
      let body = init.body;
      if (isTokenEndpoint && (c.extra_token_params !== undefined || c.token_request === 'json')) {
        const params = new URLSearchParams(typeof body === 'string' || body instanceof URLSearchParams ? body : undefined);
        for (const [k, v] of Object.entries(c.extra_token_params ?? {})) if (!params.has(k)) params.set(k, v);
        if (c.token_request === 'json') {
          body = JSON.stringify(Object.fromEntries(params));
          headers.set('content-type', 'application/json');
        } else {
          body = params.toString();
        }
      }
      const response = await f(url, { ...init, headers, body: body ?? null });
      return normalizeTokenResponse(response, isTokenEndpoint);
    }
    return f(url, init);
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
        const accept = this.quirks.acceptDiscoveredIssuer;
        as = await oauth.processDiscoveryResponse(accept ? (NO_DISCOVERY_CHECK as unknown as URL) : issuer, response);
        if (accept && new URL(as.issuer).href !== issuer.href && !accept(as.issuer, c.issuer)) {
          throw new ProxyError(ErrorCode.FLOW_INITIATION_FAILED, `${c.name}: discovery at ${c.issuer} names another issuer (${as.issuer}) — check the issuer URL`);
        }
      } catch (err) {
        throw upstreamError(err, `${c.name}: discovery at ${c.issuer} failed`);
      }
      // Explicit endpoints in the config override discovered ones.
      as = { ...as, ...explicitEndpoints(c) };
    } else {
      as = { issuer: new URL(c.token_endpoint!).origin, ...explicitEndpoints(c) };
    }
    if (c.jwks_uri !== undefined) as = { ...as, jwks_uri: c.jwks_uri };
    if (c.scopes.includes('openid') && as.id_token_signing_alg_values_supported === undefined) {
      as = { ...as, id_token_signing_alg_values_supported: await this.#algorithms(as, signal) };
    }
    const expected = this.quirks.expectedIdTokenIssuer;
    if (expected) {
      const base = as;
      as = { ...as, [EXPECTED_ISSUER]: (result: { claims: Record<string, unknown> }) => expected(result.claims, base) };
    }
    this.#metadata = { as, at: this.#deps.clock.now() };
    return as;
  }

  /**
   * The id token's signing algorithms when the metadata does not list them (explicit endpoints):
   * those of the provider's JWKS, else any asymmetric one. oauth4webapi otherwise expects RS256
   * and refuses an ES256 id token. The id token arrives straight from the token endpoint over the
   * authenticated connection (OIDC Core §3.1.3.7 item 6), so this check is about consistency, not
   * the token's origin.
   */
  async #algorithms(as: oauth.AuthorizationServer, signal?: AbortSignal): Promise<string[]> {
    if (as.jwks_uri !== undefined) {
      try {
        const response = await this.fetch(as.jwks_uri, { headers: { accept: 'application/json' } }, signal);
        const jwks = (await response.json()) as { keys?: unknown };
        if (response.ok && Array.isArray(jwks.keys)) {
          const algs = [...new Set(jwks.keys.map((k) => (typeof k === 'object' && k !== null ? jwkAlgorithm(k as Record<string, unknown>) : undefined)).filter((a): a is string => a !== undefined))];
          if (algs.length > 0) return algs;
        }
      } catch {
        // An unreachable JWKS is no reason to refuse the login: fall back below.
      }
    }
    return ASYMMETRIC_ALGS;
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
    else if (this.quirks.nonExpiringLifetimeSeconds !== undefined && refresh === undefined) token.expiry = now + this.quirks.nonExpiringLifetimeSeconds;
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

function sameEndpoint(a: string, b: string): boolean {
  try {
    const x = new URL(a);
    const y = new URL(b);
    return x.origin === y.origin && x.pathname === y.pathname;
  } catch {
    return false;
  }
}

/** Token and device answers larger than this are not OAuth answers. */
const MAX_TOKEN_RESPONSE_BYTES = 1 << 20;

/** See #dialectFetch: form-encoded answers as JSON, an error sent with 200 as a 400. */
async function normalizeTokenResponse(response: Response, isTokenEndpoint: boolean): Promise<Response> {
  const type = (response.headers.get('content-type') ?? '').toLowerCase();
  const isForm = type.startsWith('application/x-www-form-urlencoded');
  if (!isForm && !(isTokenEndpoint && response.status === 200)) return response;
  const text = await response.text();
  if (text.length > MAX_TOKEN_RESPONSE_BYTES) return new Response(null, { status: 502 });
  let body: Record<string, unknown> | undefined;
  if (isForm) {
    body = Object.fromEntries(new URLSearchParams(text));
    // A form carries only strings; these are numbers in the JSON answer of RFC 6749 / RFC 8628.
    for (const k of ['expires_in', 'interval', 'refresh_token_expires_in']) {
      if (typeof body[k] === 'string' && /^\d+(\.\d+)?$/.test(body[k] as string)) body[k] = Number(body[k]);
    }
  } else {
    try {
      const parsed: unknown = JSON.parse(text);
      if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) body = parsed as Record<string, unknown>;
    } catch {
      body = undefined;
    }
  }
  let status = response.status;
  if (body !== undefined && isTokenEndpoint && status === 200 && typeof body.error === 'string' && body.access_token === undefined) status = 400;
  const headers = new Headers(response.headers);
  headers.delete('content-length');
  if (body === undefined) return new Response(text, { status, headers });
  headers.set('content-type', 'application/json');
  return new Response(JSON.stringify(body), { status, headers });
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

/** C0 and C1 control characters: in a terminal they are commands (escape sequences), not text. */
const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f]/;
const CONTROL_CHARS_ALL = /[\u0000-\u001f\u007f-\u009f]/g;

/**
 * A URL from the provider that a person is sent to (its authorization endpoint, the device
 * verification page; the CLI opens it in a browser, a client may too): https, or http on a
 * loopback host, and printable. Anything else (`javascript:`, `file:`, an app's own scheme, escape
 * sequences for the terminal it is printed on) refuses the login instead.
 */
export function assertBrowserUrl(value: string, provider: string, what: string): string {
  let url: URL | undefined;
  try {
    url = new URL(value);
  } catch {
    url = undefined;
  }
  const safe = url !== undefined && !CONTROL_CHARS.test(value) && (url.protocol === 'https:' || (url.protocol === 'http:' && isLoopbackHost(url.hostname)));
  if (!safe) {
    throw new ProxyError(
      ErrorCode.FLOW_INITIATION_FAILED,
      `${provider}: the provider's ${what} is not an https URL (${JSON.stringify(value.slice(0, 80))}) — credproxy sends nobody there; check the provider's configuration`,
    );
  }
  return value;
}

/** Text from the provider a person reads and types (a device flow's user code): printable. */
export function assertPrintable(value: string, provider: string, what: string): string {
  if (CONTROL_CHARS.test(value) || value.length > 256) {
    throw new ProxyError(ErrorCode.FLOW_INITIATION_FAILED, `${provider}: the provider's ${what} is not printable text — check the provider's configuration`);
  }
  return value;
}

/** Shorter values are not searched for: they would match ordinary words. */
const MIN_REDACTED_LENGTH = 8;

/**
 * `text` with every `secrets` value (as sent, percent-encoded or form-encoded — how it went to
 * the provider) replaced by `[redacted]`: a provider may quote what it was sent in its
 * error_description, and that text reaches clients and the log.
 */
export function redactSecrets(text: string, secrets: readonly (string | undefined)[]): string {
  let out = text;
  for (const secret of secrets) {
    if (secret === undefined || secret.length < MIN_REDACTED_LENGTH) continue;
    for (const form of new Set([secret, encodeURIComponent(secret), new URLSearchParams({ v: secret }).toString().slice(2)])) {
      if (out.includes(form)) out = out.split(form).join('[redacted]');
    }
  }
  return out;
}

/**
 * Describe an upstream failure without secrets: provider error codes, statuses and the
 * provider's own description — with `secrets` (what this request sent: refresh token, code,
 * verifier, device code, client secret) taken out of it.
 */
export function describeUpstream(err: unknown, secrets: readonly (string | undefined)[] = []): string {
  return printableText(redactSecrets(describeUpstreamText(err), secrets));
}

/** The longest provider text passed on (an error page may be megabytes). */
const MAX_DESCRIBED_CHARS = 500;

/**
 * Provider text made safe to print and log: control characters (escape sequences for a terminal,
 * line breaks that would forge log lines) become spaces, and it is cut at MAX_DESCRIBED_CHARS.
 */
function printableText(text: string): string {
  const flat = text.replace(CONTROL_CHARS_ALL, ' ');
  return flat.length > MAX_DESCRIBED_CHARS ? `${flat.slice(0, MAX_DESCRIBED_CHARS)}…` : flat;
}

function describeUpstreamText(err: unknown): string {
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

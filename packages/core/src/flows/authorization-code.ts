/**
 * The authorization code grant with PKCE, shared by the loopback and paste flows.
 * @see RFC 6749 §4.1, RFC 7636 (PKCE), RFC 9207 (iss), RFC 8252 §7.3 (loopback redirect)
 */
import * as oauth from 'oauth4webapi';
import { ErrorCode, ProxyError } from '../protocol/errors.js';
import type { StoredToken } from '../store/token-store.js';
import { assertBrowserUrl, describeUpstream, isTransient, type OAuthProvider } from './oauth-provider.js';

/** Secrets of one authorization request; they never leave the proxy. */
export interface AuthorizationRequestSecrets {
  state: string;
  verifier: string;
  /** S256 of the verifier; kept so the URL can be built again (authorizationUrl). */
  codeChallenge: string;
  nonce?: string;
  redirectUri: string;
}

export async function createAuthorizationRequest(
  provider: OAuthProvider,
  redirectUri: string,
  signal?: AbortSignal,
): Promise<{ url: string; secrets: AuthorizationRequestSecrets }> {
  const as = await provider.metadata(signal);
  const verifier = oauth.generateRandomCodeVerifier();
  const secrets: AuthorizationRequestSecrets = {
    state: oauth.generateRandomState(),
    verifier,
    codeChallenge: await oauth.calculatePKCECodeChallenge(verifier),
    redirectUri,
  };
  if (provider.config.scopes.includes('openid')) secrets.nonce = oauth.generateRandomNonce();
  return { url: authorizationUrl(as, provider, secrets), secrets };
}

/**
 * The authorization URL of a request, the same every time for the same secrets: a login that
 * joins a pending one gets it rebuilt, so thousands of pending logins need not each keep theirs.
 */
export function authorizationUrl(as: oauth.AuthorizationServer, provider: OAuthProvider, secrets: AuthorizationRequestSecrets): string {
  if (!as.authorization_endpoint) {
    throw new ProxyError(ErrorCode.FLOW_INITIATION_FAILED, `${provider.config.name}: the provider has no authorization endpoint — set authorization_endpoint in the config`);
  }
  const url = new URL(assertBrowserUrl(as.authorization_endpoint, provider.config.name, 'authorization endpoint'));
  const scopes = provider.config.scopes;
  const params = url.searchParams;
  params.set('response_type', 'code');
  params.set('client_id', provider.config.client_id);
  params.set('redirect_uri', secrets.redirectUri);
  if (scopes.length > 0) params.set('scope', scopes.join(' '));
  params.set('state', secrets.state);
  params.set('code_challenge', secrets.codeChallenge);
  params.set('code_challenge_method', 'S256');
  if (secrets.nonce !== undefined) params.set('nonce', secrets.nonce);
  for (const [k, v] of Object.entries(provider.config.extra_auth_params)) {
    if (!params.has(k)) params.set(k, v);
  }
  return url.href;
}

/** The authorization URL of a started flow, again (see authorizationUrl). */
export async function rebuildAuthorizationUrl(provider: OAuthProvider, secrets: AuthorizationRequestSecrets | undefined): Promise<string> {
  if (!secrets) throw new ProxyError(ErrorCode.SESSION_NOT_FOUND, 'this login has not started');
  return authorizationUrl(await provider.metadata(), provider, secrets);
}

const PASTE_WHOLE = 'paste the whole `code#state` the provider shows, or the full redirect URL with its state=';

/**
 * Read what the user pasted: `code#state` as providers' code pages show it, the query
 * (`code=…&state=…`), or the whole redirect URL. The state is required: it is what ties a code to
 * this login, so a code from another login (or a bare code of unknown origin) never reaches the
 * token endpoint and cannot end this login. Never throws anything but INVALID_REQUEST.
 */
export function parsePastedCode(input: string): URLSearchParams {
  const text = input.trim();
  let params: URLSearchParams;
  if (/^https?:\/\//i.test(text)) {
    let url: URL;
    try {
      url = new URL(text);
    } catch {
      throw new ProxyError(ErrorCode.INVALID_REQUEST, `the pasted text starts like a URL but is not one — ${PASTE_WHOLE}`);
    }
    params = new URLSearchParams(url.search);
    if (url.hash.length > 1) for (const [k, v] of new URLSearchParams(url.hash.slice(1))) if (!params.has(k)) params.set(k, v);
  } else if (/(^|&)(code|error)=/.test(text.replace(/^[?#]/, ''))) {
    params = new URLSearchParams(text.replace(/^[?#]/, ''));
  } else {
    const hash = text.indexOf('#');
    params = new URLSearchParams();
    params.set('code', hash === -1 ? text : text.slice(0, hash));
    if (hash !== -1) params.set('state', text.slice(hash + 1));
  }
  if (!params.get('code') && !params.get('error')) {
    throw new ProxyError(ErrorCode.INVALID_REQUEST, `no authorization code found — ${PASTE_WHOLE}`);
  }
  if (!params.get('state')) {
    throw new ProxyError(ErrorCode.INVALID_REQUEST, `the pasted code carries no state, so it cannot be matched to this login — ${PASTE_WHOLE}`);
  }
  return params;
}

/**
 * Check the authorization response and swap the code for tokens.
 * `supplyIssuer`: a pasted code carries no `iss`; the proxy supplies the provider's own
 * (RFC 9207) so the mix-up check still runs against the metadata we trust.
 */
export async function redeemAuthorizationResponse(
  provider: OAuthProvider,
  received: URLSearchParams,
  secrets: AuthorizationRequestSecrets,
  options: { supplyIssuer?: boolean; signal?: AbortSignal } = {},
): Promise<StoredToken> {
  const name = provider.config.name;
  const as = await provider.metadata(options.signal);
  const params = new URLSearchParams(received);
  if (!params.has('error') && !params.has('code')) {
    throw new ProxyError(ErrorCode.INVALID_REQUEST, `no authorization code found — ${PASTE_WHOLE}`);
  }
  // Never assumed: a response without this login's state is not this login's (see parsePastedCode).
  if (params.get('state') !== secrets.state) {
    throw new ProxyError(ErrorCode.STATE_MISMATCH, `${name}: the code belongs to a different login (state mismatch) — paste the code from this login's page`);
  }
  if (options.supplyIssuer && !params.has('iss') && as.authorization_response_iss_parameter_supported) {
    params.set('iss', as.issuer);
  }
  // What this exchange sends that an error quoting it must not carry on.
  const sent = [params.get('code') ?? undefined, secrets.verifier, ...provider.secrets()];
  let callback: URLSearchParams;
  try {
    callback = oauth.validateAuthResponse(as, provider.client, params, secrets.state);
  } catch (err) {
    if (err instanceof oauth.AuthorizationResponseError) {
      if (err.error === 'access_denied') {
        throw new ProxyError(ErrorCode.ACCESS_DENIED, `${name}: the login was denied at the provider`);
      }
      throw new ProxyError(ErrorCode.EXCHANGE_FAILED, `${name}: the provider answered ${describeUpstream(err, sent)}`);
    }
    throw new ProxyError(ErrorCode.EXCHANGE_FAILED, `${name}: the authorization response failed its checks: ${describeUpstream(err, sent)}`);
  }
  try {
    const response = await oauth.authorizationCodeGrantRequest(
      as,
      provider.client,
      provider.clientAuth(),
      callback,
      secrets.redirectUri,
      secrets.verifier,
      provider.http(options.signal),
    );
    const result = await oauth.processAuthorizationCodeResponse(as, provider.client, response, {
      expectedNonce: secrets.nonce ?? oauth.expectNoNonce,
    });
    return provider.toStoredToken(result);
  } catch (err) {
    if (err instanceof ProxyError) throw err;
    if (isTransient(err)) {
      throw new ProxyError(ErrorCode.UPSTREAM_UNAVAILABLE, `${name}: the token endpoint failed: ${describeUpstream(err, sent)} — try the login again`);
    }
    throw new ProxyError(ErrorCode.EXCHANGE_FAILED, `${name}: the code could not be exchanged: ${describeUpstream(err, sent)} — start a new login`);
  }
}

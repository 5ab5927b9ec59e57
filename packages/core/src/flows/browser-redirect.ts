/**
 * browser_redirect: the provider redirects to a page that shows the code (often `code#state`);
 * the user pastes it and oauth_exchange swaps it, with the verifier kept here.
 */
import { ErrorCode, ProxyError } from '../protocol/errors.js';
import type { StoredToken } from '../store/token-store.js';
import { createAuthorizationRequest, parsePastedCode, rebuildAuthorizationUrl, redeemAuthorizationResponse, type AuthorizationRequestSecrets } from './authorization-code.js';
import type { FlowFactory, FlowOptions, FlowStart, LoginFlow } from './flow.js';
import type { OAuthProvider } from './oauth-provider.js';

export const PASTE_POLL_INTERVAL_MS = 2_000;

/**
 * A class rather than an object of closures: thousands of these can wait for a paste at once
 * (one per pending login), and an instance costs a fraction of three closures and their context.
 */
class BrowserRedirectFlow implements LoginFlow {
  readonly flowType = 'browser_redirect' as const;
  readonly #provider: OAuthProvider;
  readonly #redirectUri: string | undefined;
  #secrets: AuthorizationRequestSecrets | undefined;

  constructor(provider: OAuthProvider, options: FlowOptions) {
    this.#provider = provider;
    this.#redirectUri = options.redirectUri;
  }

  async start(signal?: AbortSignal): Promise<FlowStart> {
    const provider = this.#provider;
    const redirectUri = this.#redirectUri ?? provider.config.redirect_uri;
    if (redirectUri === undefined) {
      throw new ProxyError(ErrorCode.FLOW_INITIATION_FAILED, `${provider.config.name}: browser_redirect needs a redirect_uri (the page that shows the code) — set it with \`credproxy provider add ${provider.config.name} --redirect-uri URI\``);
    }
    const request = await createAuthorizationRequest(provider, redirectUri, signal);
    this.#secrets = request.secrets;
    return { auth_url: request.url, pollIntervalMs: PASTE_POLL_INTERVAL_MS };
  }

  async exchange(pasted: string, signal?: AbortSignal): Promise<StoredToken> {
    if (!this.#secrets) throw new ProxyError(ErrorCode.SESSION_NOT_FOUND, 'this login has not started');
    return redeemAuthorizationResponse(this.#provider, parsePastedCode(pasted), this.#secrets, { supplyIssuer: true, ...(signal ? { signal } : {}) });
  }

  authorizationUrl(): Promise<string> {
    return rebuildAuthorizationUrl(this.#provider, this.#secrets);
  }

  dispose(): void {}
}

export const browserRedirectFlow: FlowFactory = (provider, options): LoginFlow => new BrowserRedirectFlow(provider, options);

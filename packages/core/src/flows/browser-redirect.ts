/**
 * browser_redirect: the provider redirects to a page that shows the code (often `code#state`);
 * the user pastes it and oauth_exchange swaps it, with the verifier kept here.
 */
import { ErrorCode, ProxyError } from '../protocol/errors.js';
import { createAuthorizationRequest, parsePastedCode, redeemAuthorizationResponse, type AuthorizationRequestSecrets } from './authorization-code.js';
import type { FlowFactory, LoginFlow } from './flow.js';

export const PASTE_POLL_INTERVAL_MS = 2_000;

export const browserRedirectFlow: FlowFactory = (provider, options): LoginFlow => {
  let secrets: AuthorizationRequestSecrets | undefined;
  return {
    flowType: 'browser_redirect',
    async start(signal) {
      const redirectUri = options.redirectUri ?? provider.config.redirect_uri;
      if (redirectUri === undefined) {
        throw new ProxyError(ErrorCode.FLOW_INITIATION_FAILED, `${provider.config.name}: browser_redirect needs a redirect_uri (the page that shows the code) — set it with \`credproxy provider add ${provider.config.name} --redirect-uri URI\``);
      }
      const request = await createAuthorizationRequest(provider, redirectUri, signal);
      secrets = request.secrets;
      return { auth_url: request.url, pollIntervalMs: PASTE_POLL_INTERVAL_MS };
    },
    async exchange(pasted, signal) {
      if (!secrets) throw new ProxyError(ErrorCode.SESSION_NOT_FOUND, 'this login has not started');
      return redeemAuthorizationResponse(provider, parsePastedCode(pasted), secrets, { supplyIssuer: true, ...(signal ? { signal } : {}) });
    },
    dispose() {},
  };
};

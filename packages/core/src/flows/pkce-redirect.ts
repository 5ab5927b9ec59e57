/**
 * pkce_redirect: S256 PKCE with a loopback redirect (RFC 8252 §7.3). The callback arrives on
 * 127.0.0.1 — an ephemeral port of this login's own, or the configured fixed port shared with
 * every other pending login there (callback-router.ts routes it by state) — and is served once;
 * the login's route ends with the session. The user may instead paste the redirect URL
 * (oauth_exchange), e.g. when the browser runs on another machine.
 */
import { isLoopbackHost } from '../config/config-file.js';
import { ErrorCode, ProxyError } from '../protocol/errors.js';
import type { StoredToken } from '../store/token-store.js';
import { authorizationUrl, createAuthorizationRequest, parsePastedCode, rebuildAuthorizationUrl, redeemAuthorizationResponse, type AuthorizationRequestSecrets } from './authorization-code.js';
import { type CallbackRegistration, type CallbackReply, CallbackRouter } from './callback-router.js';
import type { FlowFactory, FlowOutcome, LoginFlow } from './flow.js';

export { splitRequestTarget } from './callback-router.js';

export const LOOPBACK_POLL_INTERVAL_MS = 1_000;

/** Where to listen, from a configured redirect URI or the defaults. */
function loopbackTarget(redirectUri: string | undefined, port: number | undefined): { host: string; uriHost: string; port: number; path: string } {
  if (redirectUri === undefined) return { host: '127.0.0.1', uriHost: '127.0.0.1', port: port ?? 0, path: '/callback' };
  const url = new URL(redirectUri);
  if (url.protocol !== 'http:' || !isLoopbackHost(url.hostname)) {
    throw new ProxyError(ErrorCode.FLOW_INITIATION_FAILED, `pkce_redirect needs a loopback http redirect_uri (http://127.0.0.1:PORT/path), not ${redirectUri} — use the browser_redirect flow for a hosted code page`);
  }
  const host = url.hostname === 'localhost' ? '127.0.0.1' : url.hostname.replace(/^\[|\]$/g, '');
  // `localhost` stays in the redirect URI (Microsoft registers it so), the listener binds 127.0.0.1.
  return { host, uriHost: url.hostname, port: url.port === '' ? (port ?? 0) : Number(url.port), path: url.pathname || '/' };
}

export const pkceRedirectFlow: FlowFactory = (provider, options): LoginFlow => {
  const name = provider.config.name;
  let registration: CallbackRegistration | undefined;
  let secrets: AuthorizationRequestSecrets | undefined;
  let settled = false;
  /** A code is being redeemed (callback or paste): a second one is refused. */
  let redeeming = false;
  let resolveOutcome!: (o: FlowOutcome) => void;
  const outcome = new Promise<FlowOutcome>((resolve) => (resolveOutcome = resolve));
  let deadlineTimer: NodeJS.Timeout | undefined;

  const close = (): void => {
    if (deadlineTimer) clearTimeout(deadlineTimer);
    const r = registration;
    registration = undefined;
    r?.release();
  };
  const settle = (o: FlowOutcome): void => {
    if (settled) return;
    settled = true;
    resolveOutcome(o);
  };

  const finishWith = async (params: URLSearchParams): Promise<CallbackReply> => {
    try {
      const token = await redeemAuthorizationResponse(provider, params, secrets!);
      settle({ status: 'complete', token });
      return { status: 200, title: `Logged in to ${name}`, body: 'credproxy has the token. You can close this tab and return to the terminal.' };
    } catch (err) {
      const e = err instanceof ProxyError ? err : new ProxyError(ErrorCode.EXCHANGE_FAILED, 'the login could not be completed');
      settle({ status: e.code === ErrorCode.ACCESS_DENIED ? 'denied' : 'failed', code: e.code, error: e.message });
      return { status: e.code === ErrorCode.ACCESS_DENIED ? 403 : 502, title: `Login to ${name} failed`, body: `${e.message}. Return to the terminal.` };
    }
  };

  return {
    flowType: 'pkce_redirect',
    outcome,
    async start(signal) {
      const target = loopbackTarget(options.redirectUri ?? provider.config.redirect_uri, provider.config.callback_port);
      const configured = options.redirectUri ?? provider.config.redirect_uri;
      const hostInUri = target.uriHost.includes(':') && !target.uriHost.startsWith('[') ? `[${target.uriHost}]` : target.uriHost;
      const router = options.callbacks ?? new CallbackRouter(options.logger ? { logger: options.logger } : {});
      const redirectFor = (port: number): string =>
        configured !== undefined && new URL(configured).port !== '' ? configured : `http://${hostInUri}:${port}${target.path}`;
      // The state is drawn before the route is registered: callbacks on a shared port are routed by it.
      const request = await createAuthorizationRequest(provider, redirectFor(target.port), signal);
      secrets = request.secrets;
      let authUrl = request.url;
      const route = {
        path: target.path,
        state: secrets.state,
        handle: async (query: URLSearchParams): Promise<CallbackReply> => {
          if (settled || redeeming || !secrets) {
            return { status: 410, title: 'Login already finished', body: 'This login has already finished. Return to the terminal.' };
          }
          redeeming = true;
          const reply = await finishWith(query);
          close();
          return reply;
        },
      };
      registration = await router.register(target.host, target.port, route, name);
      try {
        if (target.port === 0) {
          // An ephemeral port is known only once bound: the redirect URI (and the URL) name it.
          secrets.redirectUri = redirectFor(registration.port);
          authUrl = authorizationUrl(await provider.metadata(signal), provider, secrets);
        }
        deadlineTimer = setTimeout(() => {
          settle({ status: 'expired', code: ErrorCode.SESSION_EXPIRED, error: 'the login was not completed in time' });
          close();
        }, Math.max(0, options.deadline - Date.now()));
        deadlineTimer.unref();
        return { auth_url: authUrl, pollIntervalMs: LOOPBACK_POLL_INTERVAL_MS };
      } catch (err) {
        close();
        throw err;
      }
    },
    async exchange(pasted, signal): Promise<StoredToken> {
      if (!secrets) throw new ProxyError(ErrorCode.SESSION_NOT_FOUND, 'this login has not started');
      if (settled || redeeming) throw new ProxyError(ErrorCode.SESSION_ALREADY_USED, 'this login has already finished');
      const params = parsePastedCode(pasted);
      redeeming = true;
      let token: StoredToken;
      try {
        token = await redeemAuthorizationResponse(provider, params, secrets, signal ? { signal } : {});
      } finally {
        redeeming = false;
      }
      settle({ status: 'complete', token });
      close();
      return token;
    },
    authorizationUrl() {
      return rebuildAuthorizationUrl(provider, secrets);
    },
    dispose() {
      close();
      settle({ status: 'failed', code: ErrorCode.CANCELLED, error: 'the login was cancelled' });
    },
  };
};

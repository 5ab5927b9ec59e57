/**
 * pkce_redirect: S256 PKCE with a loopback redirect (RFC 8252 §7.3). A listener on 127.0.0.1
 * (ephemeral or configured port) serves the callback once, then closes; it also closes when the
 * session ends. The user may instead paste the redirect URL (oauth_exchange), e.g. when the
 * browser runs on another machine.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { isLoopbackHost } from '../config/config-file.js';
import { ErrorCode, ProxyError } from '../protocol/errors.js';
import type { StoredToken } from '../store/token-store.js';
import { guardHttpHandler, hardenHttpServer } from '../util/http-guard.js';
import { createAuthorizationRequest, parsePastedCode, rebuildAuthorizationUrl, redeemAuthorizationResponse, type AuthorizationRequestSecrets } from './authorization-code.js';
import type { FlowFactory, FlowOutcome, LoginFlow } from './flow.js';

export const LOOPBACK_POLL_INTERVAL_MS = 1_000;
/** A browser needs one or two connections; more are someone else's. */
const CALLBACK_MAX_CONNECTIONS = 16;
const CALLBACK_HEADERS_TIMEOUT_MS = 10_000;

/**
 * Path and query of an HTTP request target, without URL parsing: `new URL('//[', base)` throws,
 * and any byte a peer sends must get an answer, not an exception. Only origin-form targets can be
 * the callback; anything else simply does not match the path.
 */
export function splitRequestTarget(target: string): { path: string; query: URLSearchParams } {
  const hash = target.indexOf('#');
  const text = hash === -1 ? target : target.slice(0, hash);
  const q = text.indexOf('?');
  return q === -1 ? { path: text, query: new URLSearchParams() } : { path: text.slice(0, q), query: new URLSearchParams(text.slice(q + 1)) };
}

function page(title: string, body: string): string {
  const esc = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  return `<!doctype html><html><head><meta charset="utf-8"><title>${esc(title)}</title></head><body style="font-family:sans-serif;max-width:40em;margin:4em auto"><h1>${esc(title)}</h1><p>${esc(body)}</p></body></html>`;
}

/** Where to listen, from a configured redirect URI or the defaults. */
function loopbackTarget(redirectUri: string | undefined, port: number | undefined): { host: string; port: number; path: string } {
  if (redirectUri === undefined) return { host: '127.0.0.1', port: port ?? 0, path: '/callback' };
  const url = new URL(redirectUri);
  if (url.protocol !== 'http:' || !isLoopbackHost(url.hostname)) {
    throw new ProxyError(ErrorCode.FLOW_INITIATION_FAILED, `pkce_redirect needs a loopback http redirect_uri (http://127.0.0.1:PORT/path), not ${redirectUri} — use the browser_redirect flow for a hosted code page`);
  }
  const host = url.hostname === 'localhost' ? '127.0.0.1' : url.hostname.replace(/^\[|\]$/g, '');
  return { host, port: url.port === '' ? (port ?? 0) : Number(url.port), path: url.pathname || '/' };
}

export const pkceRedirectFlow: FlowFactory = (provider, options): LoginFlow => {
  const name = provider.config.name;
  let server: http.Server | undefined;
  let secrets: AuthorizationRequestSecrets | undefined;
  let settled = false;
  /** A code is being redeemed (callback or paste): a second one is refused. */
  let redeeming = false;
  let resolveOutcome!: (o: FlowOutcome) => void;
  const outcome = new Promise<FlowOutcome>((resolve) => (resolveOutcome = resolve));
  let deadlineTimer: NodeJS.Timeout | undefined;

  const close = (): void => {
    if (deadlineTimer) clearTimeout(deadlineTimer);
    if (server) {
      // Stop accepting now; let a callback answer that is being written finish first.
      const s = server;
      server = undefined;
      s.close();
      s.closeIdleConnections();
      setTimeout(() => s.closeAllConnections(), 1_000).unref();
    }
  };
  const settle = (o: FlowOutcome): void => {
    if (settled) return;
    settled = true;
    resolveOutcome(o);
  };

  const finishWith = async (params: URLSearchParams): Promise<{ status: number; title: string; body: string }> => {
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
      const handle = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
        const { path, query } = splitRequestTarget(req.url ?? '/');
        const reply = (status: number, title: string, body: string): void => {
          res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', connection: 'close' });
          res.end(page(title, body));
        };
        if (req.method !== 'GET' || path !== target.path) {
          reply(404, 'Not found', 'This is credproxy\'s login callback; nothing else lives here.');
          return;
        }
        if (settled || redeeming || !secrets) {
          reply(410, 'Login already finished', 'This login has already finished. Return to the terminal.');
          return;
        }
        // A request with the wrong state is not ours to finish: keep waiting for the real one.
        if (query.get('state') !== secrets.state) {
          reply(400, 'Login link does not match', 'This callback does not belong to the pending login (state mismatch). Return to the terminal and start again if needed.');
          return;
        }
        redeeming = true;
        const { status, title, body } = await finishWith(query);
        reply(status, title, body);
        close();
      };
      const srv = http.createServer(guardHttpHandler(handle, { name: `${name} login callback`, ...(options.logger ? { logger: options.logger } : {}) }));
      hardenHttpServer(srv, {
        name: `${name} login callback`,
        ...(options.logger ? { logger: options.logger } : {}),
        maxConnections: CALLBACK_MAX_CONNECTIONS,
        headersTimeoutMs: CALLBACK_HEADERS_TIMEOUT_MS,
      });
      srv.keepAliveTimeout = 1000;
      await new Promise<void>((resolve, reject) => {
        srv.once('error', (err: NodeJS.ErrnoException) =>
          reject(new ProxyError(ErrorCode.FLOW_INITIATION_FAILED, `${name}: cannot listen for the login callback on ${target.host}:${target.port} (${err.code ?? err.message}) — free the port or change callback_port`)),
        );
        srv.listen(target.port, target.host, () => resolve());
      });
      server = srv;
      const port = (srv.address() as AddressInfo).port;
      const hostInUri = target.host.includes(':') ? `[${target.host}]` : target.host;
      const configured = options.redirectUri ?? provider.config.redirect_uri;
      const redirectUri = configured !== undefined && new URL(configured).port !== ''
        ? configured
        : `http://${hostInUri}:${port}${target.path}`;
      try {
        const request = await createAuthorizationRequest(provider, redirectUri, signal);
        secrets = request.secrets;
        deadlineTimer = setTimeout(() => {
          settle({ status: 'expired', code: ErrorCode.SESSION_EXPIRED, error: 'the login was not completed in time' });
          close();
        }, Math.max(0, options.deadline - Date.now()));
        deadlineTimer.unref();
        return { auth_url: request.url, pollIntervalMs: LOOPBACK_POLL_INTERVAL_MS };
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

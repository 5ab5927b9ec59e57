/**
 * Loopback callback listeners (SPEC §7): one listener per fixed port, shared by every pending
 * login that uses the port, each callback routed to its login by the opaque `state`. A callback
 * whose state no pending login holds gets a page saying so and touches no session. The listener
 * opens with the first login on its port and closes when the last one ends. A login without a
 * fixed port (port 0) gets an ephemeral listener of its own, as before.
 * @see RFC 8252 §7.3 (loopback redirect), §8.9 (state)
 */
import type http from 'node:http';
import type { AddressInfo } from 'node:net';
import { ErrorCode, ProxyError } from '../protocol/errors.js';
import { guardHttpHandler, hardenHttpServer } from '../util/http-guard.js';
import type { Logger } from '../util/logger.js';

/** A browser needs one or two connections per login; more are someone else's. */
const CALLBACK_MAX_CONNECTIONS = 32;
const CALLBACK_HEADERS_TIMEOUT_MS = 10_000;

export interface CallbackReply {
  status: number;
  title: string;
  body: string;
}

/** One pending login's callback: its path and state, and what to do with the redirect. */
export interface CallbackRoute {
  path: string;
  state: string;
  /** Handle the callback that carries this route's state. */
  handle(query: URLSearchParams): Promise<CallbackReply>;
}

export interface CallbackRegistration {
  /** The port the listener is bound to (the fixed one, or the ephemeral one chosen). */
  readonly port: number;
  /** Stop routing this login's state here; the listener closes when no login uses it. */
  release(): void;
}

/**
 * Path and query of an HTTP request target, without URL parsing: `new URL('//[', base)` throws,
 * and any byte a peer sends must get an answer, not an exception. Only origin-form targets can be
 * the callback; anything else simply does not match a path.
 */
export function splitRequestTarget(target: string): { path: string; query: URLSearchParams } {
  const hash = target.indexOf('#');
  const text = hash === -1 ? target : target.slice(0, hash);
  const q = text.indexOf('?');
  return q === -1 ? { path: text, query: new URLSearchParams() } : { path: text.slice(0, q), query: new URLSearchParams(text.slice(q + 1)) };
}

export function callbackPage(title: string, body: string): string {
  const esc = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  return `<!doctype html><html><head><meta charset="utf-8"><title>${esc(title)}</title></head><body style="font-family:sans-serif;max-width:40em;margin:4em auto"><h1>${esc(title)}</h1><p>${esc(body)}</p></body></html>`;
}

interface Listener {
  server: http.Server;
  port: number;
  /** Pending logins on this listener, by state. */
  routes: Map<string, CallbackRoute>;
}

export class CallbackRouter {
  readonly #logger: Logger | undefined;
  /** Fixed-port listeners by `host:port`, open or opening. */
  readonly #shared = new Map<string, Promise<Listener>>();
  /** Fixed-port listeners that are closing: a new login on the port waits for the port to be free. */
  readonly #closing = new Map<string, Promise<void>>();
  /** The listener each fixed-port entry resolved to. */
  readonly #current = new Map<string, Listener>();

  constructor(options: { logger?: Logger } = {}) {
    this.#logger = options.logger;
  }

  /** Open fixed-port listeners (for tests and the proxy's status). */
  get listeners(): number {
    return this.#shared.size;
  }

  /**
   * Route callbacks with `route.state` to `route`, on `host:port` (port 0: an ephemeral listener
   * of this login's own). `name` names the listener in log lines and errors.
   */
  async register(host: string, port: number, route: CallbackRoute, name: string): Promise<CallbackRegistration> {
    if (port === 0) {
      const listener = await this.#open(host, 0, name);
      listener.routes.set(route.state, route);
      return { port: listener.port, release: () => this.#release(listener, route.state, undefined) };
    }
    const key = `${host}:${port}`;
    for (;;) {
      let opening = this.#shared.get(key);
      if (!opening) {
        const closing = this.#closing.get(key);
        const next = (closing ?? Promise.resolve()).then(() => this.#open(host, port, name)).then((l) => {
          this.#current.set(key, l);
          return l;
        });
        opening = next;
        this.#shared.set(key, next);
        next.catch(() => {
          if (this.#shared.get(key) === next) this.#shared.delete(key);
        });
      }
      const listener = await opening;
      // The last login on it may have ended while this one waited: then open the port again.
      if (this.#shared.get(key) !== opening) continue;
      if (listener.routes.has(route.state)) throw new ProxyError(ErrorCode.INTERNAL_ERROR, 'a login with this state is already pending');
      listener.routes.set(route.state, route);
      return { port: listener.port, release: () => this.#release(listener, route.state, key) };
    }
  }

  #release(listener: Listener, state: string, key: string | undefined): void {
    listener.routes.delete(state);
    if (listener.routes.size > 0) return;
    if (key !== undefined && this.#current.get(key) === listener) {
      this.#shared.delete(key);
      this.#current.delete(key);
    }
    const s = listener.server;
    const closed = new Promise<void>((resolve) => s.close(() => resolve()));
    s.closeIdleConnections();
    // Let a callback answer that is being written finish first.
    setTimeout(() => s.closeAllConnections(), 1_000).unref();
    if (key !== undefined) {
      this.#closing.set(key, closed);
      void closed.then(() => {
        if (this.#closing.get(key) === closed) this.#closing.delete(key);
      });
    }
  }

  async #open(host: string, port: number, name: string): Promise<Listener> {
    const routes = new Map<string, CallbackRoute>();
    const log = { name: `${name} login callback`, ...(this.#logger ? { logger: this.#logger } : {}) };
    const handle = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
      const { path, query } = splitRequestTarget(req.url ?? '/');
      const reply = (r: CallbackReply): void => {
        res.writeHead(r.status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', connection: 'close' });
        res.end(callbackPage(r.title, r.body));
      };
      const state = query.get('state');
      const route = state === null ? undefined : routes.get(state);
      const isCallbackPath = route !== undefined ? route.path === path : [...routes.values()].some((r) => r.path === path);
      if (req.method !== 'GET' || !isCallbackPath) {
        reply({ status: 404, title: 'Not found', body: "This is credproxy's login callback; nothing else lives here." });
        return;
      }
      if (!route) {
        // Unknown or missing state: not any pending login's callback, and no login is touched by it.
        reply({
          status: 400,
          title: 'No pending login for this link',
          body: 'This callback does not belong to any pending credproxy login (unknown state): it may have finished, been cancelled or expired. Return to the terminal and start the login again if needed.',
        });
        return;
      }
      reply(await route.handle(query));
    };
    // node:http loads with the first loopback login, not with every proxy.
    const { createServer } = await import('node:http');
    const server = createServer(guardHttpHandler(handle, log));
    hardenHttpServer(server, { ...log, maxConnections: CALLBACK_MAX_CONNECTIONS, headersTimeoutMs: CALLBACK_HEADERS_TIMEOUT_MS });
    server.keepAliveTimeout = 1000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) =>
        reject(new ProxyError(ErrorCode.FLOW_INITIATION_FAILED, `${name}: cannot listen for the login callback on ${host}:${port} (${err.code ?? err.message}) — free the port or change callback_port`)),
      );
      server.listen(port, host, () => resolve());
    });
    return { server, port: (server.address() as AddressInfo).port, routes };
  }
}

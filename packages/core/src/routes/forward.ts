/**
 * The request handler of a client's HTTP listener (SPEC §6): authenticate the capability token,
 * find the route (path form `/ROUTE/REST` or proxy form `GET http://HOST/REST`), inject the
 * credential, stream both ways with backpressure, scrub the credential from the response, and
 * write one audit line per request. A listener serves one client; everything it needs about
 * that client arrives through RouteHandlerDeps.
 *
 * Order of checks, as in an agent: token (a wrong one: rate limit) → route grant → credential → upstream.
 */
import http, { type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { pipeline, Readable, Transform, type TransformCallback } from 'node:stream';
import { ErrorCode, ProxyError, type ErrorCode as ErrorCodeType } from '../protocol/errors.js';
import { systemClock, type Clock } from '../util/clock.js';
import { silentLogger, type Logger } from '../util/logger.js';
import { onClientError } from '../util/http-guard.js';
import { isLoopbackHost } from './address-guard.js';
import { clientResponseHeaders, rewriteLocation, upstreamRequestHeaders } from './http-headers.js';
import { describeProxyError, PROXY_ERROR_HEADER, sendProxyError } from './proxy-response.js';
import { tokenCandidates } from './request-auth.js';
import { formatCredential, isRouteName, type ResolvedRoute } from './route-config.js';
import { decodersFor, SecretScrubber } from './scrub.js';
import { toUpstreamError, UpstreamError, type AbortEmitter, type UpstreamClient, type UpstreamResponse } from './upstream.js';

/** A credential as the forwarder receives it: the bare secret (API key or access token). */
export interface RouteSecret {
  value: string;
}

export interface CredentialOptions {
  /** Aborted when the client goes away. */
  signal: AbortSignal;
  /** refreshCredential: the secret upstream just answered 401 to. */
  rejected?: string;
}

/** One line per request (SPEC §6): never a header value, never the query. */
export interface RouteAuditRecord {
  client: string;
  /** null when the request named no route of the client. */
  route: string | null;
  form: 'path' | 'proxy' | 'connect' | null;
  method: string;
  /** The upstream path without the query (path form: without the route prefix). */
  path: string;
  status: number;
  bytes_in: number;
  bytes_out: number;
  duration_ms: number;
  /** Set when the proxy answered itself. */
  error?: ErrorCodeType;
  /** The client went away before the response was complete. */
  aborted?: boolean;
}

export interface RouteHandlerDeps {
  /** The client this listener serves (audit lines name it). */
  client: string;
  /**
   * True when `token` is this client's capability token (compare in constant time). `req` is
   * the request it came with (its connection may have presented it before).
   */
  authenticate(token: string, req?: IncomingMessage): boolean;
  /** Seconds before this peer may try a token again, 0 when it may now. */
  tooManyFailures(req: IncomingMessage): number;
  /** A wrong token was presented. */
  recordFailure(req: IncomingMessage): void;
  /** The routes granted to this client now (asked on every request: a revoked grant ends at once). */
  routes(): ReadonlyMap<string, ResolvedRoute> | Promise<ReadonlyMap<string, ResolvedRoute>>;
  /**
   * Whether a route of this name exists at all: tells 403 (not granted) from 404 (no such route).
   * Without it, a route the client lacks is 404.
   */
  routeExists?(name: string): boolean;
  /**
   * The secret for a route: the API key, or an access token valid for at least 60 s. May throw a
   * ProxyError (REAUTH_REQUIRED, UPSTREAM_UNAVAILABLE, NOT_FOUND, …), which reaches the client.
   */
  credential(route: ResolvedRoute, options: CredentialOptions): RouteSecret | Promise<RouteSecret>;
  /** A fresh access token after upstream said 401 (account routes only; single-flight upstream of here). */
  refreshCredential(route: ResolvedRoute, options: CredentialOptions): Promise<RouteSecret>;
  upstream: UpstreamClient;
  audit(record: RouteAuditRecord): void;
  logger?: Logger;
  clock?: Clock;
  /** How clients reach this listener, for messages: `http://127.0.0.1:8787`. */
  listenerUrl?: string;
  /** Largest request body kept for the 401 retry of an account route (default 1 MiB). */
  maxRetryBodyBytes?: number;
  /**
   * Told the size of every body chunk relayed, either way (a long-running proxy bounds the
   * garbage a large stream leaves behind with it: packages/cli/src/stream-garbage.ts).
   */
  relayed?(bytes: number): void;
}

export const MAX_RETRY_BODY_BYTES = 1024 * 1024;

/** A node:http request handler that also answers CONNECT (node:http routes it to 'connect'). */
export interface RouteRequestHandler {
  (req: IncomingMessage, res: ServerResponse): void;
  onConnect(req: IncomingMessage, socket: Duplex, head: Buffer): void;
}

/**
 * A node:http server for a route listener, the handler mounted. Node's default 5-minute
 * requestTimeout would cut a long upload (SPEC §6: 1 GiB passes), so it is off; a request's
 * headers must still arrive within 15 s (clients are local programs that write a head at once),
 * checked every second: with node's default check every 30 s and a minute's timeout, a slowloris
 * held each of the listener's 256 connections for up to 90 s.
 */
export function createRouteServer(handler?: RouteRequestHandler): Server {
  const server = http.createServer({ requestTimeout: 0, headersTimeout: 15_000, connectionsCheckingInterval: 1_000, keepAliveTimeout: 5_000, noDelay: true });
  // Without one, the caller mounts it once the listener's address is known (port 0).
  if (handler) mountRouteHandler(server, handler);
  return server;
}

/** Attach a handler to a node:http server: requests, CONNECT, and malformed requests. */
export function mountRouteHandler(server: Server, handler: RouteRequestHandler): void {
  server.on('request', handler);
  server.on('connect', handler.onConnect);
  // 400 where nothing was answered yet, then the descriptor is released even if the peer never
  // closes its side (socket.end() alone kept it until the headers timeout).
  server.on('clientError', onClientError({ name: 'route listener' }));
}

/** Where a request is going: the route (if it names one of the client's) and the upstream path. */
interface Target {
  form: 'path' | 'proxy';
  /** The route name the request names (path form) — may not be granted. */
  name: string | null;
  route: ResolvedRoute | undefined;
  /** Path and query for upstream, starting with '/'. */
  path: string;
  /** Proxy form: the host asked for. */
  host?: string;
}

function splitPathForm(url: string): { name: string | null; rest: string } {
  // The first '/' or '?' after the leading '/' ends the route segment.
  let end = 1;
  while (end < url.length) {
    const c = url.charCodeAt(end);
    if (c === 0x2f || c === 0x3f) break;
    end++;
  }
  const segment = url.slice(1, end);
  let rest = url.slice(end);
  if (rest === '' || rest.charCodeAt(0) === 0x3f) rest = '/' + rest;
  let name: string | null = segment;
  if (segment.includes('%')) {
    try {
      name = decodeURIComponent(segment);
    } catch {
      name = null;
    }
  }
  return { name, rest };
}

function resolveTarget(url: string, routes: ReadonlyMap<string, ResolvedRoute>): Target | ProxyError {
  if (url.startsWith('/')) {
    const { name, rest } = splitPathForm(url);
    const route = name !== null && isRouteName(name) ? routes.get(name) : undefined;
    return { form: 'path', name, route, path: rest };
  }
  const m = /^(https?):\/\/([^/?#]*)([^#]*)/i.exec(url);
  if (!m) {
    return new ProxyError(ErrorCode.INVALID_REQUEST, 'the request target must be /ROUTE/PATH (path form) or http://HOST/PATH (proxy form)');
  }
  let host: string;
  try {
    const parsed = new URL(`http://${m[2]!}`);
    if (parsed.username !== '' || parsed.password !== '') throw new Error('userinfo');
    host = parsed.host;
  } catch {
    return new ProxyError(ErrorCode.INVALID_REQUEST, 'the request URL has no valid host');
  }
  let path = m[3]!;
  if (path === '' || path.startsWith('?')) path = '/' + path;
  for (const route of routes.values()) {
    if (route.upstream.host === host) return { form: 'proxy', name: route.name, route, path, host };
  }
  // An HTTP_PROXY client sends even its requests to the listener itself in absolute form: a
  // loopback host no route names, followed by /ROUTE/, is the path form.
  if (isLoopbackHost(new URL(`http://${host}`).hostname)) {
    const { name, rest } = splitPathForm(path);
    const route = name !== null && isRouteName(name) ? routes.get(name) : undefined;
    if (route) return { form: 'path', name, route, path: rest };
  }
  return { form: 'proxy', name: null, route: undefined, path, host };
}

/**
 * Fires when the client goes away before its response is complete. undici listens to it as to
 * an AbortSignal ('abort'); a list of listeners costs less per request than an AbortController
 * or a node EventEmitter, so the controller is made only when something asks for `signal` (an
 * account's token refresh).
 */
class ClientGone implements AbortEmitter {
  aborted = false;
  #listeners: Array<() => void> | undefined;
  #controller: AbortController | undefined;

  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController();
      if (this.aborted) this.#controller.abort();
    }
    return this.#controller.signal;
  }

  on(_event: 'abort', listener: () => void): this {
    (this.#listeners ??= []).push(listener);
    return this;
  }

  /** 'abort' fires at most once, so every listener is a once-listener. */
  once(event: 'abort', listener: () => void): this {
    return this.on(event, listener);
  }

  removeListener(_event: 'abort', listener: () => void): this {
    const at = this.#listeners?.indexOf(listener) ?? -1;
    if (at !== -1) this.#listeners!.splice(at, 1);
    return this;
  }

  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    this.#controller?.abort();
    const listeners = this.#listeners;
    this.#listeners = undefined;
    for (const listener of listeners ?? []) {
      try {
        listener();
      } catch {
        // One listener's failure must not keep the others from stopping their work.
      }
    }
  }
}

/** Counts the bytes that pass. */
class ByteCounter extends Transform {
  bytes = 0;
  readonly #relayed: ((bytes: number) => void) | undefined;
  constructor(relayed: ((bytes: number) => void) | undefined) {
    super();
    this.#relayed = relayed;
  }
  override _transform(chunk: Buffer, _e: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    this.#relayed?.(chunk.length);
    callback(null, chunk);
  }
}

type RequestBody =
  | { kind: 'none' }
  | { kind: 'kept'; buffer: Buffer }
  | { kind: 'stream'; stream: Readable; counter: ByteCounter };

function requestHasBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  if (length !== undefined) return length.trim() !== '0';
  return req.headers['transfer-encoding'] !== undefined;
}

/**
 * Read the body up to `limit` bytes. Small enough: the whole body, kept for a retry. Larger: a
 * stream of what was read followed by the rest, read on demand (never the whole body in memory).
 */
async function readBodyUpTo(req: IncomingMessage, limit: number, relayed: ((bytes: number) => void) | undefined): Promise<RequestBody> {
  const it = req[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const chunks: Buffer[] = [];
  let size = 0;
  for (;;) {
    const next = await it.next();
    if (next.done) return { kind: 'kept', buffer: Buffer.concat(chunks, size) };
    chunks.push(next.value);
    size += next.value.length;
    if (size > limit) {
      const source = Readable.from(
        (async function* () {
          yield* chunks.splice(0);
          for (let n = await it.next(); !n.done; n = await it.next()) yield n.value;
        })(),
        { objectMode: false },
      );
      const counter = new ByteCounter(relayed);
      pipeline(source, counter, () => undefined);
      return { kind: 'stream', stream: counter, counter };
    }
  }
}

function streamBody(req: IncomingMessage, relayed: ((bytes: number) => void) | undefined): RequestBody {
  const counter = new ByteCounter(relayed);
  pipeline(req, counter, () => undefined);
  return { kind: 'stream', stream: counter, counter };
}

/**
 * Drop an upstream body unread. undici's body emits an abort error when destroyed before its end,
 * and a stream's 'error' with no listener is an uncaught exception: it would end the proxy.
 */
function discard(body: Readable): void {
  body.on('error', ignore);
  body.destroy();
}

const ignore = (): void => undefined;

function bodyBytes(body: RequestBody): number {
  return body.kind === 'kept' ? body.buffer.length : body.kind === 'stream' ? body.counter.bytes : 0;
}

/** Per-request state: what the audit line says. */
class Exchange {
  readonly started: number;
  route: string | null = null;
  form: RouteAuditRecord['form'] = null;
  path = '/';
  error: ErrorCodeType | undefined;
  body: RequestBody = { kind: 'none' };
  /** The response's scrub stream, which counts what reached the client. */
  out: { bytesOut: number } | undefined;
  scrubber: SecretScrubber | undefined;
  /** Set once the request goes upstream: fired when the client leaves before the end. */
  gone: ClientGone | undefined;
  /** The response relay's part when the client's response closes (finished or not). */
  onClose: (() => void) | undefined;

  constructor(clock: Clock) {
    this.started = clock.now();
  }
}

function pathWithoutQuery(path: string): string {
  const q = path.search(/[?#]/);
  const bare = q === -1 ? path : path.slice(0, q);
  return bare.length > 1024 ? bare.slice(0, 1024) + '…' : bare;
}

function connectMessage(listenerUrl: string): string {
  return (
    `CONNECT is not supported: credproxy cannot add a credential inside a TLS tunnel it cannot read. ` +
    `Use the path form with a base URL — ${listenerUrl}/ROUTE/PATH (for example ANTHROPIC_BASE_URL=${listenerUrl}/anthropic) — ` +
    `or the proxy form with plain http:// URLs (HTTP_PROXY=http://x:TOKEN@${listenerUrl.replace(/^http:\/\//, '')}, then http://api.github.com/PATH): ` +
    `the proxy sends them upstream over https.`
  );
}

export function createRouteHandler(deps: RouteHandlerDeps): RouteRequestHandler {
  const clock = deps.clock ?? systemClock;
  const logger = deps.logger ?? silentLogger;
  const maxRetryBody = deps.maxRetryBodyBytes ?? MAX_RETRY_BODY_BYTES;
  const listenerUrl = deps.listenerUrl ?? 'http://LISTENER';
  const relayed = deps.relayed;
  // What a secret becomes for a route — its header value and its scrubber (every encoded form:
  // building one was the largest cost of a forwarded request) — kept with the route. The same
  // secret string arrives with request after request, and === on it is a pointer compare.
  const prepared = new WeakMap<ResolvedRoute, { secret: string; value: string; scrubber: SecretScrubber }>();
  const prepare = (route: ResolvedRoute, secret: string): { value: string; scrubber: SecretScrubber } => {
    const last = prepared.get(route);
    if (last !== undefined && last.secret === secret) return last;
    const value = formatCredential(route.format, secret);
    const entry = { secret, value, scrubber: SecretScrubber.forCredential(secret, value) };
    prepared.set(route, entry);
    return entry;
  };

  const writeAudit = (req: IncomingMessage, res: ServerResponse, x: Exchange): void => {
    try {
      const record: RouteAuditRecord = {
        client: deps.client,
        route: x.route,
        form: x.form,
        method: req.method ?? '',
        path: pathWithoutQuery(x.path),
        status: res.statusCode,
        bytes_in: bodyBytes(x.body),
        bytes_out: x.out?.bytesOut ?? 0,
        duration_ms: clock.now() - x.started,
      };
      if (x.error !== undefined) record.error = x.error;
      if (!res.writableFinished) record.aborted = true;
      deps.audit(record);
    } catch (err) {
      logger.log('error', 'route audit failed', { error: (err as Error)?.name ?? 'unknown' });
    }
  };

  const fail = (req: IncomingMessage, res: ServerResponse, x: Exchange, err: unknown): void => {
    const d = describeProxyError(err);
    x.error = d.code;
    if (d.code === ErrorCode.INTERNAL_ERROR) {
      const message = err instanceof Error ? err.message : String(err);
      logger.log('error', 'route request failed', {
        client: deps.client,
        route: x.route ?? undefined,
        error: err instanceof Error ? err.name : typeof err,
        message: x.scrubber ? x.scrubber.scrubText(message) : message,
      });
    } else if (d.code === ErrorCode.UPSTREAM_UNAVAILABLE) {
      logger.log('warn', 'route upstream failed', {
        client: deps.client,
        route: x.route ?? undefined,
        status: d.status,
        message: x.scrubber ? x.scrubber.scrubText(d.message) : d.message,
      });
    }
    if (res.headersSent) {
      res.destroy();
      return;
    }
    // Messages that quote upstream must not carry the secret either.
    let safe = err;
    if (x.scrubber && err instanceof ProxyError) {
      const message = x.scrubber.scrubText(err.message);
      if (message !== err.message) {
        safe = err instanceof UpstreamError ? new UpstreamError(message, err.timeout) : new ProxyError(err.code, message, { retryAfter: err.retryAfter });
      }
    }
    sendProxyError(res, safe, req.complete);
  };

  const relay = async (res: ServerResponse, x: Exchange, route: ResolvedRoute, target: Target, up: UpstreamResponse, scrubber: SecretScrubber): Promise<void> => {
    if (res.destroyed) {
      // The client left while upstream answered: nobody to relay to.
      discard(up.body);
      return;
    }
    const headers = clientResponseHeaders(up.headers);
    const encoding = headers['content-encoding'];
    let decoders: Duplex[] = [];
    if (encoding !== undefined) {
      const chain = decodersFor(Array.isArray(encoding) ? encoding.join(',') : encoding);
      if (chain === undefined) {
        discard(up.body);
        throw new UpstreamError(`${route.upstream.origin} answered with content-encoding ${String(encoding).slice(0, 40)}, which credproxy cannot decode to scrub`, false);
      }
      decoders = chain;
      if (decoders.length > 0) {
        // Sent decoded: the scrubbed body is what the client gets, without a coding to undo.
        delete headers['content-encoding'];
        delete headers['content-length'];
      }
    }
    const location = headers.location;
    if (target.form === 'path' && typeof location === 'string') headers.location = rewriteLocation(location, route, target.path);
    const clean: Record<string, string | string[]> = Object.create(null) as Record<string, string | string[]>;
    for (const [name, value] of Object.entries(headers)) {
      if (scrubber.containsSecret(name)) continue;
      clean[name] = Array.isArray(value) ? value.map((v) => scrubber.scrubText(v)) : scrubber.scrubText(value);
    }
    try {
      res.writeHead(up.statusCode, clean);
    } catch (err) {
      discard(up.body);
      for (const name of res.getHeaderNames()) res.removeHeader(name);
      throw new UpstreamError(`${route.upstream.origin} answered with a status or header that cannot be passed on`, false, err);
    }
    // With nothing of the body read yet (an SSE stream, a slow answer), the headers go out now: the
    // client sees the response before the first event. With body bytes already here (most small
    // answers arrive with their headers), they leave together with the first of them, in one
    // write — one syscall and one segment less for both sides.
    if (decoders.length > 0 || up.body.readableLength === 0) res.flushHeaders();
    const body = scrubber.createBody();
    x.out = body;
    // The body is read with 'data' events and written to the client by hand, not piped through
    // a Transform: per response that saves a stream, two pipes and their listeners, which were
    // a measurable part of what a forwarded request costs. Backpressure: a write the client's
    // socket cannot take pauses the source until it drains. Compressed bodies are decoded by
    // zlib streams piped in front of it.
    let source: Readable = up.body;
    for (const stage of decoders) source = source.pipe(stage);
    await new Promise<void>((resolve) => {
      let settled = false;
      let full = false;
      const teardown = (): void => {
        up.body.destroy();
        for (const stage of decoders) stage.destroy();
      };
      const settle = (err?: Error): void => {
        if (settled) return;
        settled = true;
        if (err !== undefined) {
          if (!res.destroyed) {
            // Headers are out: all that is left is to cut the response short.
            const e = toUpstreamError(err, route.upstream, { headersTimeoutMs: 0 });
            logger.log('warn', 'route response cut short', { client: deps.client, route: route.name, message: scrubber.scrubText(e.message) });
            x.error = ErrorCode.UPSTREAM_UNAVAILABLE;
            res.destroy();
          }
          teardown();
        }
        resolve();
      };
      const emit = (out: Buffer): void => {
        relayed?.(out.length);
        if (!res.write(out)) full = true;
      };
      const drained = (): void => {
        if (!settled) source.resume();
      };
      // settle() runs once however often it is called: plain listeners, no once-wrappers.
      up.body.on('error', settle);
      for (const stage of decoders) stage.on('error', settle);
      res.on('error', () => undefined);
      x.onClose = () => {
        if (settled) return;
        if (res.writableFinished) {
          settle();
          return;
        }
        // The client went away before the end: stop reading upstream (frees the connection).
        settled = true;
        teardown();
        resolve();
      };
      // Thrown here, an error would reach no stream's error handling: it ends this response only.
      source.on('data', (chunk: Buffer) => {
        if (settled) return;
        try {
          body.write(chunk, emit);
        } catch (err) {
          settle(err instanceof Error ? err : new Error(String(err)));
          return;
        }
        if (full) {
          full = false;
          source.pause();
          res.once('drain', drained);
        }
      });
      source.on('end', () => {
        if (settled) return;
        try {
          body.end(emit);
          res.end();
        } catch (err) {
          settle(err instanceof Error ? err : new Error(String(err)));
        }
      });
    });
  };

  const forward = async (req: IncomingMessage, res: ServerResponse, x: Exchange, route: ResolvedRoute, target: Target): Promise<void> => {
    const gone = new ClientGone();
    x.gone = gone;
    const options: CredentialOptions = {
      get signal() {
        return gone.signal;
      },
    };

    // Most answers come from memory: no await (a microtask and a promise) when nothing waits.
    const pending = deps.credential(route, options);
    let secret = pending instanceof Promise ? await pending : pending;
    const { value, scrubber: first } = prepare(route, secret.value);
    let scrubber = first;
    x.scrubber = scrubber;
    const headers = upstreamRequestHeaders(req, route, value);
    // The credential is the last pair; a retry puts the fresh one there.
    const credentialAt = headers.length - 1;

    const retryable = route.credential.kind === 'account';
    if (requestHasBody(req)) x.body = retryable ? await readBodyUpTo(req, maxRetryBody, deps.relayed) : streamBody(req, deps.relayed);
    const body = x.body;
    if (body.kind === 'kept') headers.push('content-length', String(body.buffer.length));
    else if (body.kind === 'stream' && req.headers['content-length'] !== undefined) headers.push('content-length', req.headers['content-length']);
    const sendOnce = (): Promise<UpstreamResponse> =>
      deps.upstream.request(route.upstream, {
        method: req.method ?? 'GET',
        path: target.path,
        headers,
        body: body.kind === 'kept' ? body.buffer : body.kind === 'stream' ? body.stream : null,
        signal: gone,
      });

    let up = await sendOnce();
    if (up.statusCode === 401 && retryable && body.kind !== 'stream') {
      await up.body.dump({ limit: 64 * 1024 }).catch(() => undefined);
      const old = secret.value;
      secret = await deps.refreshCredential(route, { signal: gone.signal, rejected: old });
      const fresh = prepare(route, secret.value);
      // Both: the old value may still be echoed by a confused upstream.
      scrubber = fresh.scrubber.with(first);
      x.scrubber = scrubber;
      // undici made the first request's head from the list when it was sent: this one is new.
      headers[credentialAt] = fresh.value;
      up = await sendOnce();
    }
    await relay(res, x, route, target, up, scrubber);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse, x: Exchange): Promise<void> => {
    if (req.method === 'CONNECT') {
      x.form = 'connect';
      throw new ProxyError(ErrorCode.FORBIDDEN, connectMessage(listenerUrl));
    }
    const routes = deps.routes();
    const granted = routes instanceof Promise ? await routes : routes;
    const target = resolveTarget(req.url ?? '', granted);
    if (target instanceof ProxyError) throw target;
    x.form = target.form;
    x.path = target.path;

    // A route the client lacks still names its key header the way the client's routes do.
    const candidates = target.route
      ? tokenCandidates(req.headers, target.route)
      : [...new Set([undefined, ...granted.values()].flatMap((r) => tokenCandidates(req.headers, r)))].slice(0, 16);
    let authenticated = false;
    for (const token of candidates) if (deps.authenticate(token, req)) authenticated = true;
    // As for handshakes: the token first, and a right one always passes — peers that share a
    // key (every TCP client is 127.0.0.1) are not locked out by one guesser among them.
    if (!authenticated) {
      const wait = deps.tooManyFailures(req);
      if (wait > 0) {
        throw new ProxyError(ErrorCode.RATE_LIMITED, `too many wrong capability tokens — try again in ${wait} s`, { retryAfter: wait });
      }
      if (candidates.length > 0) deps.recordFailure(req);
      throw new ProxyError(
        ErrorCode.UNAUTHORIZED,
        `a capability token of client ${deps.client} is required: send it as the proxy password (HTTP_PROXY=http://x:TOKEN@HOST:PORT), ` +
          `as Proxy-Authorization: Bearer TOKEN, or as the route's API key`,
      );
    }

    if (!target.route) {
      if (target.form === 'proxy') {
        const hosts = [...granted.values()].map((r) => r.upstream.host);
        throw new ProxyError(
          ErrorCode.FORBIDDEN,
          `${target.host ?? 'this host'} is not among the routes of client ${deps.client}` +
            (hosts.length > 0 ? ` (its hosts: ${[...new Set(hosts)].join(', ')})` : ' (it has no routes)') +
            ` — the owner grants a route with \`credproxy client add ${deps.client} --route NAME\``,
        );
      }
      const name = target.name ?? '';
      if (isRouteName(name) && deps.routeExists?.(name)) {
        x.route = name;
        throw new ProxyError(ErrorCode.FORBIDDEN, `client ${deps.client} is not granted route ${name} — the owner grants it with \`credproxy client add ${deps.client} --route ${name}\``);
      }
      throw new ProxyError(
        ErrorCode.NOT_FOUND,
        `no route ${JSON.stringify(name.slice(0, 64))} — address a route as ${listenerUrl}/ROUTE/PATH; \`credproxy route list\` shows the routes`,
      );
    }
    x.route = target.route.name;
    await forward(req, res, x, target.route, target);
  };

  const handler = ((req: IncomingMessage, res: ServerResponse): void => {
    let x: Exchange;
    try {
      x = new Exchange(clock);
      const exchange = x;
      // The one listener of the response's end: the audit line, then whatever is running for it.
      res.once('close', () => {
        writeAudit(req, res, exchange);
        if (!res.writableFinished) exchange.gone?.abort();
        exchange.onClose?.();
      });
    } catch (err) {
      logger.log('error', 'route handler setup failed', { error: (err as Error)?.name ?? 'unknown' });
      res.destroy();
      return;
    }
    handle(req, res, x).catch((err: unknown) => {
      try {
        if (res.destroyed && !res.headersSent) {
          // The client went away before the answer: nobody to tell.
          x.error ??= ErrorCode.CANCELLED;
          return;
        }
        fail(req, res, x, err);
      } catch {
        res.destroy();
      }
    });
  }) as RouteRequestHandler;

  handler.onConnect = (req: IncomingMessage, socket: Duplex): void => {
    try {
      socket.on('error', () => undefined);
      const message = connectMessage(listenerUrl);
      const body = JSON.stringify({ error: { code: ErrorCode.FORBIDDEN, message } });
      socket.end(
        `HTTP/1.1 403 Forbidden\r\ncontent-type: application/json; charset=utf-8\r\n${PROXY_ERROR_HEADER}: ${ErrorCode.FORBIDDEN}\r\n` +
          `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
      );
      deps.audit({
        client: deps.client,
        route: null,
        form: 'connect',
        method: 'CONNECT',
        path: pathWithoutQuery(req.url ?? ''),
        status: 403,
        bytes_in: 0,
        bytes_out: 0,
        duration_ms: 0,
        error: ErrorCode.FORBIDDEN,
      });
    } catch (err) {
      logger.log('error', 'route CONNECT refusal failed', { error: (err as Error)?.name ?? 'unknown' });
      socket.destroy();
    }
  };

  return handler;
}

/**
 * The upstream side of routes: one undici Pool per upstream origin (keep-alive), a connector
 * that refuses non-public addresses reached through a name (SPEC §6, no DNS rebinding), no
 * redirects followed, and timeouts that tell a slow upstream (504) from a broken one (502).
 *
 * Trust: Node's default CAs plus NODE_EXTRA_CA_CERTS of the proxy process. `tls.ca` replaces
 * them and exists for in-process tests.
 */
import dns from 'node:dns';
import type { EventEmitter } from 'node:events';
import type net from 'node:net';
import type { Readable } from 'node:stream';
import type { buildConnector, Dispatcher, Pool } from 'undici';
import { ErrorCode, ProxyError } from '../protocol/errors.js';
import { refusedAddressReason } from './address-guard.js';
import type { RouteUpstream } from './route-config.js';

export type LookupFunction = net.LookupFunction;

export interface UpstreamPoolOptions {
  /** Time to the response headers; long by default, since a model may think for minutes. */
  headersTimeoutMs?: number;
  /** Longest silence between two body chunks (an SSE stream may pause for a while). */
  bodyTimeoutMs?: number;
  connectTimeoutMs?: number;
  keepAliveTimeoutMs?: number;
  /**
   * Connections per origin (default 1024). A streamed response holds its connection for as long as
   * it runs, so this is how many requests to one upstream run at once: with 32, the 33rd
   * concurrent SSE stream — and every other request to that API — waited for one of them to end.
   */
  connectionsPerOrigin?: number;
  /** Replaces Node's CA list: for tests with a throwaway CA. Production leaves it unset. */
  tls?: { ca?: string | Buffer | Array<string | Buffer> };
  /**
   * Name resolution before the address check (default dns.lookup). Tests map a name to an
   * address with it; whatever it answers is checked the same way.
   */
  resolve?: LookupFunction;
}

export const DEFAULT_HEADERS_TIMEOUT_MS = 10 * 60_000;
export const DEFAULT_BODY_TIMEOUT_MS = 5 * 60_000;
export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;

/**
 * What cancels an upstream request: an AbortSignal, or an emitter of 'abort' that says whether it
 * has fired — undici takes either, and calls only `on`/`once`/`removeListener` of an emitter. A
 * few fields per request cost less than an AbortController or a node EventEmitter.
 */
export interface AbortEmitter {
  readonly aborted: boolean;
  on(event: 'abort', listener: () => void): unknown;
  once(event: 'abort', listener: () => void): unknown;
  removeListener(event: 'abort', listener: () => void): unknown;
}

export type Cancellation = AbortSignal | AbortEmitter;

export interface UpstreamRequest {
  method: string;
  /** Path and query, starting with `/`. */
  path: string;
  /** Name/value pairs, flat: `['host', 'api.example.com', 'x-api-key', '…']`. */
  headers: string[];
  /** null: no body. A stream is consumed with backpressure. */
  body: Readable | Buffer | null;
  signal: Cancellation;
}

export interface UpstreamResponse {
  statusCode: number;
  /** Lower-case names, latin-1 values, repeated headers as arrays. */
  headers: Record<string, string | string[] | undefined>;
  body: Readable & { dump(opts?: { limit: number }): Promise<void> };
}

/** The seam the forwarder uses: tests and other transports can stand in for the pool. */
export interface UpstreamClient {
  request(upstream: RouteUpstream, request: UpstreamRequest): Promise<UpstreamResponse>;
  /** Close the connections to an origin no route uses any more. */
  forget?(origin: string): Promise<void>;
}

/** An upstream failure as the proxy reports it: UPSTREAM_UNAVAILABLE, 504 when it was a timeout. */
export class UpstreamError extends ProxyError {
  readonly timeout: boolean;

  constructor(message: string, timeout: boolean, cause?: unknown) {
    super(ErrorCode.UPSTREAM_UNAVAILABLE, message, { cause });
    this.name = 'UpstreamError';
    this.timeout = timeout;
  }
}

/** A connection refused by the address rule; its message names the rule and the fix. */
export class BlockedAddressError extends Error {
  readonly code = 'ECREDPROXY_BLOCKED_ADDRESS';

  constructor(message: string) {
    super(message);
    this.name = 'BlockedAddressError';
  }
}

/**
 * A lookup that answers only addresses the host's policy allows (see address-guard.ts). Node
 * connects to exactly what the lookup answers, so the checked address is the one connected to.
 */
export function guardedLookup(resolve: LookupFunction = dns.lookup as LookupFunction): LookupFunction {
  return (hostname, options, callback) => {
    resolve(hostname, { ...options, all: true }, (err, result) => {
      if (err) return callback(err, '', 0);
      const addresses = (Array.isArray(result) ? result : [{ address: result, family: 0 }]) as dns.LookupAddress[];
      if (addresses.length === 0) return callback(Object.assign(new Error(`${hostname} has no address`), { code: 'ENOTFOUND' }), '', 0);
      for (const a of addresses) {
        const reason = refusedAddressReason(hostname, a.address);
        if (reason !== undefined) return callback(new BlockedAddressError(reason), '', 0);
      }
      if (options.all) callback(null, addresses);
      else callback(null, addresses[0]!.address, addresses[0]!.family);
    });
  };
}

function errorCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

const TIMEOUT_CODES: ReadonlySet<string> = new Set([
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'ETIMEDOUT',
]);

/** Turn whatever undici or the socket threw into an UpstreamError naming the upstream. */
export function toUpstreamError(err: unknown, upstream: RouteUpstream, options: { headersTimeoutMs: number }): UpstreamError {
  if (err instanceof UpstreamError) return err;
  // The blocked-address error may arrive as the cause of a socket error.
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 4; e = e.cause, depth++) {
    if (e instanceof BlockedAddressError) return new UpstreamError(e.message, false, err);
  }
  const code = errorCode(err) ?? 'unknown';
  if (code === 'UND_ERR_HEADERS_TIMEOUT') {
    return new UpstreamError(`${upstream.origin} sent no response headers within ${Math.round(options.headersTimeoutMs / 1000)} s`, true, err);
  }
  if (TIMEOUT_CODES.has(code)) return new UpstreamError(`${upstream.origin} timed out (${code})`, true, err);
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') {
    return new UpstreamError(`cannot resolve ${upstream.hostname} (${code}) — check the route's upstream and this host's DNS`, false, err);
  }
  if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS/.test(code)) {
    return new UpstreamError(
      `TLS with ${upstream.origin} failed (${code}) — a private CA goes in NODE_EXTRA_CA_CERTS of the credproxy process`,
      false,
      err,
    );
  }
  return new UpstreamError(`cannot reach ${upstream.origin} (${code})`, false, err);
}

type Undici = typeof import('undici');

export class UpstreamPool implements UpstreamClient {
  readonly #pools = new Map<string, Pool>();
  readonly #options: UpstreamPoolOptions;
  readonly #headersTimeoutMs: number;
  readonly #bodyTimeoutMs: number;
  readonly #keepAliveTimeoutMs: number;
  readonly #connections: number;
  /**
   * undici, loaded at the first forwarded request: it is a fifth of an idle proxy's memory, and
   * most proxies never forward a request.
   */
  #undici: Promise<Undici> | undefined;
  #connect: buildConnector.connector | undefined;
  #closed = false;

  constructor(options: UpstreamPoolOptions = {}) {
    this.#options = options;
    this.#headersTimeoutMs = options.headersTimeoutMs ?? DEFAULT_HEADERS_TIMEOUT_MS;
    this.#bodyTimeoutMs = options.bodyTimeoutMs ?? DEFAULT_BODY_TIMEOUT_MS;
    this.#keepAliveTimeoutMs = options.keepAliveTimeoutMs ?? 30_000;
    this.#connections = options.connectionsPerOrigin ?? 1024;
  }

  #connector(undici: Undici): buildConnector.connector {
    if (this.#connect !== undefined) return this.#connect;
    const options = this.#options;
    const base = undici.buildConnector({
      ...(options.tls?.ca !== undefined ? { ca: options.tls.ca } : {}),
      lookup: guardedLookup(options.resolve),
      timeout: options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
    });
    // Belt and braces: the socket's peer is checked again once connected.
    this.#connect = (opts, callback) => {
      base(opts, (err, socket) => {
        if (err !== null) return callback(err, null);
        const remote = socket.remoteAddress;
        const reason = remote === undefined ? `no peer address for ${opts.hostname}` : refusedAddressReason(opts.hostname, remote);
        if (reason !== undefined) {
          socket.destroy();
          return callback(new BlockedAddressError(reason), null);
        }
        callback(null, socket);
      });
    };
    return this.#connect;
  }

  async #newPool(upstream: RouteUpstream): Promise<Pool> {
    this.#undici ??= import('undici');
    const undici = await this.#undici;
    if (this.#closed) throw new UpstreamError('credproxy is shutting down', false);
    // Another request may have made it meanwhile.
    let pool = this.#pools.get(upstream.origin);
    if (!pool) {
      pool = new undici.Pool(upstream.origin, {
        connect: this.#connector(undici),
        connections: this.#connections,
        headersTimeout: this.#headersTimeoutMs,
        bodyTimeout: this.#bodyTimeoutMs,
        keepAliveTimeout: this.#keepAliveTimeoutMs,
      });
      this.#pools.set(upstream.origin, pool);
    }
    return pool;
  }

  async request(upstream: RouteUpstream, request: UpstreamRequest): Promise<UpstreamResponse> {
    if (this.#closed) throw new UpstreamError('credproxy is shutting down', false);
    const options: Dispatcher.RequestOptions = {
      path: request.path,
      method: request.method as Dispatcher.HttpMethod,
      headers: request.headers,
      body: request.body,
      // undici checks an emitter by its methods (`on`, `once`, `removeListener`) only.
      signal: request.signal as AbortSignal | EventEmitter,
    };
    try {
      const pool = this.#pools.get(upstream.origin) ?? (await this.#newPool(upstream));
      const res = await pool.request(options);
      return { statusCode: res.statusCode, headers: res.headers, body: res.body };
    } catch (err) {
      if (request.signal.aborted) throw err;
      throw toUpstreamError(err, upstream, { headersTimeoutMs: this.#headersTimeoutMs });
    }
  }

  /** Close the pool of an origin no route uses any more. */
  async forget(origin: string): Promise<void> {
    const pool = this.#pools.get(origin);
    if (!pool) return;
    this.#pools.delete(origin);
    await pool.close().catch(() => undefined);
  }

  /** Close every connection: graceful for idle ones, in-flight requests are cut. */
  async close(): Promise<void> {
    this.#closed = true;
    const pools = [...this.#pools.values()];
    this.#pools.clear();
    await Promise.all(pools.map((p) => p.destroy().catch(() => undefined)));
  }

  get headersTimeoutMs(): number {
    return this.#headersTimeoutMs;
  }
}

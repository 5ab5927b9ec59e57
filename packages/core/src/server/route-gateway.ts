/**
 * What a client's HTTP listener needs from the proxy (routes/forward.ts RouteHandlerDeps): the
 * client's capability token checked against the registry, wrong tokens rate limited like
 * handshakes, the routes the config has and the client was granted, the credential from the
 * API-key service or the account service (never a login), one audit line per request, and one
 * upstream pool shared by every listener of the proxy.
 */
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { AuditEvent, AuditSink } from '../clients/audit-log.js';
import { FailureRateLimiter } from '../clients/rate-limit.js';
import type { ClientRecord, ClientRegistry } from '../clients/registry.js';
import { ErrorCode, ProxyError } from '../protocol/errors.js';
import { DEFAULT_MIN_VALID_SECONDS } from '../protocol/limits.js';
import {
  createRouteHandler,
  type CredentialOptions,
  type ResolvedRoute,
  type RouteAuditRecord,
  type RouteRequestHandler,
  type RouteSecret,
  type UpstreamClient,
} from '../routes/index.js';
import type { RouteCatalog } from '../routes/route-catalog.js';
import { type AccountService, MIN_REFRESH_INTERVAL_MS, notLoggedIn } from '../store/accounts.js';
import type { ApiKeyService } from '../store/api-keys.js';
import type { AccountKey } from '../store/token-store.js';
import type { Clock } from '../util/clock.js';
import type { Logger } from '../util/logger.js';
import { HANDSHAKE_FAILURES_PER_MINUTE } from './handshake-gate.js';

export interface RouteGatewayOptions {
  clients: ClientRegistry;
  accounts: AccountService;
  apiKeys: ApiKeyService;
  catalog: RouteCatalog;
  upstream: UpstreamClient;
  audit: AuditSink;
  clock: Clock;
  logger: Logger;
  /** Routes granted beyond the registration (approved access requests, SPEC §9), asked per request. */
  temporaryGrant?: (client: ClientRecord, route: string) => boolean;
  /** Told the size of every body chunk a route relays (RouteHandlerDeps.relayed). */
  relayed?: (bytes: number) => void;
}

/** Seconds of validity an account route's token has at least (SPEC §6, as get_token's default). */
export const ROUTE_MIN_VALID_SECONDS = DEFAULT_MIN_VALID_SECONDS;

/** What a route line adds to an op line: names and numbers, never a header value or the query. */
interface RouteAuditFields {
  route?: string;
  form?: string;
  method: string;
  path: string;
  status: number;
  bytes_in: number;
  bytes_out: number;
  aborted?: boolean;
}

/** The line of one forwarded request: an op line (`"op": "http"`) with the request's fields. */
function auditLine(record: RouteAuditRecord): AuditEvent & RouteAuditFields {
  const line: AuditEvent & RouteAuditFields = {
    event: 'op',
    client: record.client,
    op: 'http',
    outcome: record.error ?? 'ok',
    method: record.method,
    path: record.path,
    status: record.status,
    bytes_in: record.bytes_in,
    bytes_out: record.bytes_out,
    ms: record.duration_ms,
  };
  if (record.route !== null) line.route = record.route;
  if (record.form !== null) line.form = record.form;
  if (record.aborted) line.aborted = true;
  return line;
}

export class RouteGateway {
  readonly #o: RouteGatewayOptions;
  /** Wrong capability tokens on HTTP listeners, per peer: the handshakes' rule (10 a minute). */
  readonly #failures: FailureRateLimiter;
  /** The route table last seen, and the origins it used: a pool no route uses any more is closed. */
  #seenRoutes: ReadonlyMap<string, ResolvedRoute> | undefined;
  #origins = new Set<string>();
  /** The capability token last verified on a connection, and the record it matched. */
  readonly #verified = new WeakMap<Socket, { token: string; record: ClientRecord }>();
  /** When a 401 last forced a refresh, per account. */
  readonly #forced = new Map<string, number>();
  /** A registration's routes in the route table they were taken from (both immutable: kept by identity). */
  readonly #registered = new WeakMap<ClientRecord, { all: ReadonlyMap<string, ResolvedRoute>; routes: ReadonlyMap<string, ResolvedRoute> }>();

  constructor(options: RouteGatewayOptions) {
    this.#o = options;
    this.#failures = new FailureRateLimiter(options.clock, { maxFailures: HANDSHAKE_FAILURES_PER_MINUTE, windowMs: 60_000 });
  }

  /** The routes `client` may call now: configured ∩ granted, none once it is removed or expired. */
  routesOf(client: string): ReadonlyMap<string, ResolvedRoute> | Promise<ReadonlyMap<string, ResolvedRoute>> {
    const record = this.#o.clients.get(client);
    if (!record || this.#o.clients.isExpired(record)) return new Map();
    if ((record.routes ?? []).length === 0 && !this.#o.temporaryGrant) return new Map();
    // Without waiting when the config file is known unchanged (most requests).
    const all = this.#o.catalog.current();
    return all !== undefined ? this.#granted(record, all) : this.#o.catalog.forRequests().then((a) => this.#granted(record, a));
  }

  #granted(record: ClientRecord, all: ReadonlyMap<string, ResolvedRoute>): ReadonlyMap<string, ResolvedRoute> {
    if (all !== this.#seenRoutes) this.#routesChanged(all);
    let kept = this.#registered.get(record);
    if (kept === undefined || kept.all !== all) {
      const routes = new Map<string, ResolvedRoute>();
      for (const name of record.routes ?? []) {
        const route = all.get(name);
        if (route) routes.set(name, route);
      }
      kept = { all, routes };
      this.#registered.set(record, kept);
    }
    // Temporary grants are asked on every request: one ends the moment it expires or is revoked.
    const temporary = this.#o.temporaryGrant;
    if (!temporary || kept.routes.size === all.size) return kept.routes;
    let out: Map<string, ResolvedRoute> | undefined;
    for (const [name, route] of all) {
      if (!kept.routes.has(name) && temporary(record, name)) (out ??= new Map(kept.routes)).set(name, route);
    }
    return out ?? kept.routes;
  }

  /** The secret for a request: from memory without waiting when it is there (most requests). */
  #credential(route: ResolvedRoute, options: CredentialOptions): RouteSecret | Promise<RouteSecret> {
    const ref = route.credential;
    if (ref.kind === 'api_key') {
      const answer = this.#o.apiKeys.cached(ref.name);
      if (answer) return { value: answer.key };
    } else {
      const view = this.#o.accounts.cachedToken({ provider: ref.provider, bucket: ref.bucket }, ROUTE_MIN_VALID_SECONDS);
      if (view) return { value: view.access_token };
    }
    return this.#secret(route, options, false);
  }

  async #secret(route: ResolvedRoute, options: CredentialOptions, refresh: boolean): Promise<RouteSecret> {
    const ref = route.credential;
    if (ref.kind === 'api_key') {
      const answer = this.#o.apiKeys.cached(ref.name) ?? (await this.#o.apiKeys.load(ref.name));
      if (answer === null) {
        throw new ProxyError(ErrorCode.NOT_FOUND, `route ${route.name} uses API key ${ref.name}, which is not stored — the owner stores it with \`credproxy key set ${ref.name}\``);
      }
      return { value: answer.key };
    }
    const key: AccountKey = { provider: ref.provider, bucket: ref.bucket };
    try {
      if (refresh) {
        let record = await this.#o.accounts.refresh(key, options.signal);
        // Refreshed moments ago (the account service's rate bound) and still the token upstream
        // refused: one forced refresh — but at most one per account per interval, so a sandbox
        // that provokes 401s cannot make the proxy rotate the grant at will.
        if (record.token.access_token === options.rejected && this.#mayForce(key)) {
          record = await this.#o.accounts.refresh(key, options.signal, { force: true });
        }
        return { value: record.token.access_token };
      }
      const view = this.#o.accounts.cachedToken(key, ROUTE_MIN_VALID_SECONDS) ?? (await this.#o.accounts.loadToken(key, ROUTE_MIN_VALID_SECONDS, options));
      return { value: view.access_token };
    } catch (err) {
      // No login is ever started here: an account without a usable token needs the owner.
      if (err instanceof ProxyError && (err.code === ErrorCode.NOT_FOUND || err.code === ErrorCode.NOT_LOGGED_IN)) {
        const e = notLoggedIn(key.provider, key.bucket);
        throw new ProxyError(ErrorCode.REAUTH_REQUIRED, `route ${route.name}: ${e.message}`);
      }
      throw err;
    }
  }

  #routesChanged(all: ReadonlyMap<string, ResolvedRoute>): void {
    this.#seenRoutes = all;
    const origins = new Set([...all.values()].map((r) => r.upstream.origin));
    for (const origin of this.#origins) {
      if (!origins.has(origin)) void this.#o.upstream.forget?.(origin);
    }
    this.#origins = origins;
  }

  #mayForce(key: AccountKey): boolean {
    const k = `${key.provider}\u0000${key.bucket}`;
    const now = this.#o.clock.now();
    const last = this.#forced.get(k);
    if (last !== undefined && now - last < MIN_REFRESH_INTERVAL_MS) return false;
    this.#forced.set(k, now);
    if (this.#forced.size > 4096) this.#forced.delete(this.#forced.keys().next().value!);
    return true;
  }

  /**
   * Whether `token` is `client`'s capability token. A keep-alive connection sends the same token
   * with every request: once it has been checked on a connection (hash and constant-time compare
   * against the registry), the same string on the same connection passes while the client's
   * record is unchanged — the hash was a good part of a forwarded request's cost. The string
   * compare is not constant-time, but the only string it is compared with was sent on this very
   * connection, so it tells the sender nothing it did not send.
   */
  #authenticate(client: string, token: string, req?: IncomingMessage): boolean {
    const { clients } = this.#o;
    const socket = req?.socket;
    const seen = socket === undefined ? undefined : this.#verified.get(socket);
    if (seen !== undefined && seen.token === token && clients.get(client) === seen.record && !clients.isExpired(seen.record)) return true;
    const record = clients.authenticate(token);
    if (record?.name !== client) return false;
    if (socket !== undefined) this.#verified.set(socket, { token, record });
    return true;
  }

  /** The request handler of `client`'s HTTP listener. */
  handlerFor(client: string, listener: { url: string; peerKey(req: IncomingMessage): string }): RouteRequestHandler {
    const { clients, catalog, upstream, audit, clock, logger, relayed } = this.#o;
    return createRouteHandler({
      client,
      listenerUrl: listener.url,
      authenticate: (token, req) => this.#authenticate(client, token, req),
      tooManyFailures: (req) => this.#failures.retryAfter(listener.peerKey(req)),
      recordFailure: (req) => this.#failures.recordFailure(listener.peerKey(req)),
      routes: () => this.routesOf(client),
      routeExists: (name) => catalog.has(name),
      credential: (route, options) => this.#credential(route, options),
      refreshCredential: (route, options) => this.#secret(route, options, true),
      upstream,
      audit: (record) => audit.record(auditLine(record)),
      logger,
      clock,
      relayed,
    });
  }
}

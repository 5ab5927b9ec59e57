/**
 * Access on request (SPEC §9): a client that needs more than it was granted asks, the owner
 * answers, and an approval is temporary scope — checked on every op and forwarded request, gone
 * when it expires. Shaped like a device grant: pending → approved | denied | expired.
 *
 * Everything here is in memory: a restart forgets pending requests and grants (they are
 * temporary by design; the owner can make a grant permanent with `credproxy client add`).
 */
import { randomBytes } from 'node:crypto';
import { ErrorCode, ProxyError } from '../protocol/errors.js';
import type { AccessRequestInfo, AccessStatus, RequestAccessPayload } from '../protocol/ops.js';
import type { Clock } from '../util/clock.js';
import type { ClientRecord } from './registry.js';

/** Unanswered requests expire after this (SPEC §9: 10 min). */
export const ACCESS_REQUEST_TTL_MS = 10 * 60_000;
/** A grant lasts what was asked, at most this; 1 h when nothing was asked. */
export const MAX_GRANT_SECONDS = 24 * 3600;
export const DEFAULT_GRANT_SECONDS = 3600;
/** Pending requests one client may have at once. */
export const MAX_PENDING_PER_CLIENT = 3;
/** Requests (of any state) kept at once, all clients together. */
const MAX_REQUESTS = 1000;
/** A finished request stays readable this long, so a late poll learns how it ended. */
const FINISHED_RETENTION_MS = 10 * 60_000;

type What = { provider: string; bucket?: string } | { api_key: string } | { route: string };

interface AccessRequest {
  readonly id: string;
  /** The client registration that asked (its token hash: a new client of the same name is another). */
  readonly registration: string;
  readonly client: string;
  readonly what: What;
  readonly reason?: string;
  readonly ttlSeconds: number;
  readonly requestedAt: number;
  /** Unix ms: the end of the wait while pending, the end of the grant once approved. */
  expiresAt: number;
  status: AccessStatus | 'revoked';
  finishedAt?: number;
}

/** What a client's identity consults, per check, beside its registered scope. */
export interface TemporaryAccess {
  allowsAccount(provider: string, bucket: string): boolean;
  allowsProvider(provider: string): boolean;
  allowsKey(name: string): boolean;
  allowsRoute(name: string): boolean;
}

export interface AccessRequestsOptions {
  clock: Clock;
  /** Told of each new request (a desktop notification); must not throw. */
  notify?: (request: AccessRequestInfo) => void;
}

/** A client-supplied text for the owner's eyes: printable, one line, capped. */
function cleanReason(reason: string | undefined): string | undefined {
  if (reason === undefined) return undefined;
  const clean = reason.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g, ' ').trim().slice(0, 200);
  return clean === '' ? undefined : clean;
}

export class AccessRequests {
  readonly #o: AccessRequestsOptions;
  readonly #requests = new Map<string, AccessRequest>();
  readonly #timer: NodeJS.Timeout;

  constructor(options: AccessRequestsOptions) {
    this.#o = options;
    this.#timer = setInterval(() => this.sweep(), 1_000);
    this.#timer.unref();
  }

  /** A client asks: one of account, API key or route, with an optional reason and TTL. */
  request(client: ClientRecord, payload: RequestAccessPayload): { request_id: string; status: 'pending'; expires_at: number } {
    const what = toWhat(payload);
    const now = this.#o.clock.now();
    this.sweep();
    let pending = 0;
    for (const r of this.#requests.values()) if (r.registration === client.token_sha256 && r.status === 'pending') pending++;
    if (pending >= MAX_PENDING_PER_CLIENT) {
      throw new ProxyError(ErrorCode.RESOURCE_EXHAUSTED, `this client already has ${pending} access requests waiting for the owner — poll them with access_status, or wait until they expire (10 min)`);
    }
    if (this.#requests.size >= MAX_REQUESTS) {
      throw new ProxyError(ErrorCode.RESOURCE_EXHAUSTED, 'too many access requests are waiting — try again later');
    }
    const ttlSeconds = Math.min(payload.ttl_seconds ?? DEFAULT_GRANT_SECONDS, MAX_GRANT_SECONDS);
    const reason = cleanReason(payload.reason);
    const request: AccessRequest = {
      id: randomBytes(16).toString('hex'),
      registration: client.token_sha256,
      client: client.name,
      what,
      ttlSeconds,
      requestedAt: now,
      expiresAt: now + ACCESS_REQUEST_TTL_MS,
      status: 'pending',
      ...(reason !== undefined ? { reason } : {}),
    };
    this.#requests.set(request.id, request);
    try {
      this.#o.notify?.(this.#info(request));
    } catch {
      // a notifier is a convenience, never required
    }
    return { request_id: request.id, status: 'pending', expires_at: Math.floor(request.expiresAt / 1000) };
  }

  /** The asking client's view of its own request; another client's does not exist for it. */
  status(client: ClientRecord, id: string): { status: AccessStatus; expires_at?: number } {
    const r = this.#requests.get(id);
    if (!r || r.registration !== client.token_sha256) {
      throw new ProxyError(ErrorCode.NOT_FOUND, 'no such access request — it may have ended more than 10 minutes ago; ask again with request_access');
    }
    this.#expire(r, this.#o.clock.now());
    const status: AccessStatus = r.status === 'revoked' ? 'expired' : r.status;
    return status === 'pending' || status === 'approved' ? { status, expires_at: Math.floor(r.expiresAt / 1000) } : { status };
  }

  list(): AccessRequestInfo[] {
    this.sweep();
    return [...this.#requests.values()].map((r) => this.#info(r));
  }

  pending(): AccessRequestInfo[] {
    return this.list().filter((r) => r.status === 'pending');
  }

  /** The owner approves, perhaps narrower: a shorter TTL, one bucket of a provider-wide request. */
  approve(id: string, narrow: { ttl_seconds?: number; bucket?: string } = {}): AccessRequestInfo {
    const r = this.#get(id);
    if (r.status !== 'pending') throw new ProxyError(ErrorCode.SESSION_ALREADY_USED, `access request ${id} is ${r.status}, not pending — see \`credproxy access list\``);
    let what = r.what;
    if (narrow.bucket !== undefined) {
      if (!('provider' in what)) throw new ProxyError(ErrorCode.INVALID_REQUEST, '--bucket narrows a request for a provider; this request is for an API key or a route');
      if (what.bucket !== undefined && what.bucket !== narrow.bucket) {
        throw new ProxyError(ErrorCode.INVALID_REQUEST, `the client asked for bucket ${what.bucket}; an approval can only narrow what was asked`);
      }
      what = { provider: what.provider, bucket: narrow.bucket };
    }
    const ttl = Math.min(narrow.ttl_seconds ?? r.ttlSeconds, r.ttlSeconds);
    const approved: AccessRequest = { ...r, what, status: 'approved', ttlSeconds: ttl, expiresAt: this.#o.clock.now() + ttl * 1000 };
    this.#requests.set(id, approved);
    return this.#info(approved);
  }

  deny(id: string): AccessRequestInfo {
    const r = this.#get(id);
    if (r.status !== 'pending') throw new ProxyError(ErrorCode.SESSION_ALREADY_USED, `access request ${id} is ${r.status}, not pending`);
    this.#finish(r, 'denied');
    return this.#info(r);
  }

  /** End an approved grant early. */
  revoke(id: string): AccessRequestInfo {
    const r = this.#get(id);
    if (r.status !== 'approved') throw new ProxyError(ErrorCode.SESSION_ALREADY_USED, `access request ${id} is ${r.status}; only an approved grant can be revoked`);
    this.#finish(r, 'revoked');
    return this.#info(r);
  }

  /** A client was removed: its requests and grants end with it. */
  endFor(client: ClientRecord): void {
    for (const [id, r] of this.#requests) if (r.registration === client.token_sha256) this.#requests.delete(id);
  }

  clear(): void {
    this.#requests.clear();
  }

  /** The temporary scope of one client registration, read live on every check. */
  accessFor(client: ClientRecord): TemporaryAccess {
    const granted = (match: (what: What) => boolean): boolean => {
      const now = this.#o.clock.now();
      for (const r of this.#requests.values()) {
        if (r.status === 'approved' && r.registration === client.token_sha256 && r.expiresAt > now && match(r.what)) return true;
      }
      return false;
    };
    return {
      allowsAccount: (provider, bucket) => granted((w) => 'provider' in w && w.provider === provider && (w.bucket === undefined || w.bucket === bucket)),
      allowsProvider: (provider) => granted((w) => 'provider' in w && w.provider === provider),
      allowsKey: (name) => granted((w) => 'api_key' in w && w.api_key === name),
      allowsRoute: (name) => granted((w) => 'route' in w && w.route === name),
    };
  }

  sweep(): void {
    const now = this.#o.clock.now();
    for (const [id, r] of this.#requests) {
      this.#expire(r, now);
      if (r.finishedAt !== undefined && now - r.finishedAt > FINISHED_RETENTION_MS) this.#requests.delete(id);
    }
  }

  close(): void {
    clearInterval(this.#timer);
  }

  #expire(r: AccessRequest, now: number): void {
    if ((r.status === 'pending' || r.status === 'approved') && r.expiresAt <= now) this.#finish(r, 'expired');
  }

  #finish(r: AccessRequest, status: AccessRequest['status']): void {
    r.status = status;
    r.finishedAt = this.#o.clock.now();
  }

  #get(id: string): AccessRequest {
    const r = this.#requests.get(id);
    if (!r) throw new ProxyError(ErrorCode.NOT_FOUND, `no access request ${id} — see \`credproxy access list\``);
    this.#expire(r, this.#o.clock.now());
    return r;
  }

  #info(r: AccessRequest): AccessRequestInfo {
    const info: AccessRequestInfo = {
      request_id: r.id,
      client: r.client,
      status: r.status,
      ttl_seconds: r.ttlSeconds,
      requested_at: Math.floor(r.requestedAt / 1000),
      expires_at: Math.floor(r.expiresAt / 1000),
      ...r.what,
    };
    if (r.reason !== undefined) info.reason = r.reason;
    return info;
  }
}

/** What a request asks for, as the owner reads it: `github/work`, `API key openai`, `route anthropic`. */
export function describeAccess(r: Pick<AccessRequestInfo, 'provider' | 'bucket' | 'api_key' | 'route'>): string {
  if (r.provider !== undefined) return r.bucket !== undefined ? `${r.provider}/${r.bucket}` : `${r.provider} (any bucket)`;
  if (r.api_key !== undefined) return `API key ${r.api_key}`;
  return `route ${r.route ?? '?'}`;
}

function toWhat(p: RequestAccessPayload): What {
  const kinds = [p.provider !== undefined, p.api_key !== undefined, p.route !== undefined].filter(Boolean).length;
  if (kinds !== 1) {
    throw new ProxyError(ErrorCode.INVALID_REQUEST, 'request_access asks for exactly one thing: {provider, bucket?}, {api_key} or {route}');
  }
  if (p.provider !== undefined) return p.bucket !== undefined ? { provider: p.provider, bucket: p.bucket } : { provider: p.provider };
  if (p.api_key !== undefined) return { api_key: p.api_key };
  return { route: p.route! };
}

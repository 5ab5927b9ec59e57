/**
 * Shared parts of the provider emulations: a node:http server on 127.0.0.1, request bodies, PKCE,
 * signed id tokens, token bookkeeping and the record of deviations. Each emulation ENFORCES its
 * provider's documented dialect: a request that deviates gets the error the provider would give
 * (or a plain 400) and is recorded in `violations`, so a test fails when the client deviates.
 */
import { createHash, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface EmulatedUser {
  sub: string;
  login: string;
  email: string;
}

export const DEFAULT_USER: EmulatedUser = { sub: '100200300', login: 'octo-user', email: 'octo-user@example.test' };

export interface ParsedRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: IncomingMessage['headers'];
  /** The body's parameters (form or JSON object), and how it was sent. */
  params: Record<string, string>;
  bodyType: 'form' | 'json' | 'none' | 'other';
  /** Basic credentials, when sent. */
  basic?: { user: string; password: string };
}

export interface Reply {
  status: number;
  headers?: Record<string, string>;
  body?: string;
}

export function json(status: number, body: unknown, headers: Record<string, string> = {}): Reply {
  return { status, headers: { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', ...headers }, body: JSON.stringify(body) };
}

export function form(status: number, body: Record<string, string | number>, headers: Record<string, string> = {}): Reply {
  const params = new URLSearchParams(Object.entries(body).map(([k, v]): [string, string] => [k, String(v)]));
  return { status, headers: { 'content-type': 'application/x-www-form-urlencoded; charset=utf-8', ...headers }, body: params.toString() };
}

export function redirect(location: string): Reply {
  return { status: 302, headers: { location } };
}

export function randomToken(prefix = ''): string {
  return prefix + randomBytes(18).toString('base64url');
}

export function s256(verifier: string): string {
  return createHash('sha256').update(verifier).digest('base64url');
}

/** A loopback redirect URI: http://127.0.0.1:PORT/path (or localhost). */
export function isLoopbackRedirect(uri: string | undefined): boolean {
  if (uri === undefined) return false;
  try {
    const u = new URL(uri);
    return u.protocol === 'http:' && (u.hostname === '127.0.0.1' || u.hostname === 'localhost' || u.hostname === '[::1]');
  } catch {
    return false;
  }
}

/** A signing key for id tokens and its public JWKS. */
export class IdTokenSigner {
  readonly alg: 'RS256' | 'ES256';
  readonly kid = randomBytes(6).toString('hex');
  readonly #key: KeyObject;
  readonly jwks: { keys: Record<string, unknown>[] };

  constructor(alg: 'RS256' | 'ES256') {
    this.alg = alg;
    const pair = alg === 'RS256' ? generateKeyPairSync('rsa', { modulusLength: 2048 }) : generateKeyPairSync('ec', { namedCurve: 'P-256' });
    this.#key = pair.privateKey;
    this.jwks = { keys: [{ ...pair.publicKey.export({ format: 'jwk' }), kid: this.kid, use: 'sig', alg }] };
  }

  sign(claims: Record<string, unknown>): string {
    const header = Buffer.from(JSON.stringify({ alg: this.alg, kid: this.kid, typ: 'JWT' })).toString('base64url');
    const payload = Buffer.from(JSON.stringify(claims)).toString('base64url');
    const input = `${header}.${payload}`;
    const signature = this.alg === 'RS256' ? sign('sha256', Buffer.from(input), this.#key) : sign('sha256', Buffer.from(input), { key: this.#key, dsaEncoding: 'ieee-p1363' });
    return `${input}.${signature.toString('base64url')}`;
  }
}

export interface IssuedToken {
  kind: 'access' | 'refresh';
  clientId: string;
  user: EmulatedUser;
  scope: string;
  /** unix ms; undefined = never */
  expiresAt?: number;
  active: boolean;
  /** The grant this token belongs to (revoking a refresh token ends it all). */
  grant: string;
  nonce?: string;
}

export interface PendingCode {
  clientId: string;
  redirectUri: string;
  challenge?: string;
  scope: string;
  nonce?: string;
  user: EmulatedUser;
  used: boolean;
  /** Extra facts the dialect needs at exchange time (e.g. whether offline access was asked for). */
  offline: boolean;
}

export interface PendingDevice {
  clientId: string;
  userCode: string;
  scope: string;
  state: 'pending' | 'approved' | 'denied';
  expiresAt: number;
  /** seconds */
  interval: number;
  lastPollAt?: number;
  user: EmulatedUser;
}

/** What every emulation offers a test. */
export interface ProviderEmulation {
  /** `http://127.0.0.1:PORT` */
  readonly base: string;
  readonly port: number;
  readonly clientId: string;
  readonly clientSecret: string;
  readonly user: EmulatedUser;
  /** Every deviation from the provider's documented behaviour the client made. */
  readonly violations: readonly string[];
  /** Requests by `METHOD path` (a snapshot). */
  readonly hits: Readonly<Record<string, number>>;
  /** Every request's method, path, body type, parameter names and Accept header (no values). */
  readonly requests: readonly RequestSummary[];
  /** Follow an authorization URL as a consenting user; returns the redirect (to the loopback callback). */
  authorize(authUrl: string, options?: { deny?: boolean }): Promise<string>;
  /** The user enters the code and approves (or denies) on the verification page. */
  approveDevice(userCode: string, options?: { deny?: boolean }): void;
  /** Whether the provider still honours this token. */
  isActive(token: string): boolean;
  /** Everything secret it issued or holds (refresh tokens, device codes, the client secret), for byte scans. */
  secrets(): string[];
  close(): Promise<void>;
}

export interface RequestSummary {
  method: string;
  path: string;
  bodyType: ParsedRequest['bodyType'];
  params: string[];
  accept?: string;
}

export type Route = (req: ParsedRequest) => Reply | Promise<Reply>;

/** The bookkeeping and HTTP plumbing the four emulations share. */
export class EmulationCore {
  readonly violations: string[] = [];
  readonly hits: Record<string, number> = {};
  readonly requests: RequestSummary[] = [];
  readonly tokens = new Map<string, IssuedToken>();
  readonly codes = new Map<string, PendingCode>();
  readonly devices = new Map<string, PendingDevice>();
  readonly #server: Server;
  base = '';
  port = 0;

  constructor(readonly name: string, readonly route: Route) {
    this.#server = createServer((req, res) => void this.#handle(req, res));
  }

  async listen(port = 0): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(port, '127.0.0.1', () => resolve());
    });
    this.port = (this.#server.address() as AddressInfo).port;
    this.base = `http://127.0.0.1:${this.port}`;
  }

  close(): Promise<void> {
    this.#server.closeAllConnections();
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }

  /** Record a deviation and answer it. */
  violation(what: string, reply?: Reply): Reply {
    this.violations.push(`${this.name}: ${what}`);
    return reply ?? json(400, { error: 'invalid_request', error_description: `emulated ${this.name} refuses: ${what}` });
  }

  issue(kind: 'access' | 'refresh', t: Omit<IssuedToken, 'kind' | 'active'>, prefix = ''): string {
    const value = randomToken(prefix);
    this.tokens.set(value, { ...t, kind, active: true });
    return value;
  }

  /** The active, unexpired token of `kind`, or undefined. */
  live(value: string | undefined, kind: 'access' | 'refresh'): IssuedToken | undefined {
    if (value === undefined) return undefined;
    const t = this.tokens.get(value);
    if (!t || t.kind !== kind || !t.active) return undefined;
    if (t.expiresAt !== undefined && Date.now() >= t.expiresAt) return undefined;
    return t;
  }

  revokeGrant(grant: string): void {
    for (const t of this.tokens.values()) if (t.grant === grant) t.active = false;
  }

  /** Refresh tokens and device codes issued so far. */
  secrets(): string[] {
    const out = [...this.issuedDeviceCodes];
    for (const [value, t] of this.tokens) if (t.kind === 'refresh') out.push(value);
    return out;
  }

  isActive(token: string): boolean {
    const t = this.tokens.get(token);
    return t !== undefined && t.active && (t.expiresAt === undefined || Date.now() < t.expiresAt);
  }

  /** Check a code exchange's common parts: the code, its client, redirect URI and PKCE verifier. */
  redeemCode(p: Record<string, string>, clientId: string): PendingCode | Reply {
    const code = this.codes.get(p.code ?? '');
    if (!code || code.used) return json(400, { error: 'invalid_grant', error_description: 'unknown or used code' });
    code.used = true;
    if (code.clientId !== clientId) return this.violation('code redeemed by another client', json(400, { error: 'invalid_grant' }));
    if (p.redirect_uri !== code.redirectUri) return this.violation(`redirect_uri at the token endpoint (${p.redirect_uri}) differs from the authorization request's`, json(400, { error: 'invalid_grant' }));
    if (code.challenge !== undefined && (p.code_verifier === undefined || s256(p.code_verifier) !== code.challenge)) {
      return this.violation('PKCE code_verifier missing or wrong', json(400, { error: 'invalid_grant', error_description: 'PKCE verification failed' }));
    }
    return code;
  }

  /** Device codes ever issued (they leave `devices` once redeemed). */
  readonly issuedDeviceCodes: string[] = [];

  newDevice(clientId: string, scope: string, user: EmulatedUser, interval: number, ttlSeconds: number): { deviceCode: string; device: PendingDevice } {
    const deviceCode = randomToken('dc_');
    this.issuedDeviceCodes.push(deviceCode);
    const userCode = `${randomBytes(2).toString('hex').toUpperCase()}-${randomBytes(2).toString('hex').toUpperCase()}`;
    const device: PendingDevice = { clientId, userCode, scope, state: 'pending', expiresAt: Date.now() + ttlSeconds * 1000, interval, user };
    this.devices.set(deviceCode, device);
    return { deviceCode, device };
  }

  approveDevice(userCode: string, deny = false): void {
    for (const d of this.devices.values()) {
      if (d.userCode === userCode) {
        d.state = deny ? 'denied' : 'approved';
        return;
      }
    }
    throw new Error(`no device login with user code ${userCode}`);
  }

  /** Follow an authorization URL (a browser that already has a session and consents). */
  async authorize(authUrl: string, deny = false): Promise<string> {
    const url = new URL(authUrl);
    if (deny) url.searchParams.set('x_emulation_deny', '1');
    const res = await fetch(url, { redirect: 'manual' });
    await res.body?.cancel();
    const location = res.headers.get('location');
    if (res.status !== 302 || !location) throw new Error(`${this.name}: the authorization request was refused (HTTP ${res.status}); violations: ${this.violations.join('; ')}`);
    return location;
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let reply: Reply;
    try {
      const parsed = await parse(req);
      const key = `${parsed.method} ${parsed.path}`;
      this.hits[key] = (this.hits[key] ?? 0) + 1;
      this.requests.push({ method: parsed.method, path: parsed.path, bodyType: parsed.bodyType, params: Object.keys(parsed.params).sort(), ...(parsed.headers.accept !== undefined ? { accept: parsed.headers.accept } : {}) });
      reply = await this.route(parsed);
    } catch (err) {
      reply = json(500, { error: 'server_error', error_description: String(err) });
    }
    res.writeHead(reply.status, reply.headers ?? {});
    res.end(reply.body ?? '');
  }
}

async function parse(req: IncomingMessage): Promise<ParsedRequest> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  const target = req.url ?? '/';
  const q = target.indexOf('?');
  const path = q === -1 ? target : target.slice(0, q);
  const query = new URLSearchParams(q === -1 ? '' : target.slice(q + 1));
  const type = (req.headers['content-type'] ?? '').toLowerCase();
  let params: Record<string, string> = {};
  let bodyType: ParsedRequest['bodyType'] = text.length === 0 ? 'none' : 'other';
  if (text.length > 0 && type.startsWith('application/x-www-form-urlencoded')) {
    params = Object.fromEntries(new URLSearchParams(text));
    bodyType = 'form';
  } else if (text.length > 0 && type.startsWith('application/json')) {
    try {
      const v: unknown = JSON.parse(text);
      if (typeof v === 'object' && v !== null) params = Object.fromEntries(Object.entries(v).map(([k, x]) => [k, String(x)]));
      bodyType = 'json';
    } catch {
      bodyType = 'other';
    }
  }
  const out: ParsedRequest = { method: req.method ?? 'GET', path, query, headers: req.headers, params, bodyType };
  const auth = req.headers.authorization;
  if (auth?.startsWith('Basic ')) {
    const decoded = Buffer.from(auth.slice(6), 'base64').toString('utf8');
    const i = decoded.indexOf(':');
    if (i !== -1) out.basic = { user: decodeURIComponent(decoded.slice(0, i)), password: decodeURIComponent(decoded.slice(i + 1)) };
  }
  return out;
}

/** The client's credentials, from Basic or the body. */
export function clientCredentials(req: ParsedRequest): { id?: string; secret?: string; via: 'basic' | 'body' | 'none' } {
  if (req.basic) return { id: req.basic.user, secret: req.basic.password, via: 'basic' };
  const out: { id?: string; secret?: string; via: 'basic' | 'body' | 'none' } = { via: req.params.client_secret !== undefined ? 'body' : 'none' };
  if (req.params.client_id !== undefined) out.id = req.params.client_id;
  if (req.params.client_secret !== undefined) out.secret = req.params.client_secret;
  return out;
}

export function bearer(req: ParsedRequest): string | undefined {
  const auth = req.headers.authorization;
  const m = /^(?:Bearer|token) (.+)$/i.exec(auth ?? '');
  return m?.[1];
}

/**
 * A real OAuth 2.0 / OpenID Connect authorization server for tests: oidc-provider on a loopback port,
 * with the test hooks credproxy needs (device-flow interval and slow_down, token-endpoint fault
 * injection, grant counters, a "paste the code" page, introspection/revocation/userinfo helpers).
 * With `stateFile` (and `port`) it can be killed with SIGKILL and started again with everything it
 * issued still valid (test/support/as-child.mjs runs it in a child process for that).
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import {
  createServer,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';

import { createMapAdapterFactory, MapStore } from './map-adapter.js';
import { withoutProviderNotices } from './quiet.js';
import { readStateFile, writeStateFileSync, type StateSecrets } from './state-file.js';

// ---------------------------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------------------------

/** The grant types the counters track; anything else is counted under `other`. */
export type CountedGrantType = 'authorization_code' | 'refresh_token' | 'device_code' | 'other';

export type GrantCounts = Record<CountedGrantType, number>;

export const DEVICE_CODE_GRANT_TYPE = 'urn:ietf:params:oauth:grant-type:device_code';

/** What the token-endpoint fault hook is shown, before oidc-provider sees the request. */
export interface TokenRequestInfo {
  /** the raw `grant_type` parameter (e.g. `urn:ietf:params:oauth:grant-type:device_code`) */
  grantType: string | undefined;
  /** `authorization_code` | `refresh_token` | `device_code` | `other` */
  countedAs: CountedGrantType;
  /** 1-based number of this request among token requests of the same counted grant type */
  attempt: number;
  /** the parsed form body */
  params: URLSearchParams;
  headers: IncomingHttpHeaders;
}

/** A response the fault hook substitutes for the real token endpoint. */
export type InjectedResponse =
  | {
      status: number;
      /** an object is sent as JSON; a string is sent as-is (text/plain unless headers say otherwise) */
      body?: unknown;
      headers?: Record<string, string>;
      /** wait this long before answering */
      delayMs?: number;
    }
  | {
      /** destroy the TCP connection without answering (after delayMs, if given) */
      dropConnection: true;
      delayMs?: number;
    }
  | {
      /**
       * hold the request for delayMs, then let the real token endpoint answer it (a slow server;
       * a kill during the hold is a server dying with the request in flight, before it acted on it)
       */
      passThrough: true;
      delayMs: number;
    };

/** Return a response to inject it, or undefined to let the real token endpoint answer. */
export type TokenEndpointFaultHook = (req: TokenRequestInfo) => InjectedResponse | undefined;

export interface TestAuthServerOptions {
  /** access token lifetime in seconds (default 3600) */
  accessTokenTtl?: number;
  /** refresh token lifetime in seconds (default 14 days) */
  refreshTokenTtl?: number;
  /** device code lifetime in seconds (default 600); also the `expires_in` of the device response */
  deviceCodeTtl?: number;
  /** authorization code lifetime in seconds (default 60) */
  authorizationCodeTtl?: number;
  /**
   * `interval` (seconds, may be fractional, e.g. 0.05) injected into the device authorization
   * response. oidc-provider itself never sends `interval`; when this is undefined (default) none is sent.
   */
  deviceInterval?: number;
  /** rotate refresh tokens on every use (default true) */
  rotateRefreshToken?: boolean;
  /** answer the first device_code token poll with 400 slow_down (same as slowDownCount: 1) */
  slowDownOnce?: boolean;
  /** answer the first n device_code token polls with 400 `{"error":"slow_down"}` */
  slowDownCount?: number;
  /** fault injection for the token endpoint; can be replaced later with server.setTokenEndpointFault */
  failTokenEndpoint?: TokenEndpointFaultHook;
  /**
   * oidc-provider drops `offline_access` from a code-flow authorization request unless it carries
   * `prompt=consent` (so no refresh token is issued). By default (false) the kit adds
   * `prompt=consent` to authorization requests that ask for offline_access and carry no `prompt`,
   * so a client need not send it. Set true to get oidc-provider's stock behaviour.
   */
  requirePromptConsentForOfflineAccess?: boolean;
  /**
   * oidc-provider's clockTolerance in seconds (default here 0, so tokens stop working exactly at
   * their expiry; oidc-provider's own default is 15).
   */
  clockTolerance?: number;
  /**
   * seconds an expired artifact stays in storage (default 60). While it is there an expired device
   * code polls as `expired_token`; afterwards as `invalid_grant`.
   */
  expiredRetention?: number;
  /** redirect URIs of the native and confidential clients (default ['http://127.0.0.1/callback']) */
  nativeRedirectUris?: string[];
  /** drop oidc-provider's console notices (default true) */
  quiet?: boolean;
  /**
   * loopback port to listen on. Default: the port recorded in `stateFile` when that file exists
   * (so a restarted server keeps its issuer), else 0 (an ephemeral port).
   */
  port?: number;
  /**
   * Persist the server's state to this file and load it at start: the signing key, cookie keys,
   * the confidential client's secret, the port, and every stored artifact (grants, sessions,
   * codes, access and refresh tokens). The file is rewritten synchronously (temp file + rename) on
   * every storage write, so a server killed with SIGKILL and started again on the same file (and
   * port) still honours every token it issued, and knows which refresh tokens were consumed.
   * Without it (default) the state lives in memory and dies with the server.
   */
  stateFile?: string;
  /** the id token signing algorithm (default ES256); a state file keeps the key it was made with */
  signingAlg?: 'ES256' | 'RS256';
  /** called for every HTTP request the server answered, when it is recorded in `requests` */
  onRequest?: (record: RequestRecord) => void;
}

export interface TestClients {
  /** public native client (token_endpoint_auth_method none); loopback redirects match any port */
  native: { clientId: string; redirectUris: string[] };
  /** confidential native client, client_secret_basic; also used by introspect()/revoke() */
  confidential: { clientId: string; clientSecret: string; redirectUris: string[] };
  /** public web client whose redirect_uri is `<issuer>/paste-code` (a page showing `code#state`) */
  paste: { clientId: string; redirectUri: string };
}

export interface TestEndpoints {
  discovery: string;
  authorization: string;
  token: string;
  deviceAuthorization: string;
  /** the device verification page (`/device`) */
  verification: string;
  userinfo: string;
  revocation: string;
  introspection: string;
  jwks: string;
  pasteCode: string;
}

export interface RequestRecord {
  method: string;
  /** path without query */
  path: string;
  status: number;
  /** grant_type of token-endpoint requests */
  grantType?: string;
}

export interface IntrospectionResult {
  active: boolean;
  [claim: string]: unknown;
}

export interface HttpResult {
  status: number;
  headers: Headers;
  /** parsed JSON when the response is JSON, otherwise the text */
  body: unknown;
}

export interface TestAuthServer {
  /** `http://127.0.0.1:<port>` (no trailing slash) */
  readonly issuer: string;
  readonly port: number;
  readonly clients: TestClients;
  readonly endpoints: TestEndpoints;
  /** token-endpoint requests by grant type, counted before oidc-provider handles them (snapshot) */
  readonly grantCounts: Readonly<GrantCounts>;
  /** token-endpoint requests that were answered 200, by grant type (snapshot) */
  readonly grantSuccesses: Readonly<GrantCounts>;
  /** every HTTP request the server answered, in completion order (live array) */
  readonly requests: readonly RequestRecord[];
  /** the oidc-provider Provider instance (untyped; for advanced tests only) */
  readonly provider: unknown;
  /** the state file this server persists to (options.stateFile), if any */
  readonly stateFile: string | undefined;
  /** true when the server loaded its state from an existing state file at start */
  readonly restored: boolean;
  /** `issuer + path` */
  url(path: string): string;
  resetCounts(): void;
  setTokenEndpointFault(hook: TokenEndpointFaultHook | undefined): void;
  /** how many more device_code polls will be answered slow_down */
  setSlowDownCount(n: number): void;
  /** calls the introspection endpoint as the confidential client */
  introspect(token: string): Promise<IntrospectionResult>;
  /** `(await introspect(token)).active` */
  isActive(token: string): Promise<boolean>;
  /**
   * calls the revocation endpoint as the confidential client (allowed to revoke any client's
   * tokens here). Revoking a refresh token revokes its whole grant (its access tokens too).
   */
  revoke(token: string, tokenTypeHint?: 'access_token' | 'refresh_token'): Promise<void>;
  /** GET the userinfo endpoint with the bearer token */
  userinfo(accessToken: string): Promise<HttpResult>;
  /** stop listening and destroy every socket (keep-alive ones included) */
  close(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// Minimal shapes of the untyped oidc-provider / Koa objects we touch
// ---------------------------------------------------------------------------------------------

interface KoaContext {
  method: string;
  path: string;
  querystring: string;
  status: number;
  body: unknown;
  type: string;
  respond: boolean;
  req: IncomingMessage & { body?: unknown };
  set(field: string, value: string): void;
}
type KoaNext = () => Promise<void>;
type KoaMiddleware = (ctx: KoaContext, next: KoaNext) => Promise<void>;

interface ProviderInstance {
  issuer: string;
  callback(): (req: IncomingMessage, res: ServerResponse) => void;
  use(fn: KoaMiddleware): unknown;
}
interface ProviderModule {
  Provider: new (issuer: string, configuration: Record<string, unknown>) => ProviderInstance;
}
interface ProviderClient {
  clientId: string;
  clientAuthMethod: string;
}
interface ProviderToken {
  clientId?: string;
}

// A non-literal specifier keeps TypeScript from looking for oidc-provider's (absent) type declarations.
const PROVIDER_SPECIFIER = 'oidc-provider';
let providerModule: Promise<ProviderModule> | undefined;

function loadProvider(quiet: boolean): Promise<ProviderModule> {
  providerModule ??= withoutProviderNotices(
    quiet,
    () => import(/* @vite-ignore */ PROVIDER_SPECIFIER) as Promise<ProviderModule>,
  );
  return providerModule;
}

/** oidc-provider warns once per process when it finds a pre-read body; we pre-read token bodies. */
let bodyNoticeSuppressed = false;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

const SCOPE = 'openid offline_access profile email';
const GRANT_TYPES = ['authorization_code', 'refresh_token', DEVICE_CODE_GRANT_TYPE];
const DAY = 24 * 60 * 60;

function countedAs(grantType: string | undefined): CountedGrantType {
  switch (grantType) {
    case 'authorization_code':
    case 'refresh_token':
      return grantType;
    case DEVICE_CODE_GRANT_TYPE:
      return 'device_code';
    default:
      return 'other';
  }
}

function zeroCounts(): GrantCounts {
  return { authorization_code: 0, refresh_token: 0, device_code: 0, other: 0 };
}

function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function page(title: string, body: string): string {
  return `<!DOCTYPE html>
<html>
<head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head>
<body>
<h1>${escapeHtml(title)}</h1>
${body}
</body>
</html>`;
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req.iterator({ destroyOnReturn: false })) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

async function parseResponse(res: Response): Promise<unknown> {
  const text = await res.text();
  if ((res.headers.get('content-type') ?? '').includes('json')) {
    try {
      return JSON.parse(text) as unknown;
    } catch {
      return text;
    }
  }
  return text;
}

function newSecrets(alg: 'ES256' | 'RS256'): StateSecrets {
  // Signing key: ES256 (fast to make) unless the test asks for RS256.
  const { privateKey } = alg === 'RS256' ? generateKeyPairSync('rsa', { modulusLength: 2048 }) : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return {
    signingKey: {
      ...privateKey.export({ format: 'jwk' }),
      kid: randomBytes(8).toString('hex'),
      alg,
      use: 'sig',
    },
    cookieKeys: [randomBytes(32).toString('base64url')],
    confidentialClientSecret: randomBytes(24).toString('base64url'),
  };
}

function findAccount(_ctx: unknown, sub: string) {
  return {
    accountId: sub,
    async claims() {
      return {
        sub,
        name: sub,
        preferred_username: sub,
        email: `${sub}@example.test`,
        email_verified: true,
      };
    },
  };
}

// ---------------------------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------------------------

export async function startTestAuthServer(options: TestAuthServerOptions = {}): Promise<TestAuthServer> {
  const quiet = options.quiet ?? true;
  const accessTokenTtl = options.accessTokenTtl ?? 3600;
  const refreshTokenTtl = options.refreshTokenTtl ?? 14 * DAY;
  const deviceCodeTtl = options.deviceCodeTtl ?? 600;
  const authorizationCodeTtl = options.authorizationCodeTtl ?? 60;
  const rotate = options.rotateRefreshToken ?? true;
  const nativeRedirectUris = options.nativeRedirectUris ?? ['http://127.0.0.1/callback'];
  let slowDownRemaining = options.slowDownCount ?? (options.slowDownOnce ? 1 : 0);
  let faultHook = options.failTokenEndpoint;

  const { Provider } = await loadProvider(quiet);

  // 0. A state file: the secrets and artifacts of an earlier run of this server, or a fresh start.
  const stateFile = options.stateFile;
  const saved = stateFile === undefined ? undefined : readStateFile(stateFile);
  const secrets = saved?.secrets ?? newSecrets(options.signingAlg ?? 'ES256');
  const signingAlg = String(secrets.signingKey.alg ?? 'ES256');

  // 1. Bind the port first: the issuer is built from it.
  const httpServer: Server = createServer();
  await new Promise<void>((resolve, reject) => {
    httpServer.once('error', reject);
    httpServer.listen(options.port ?? saved?.port ?? 0, '127.0.0.1', () => {
      httpServer.off('error', reject);
      resolve();
    });
  });
  const port = (httpServer.address() as AddressInfo).port;
  const issuer = `http://127.0.0.1:${port}`;
  const url = (path: string) => `${issuer}${path.startsWith('/') ? path : `/${path}`}`;

  const clients: TestClients = {
    native: { clientId: 'native', redirectUris: [...nativeRedirectUris] },
    confidential: {
      clientId: 'confidential',
      clientSecret: secrets.confidentialClientSecret,
      redirectUris: [...nativeRedirectUris],
    },
    paste: { clientId: 'paste', redirectUri: url('/paste-code') },
  };

  const endpoints: TestEndpoints = {
    discovery: url('/.well-known/openid-configuration'),
    authorization: url('/auth'),
    token: url('/token'),
    deviceAuthorization: url('/device/auth'),
    verification: url('/device'),
    userinfo: url('/me'),
    revocation: url('/token/revocation'),
    introspection: url('/token/introspection'),
    jwks: url('/jwks'),
    pasteCode: url('/paste-code'),
  };

  // 2. Storage, persisted on every write when there is a state file.
  let closed = false;
  const persist = () => {
    if (stateFile === undefined || closed) return;
    writeStateFileSync(stateFile, { version: 1, port, secrets, entries: store.snapshot() });
  };
  const store = new MapStore(options.expiredRetention ?? 60, stateFile === undefined ? {} : { onChange: persist });
  if (saved) store.restore(saved.entries);
  try {
    persist();
  } catch (error) {
    httpServer.close();
    throw error;
  }

  // Policies: the confidential client acts as the test harness's admin for introspection/revocation.
  const mayInspect = async (_ctx: unknown, client: ProviderClient, token: ProviderToken) =>
    client.clientAuthMethod !== 'none' || token.clientId === client.clientId;

  const configuration: Record<string, unknown> = {
    adapter: createMapAdapterFactory(store),
    clients: [
      {
        client_id: clients.native.clientId,
        application_type: 'native',
        token_endpoint_auth_method: 'none',
        redirect_uris: clients.native.redirectUris,
        grant_types: GRANT_TYPES,
        response_types: ['code'],
        scope: SCOPE,
      },
      {
        client_id: clients.confidential.clientId,
        client_secret: clients.confidential.clientSecret,
        application_type: 'native',
        token_endpoint_auth_method: 'client_secret_basic',
        redirect_uris: clients.confidential.redirectUris,
        grant_types: GRANT_TYPES,
        response_types: ['code'],
        scope: SCOPE,
      },
      {
        client_id: clients.paste.clientId,
        application_type: 'web',
        token_endpoint_auth_method: 'none',
        redirect_uris: [clients.paste.redirectUri],
        grant_types: GRANT_TYPES,
        response_types: ['code'],
        scope: SCOPE,
      },
    ],
    clientDefaults: {
      id_token_signed_response_alg: signingAlg,
      grant_types: GRANT_TYPES,
      response_types: ['code'],
    },
    responseTypes: ['code'],
    jwks: { keys: [secrets.signingKey] },
    cookies: { keys: [...secrets.cookieKeys] },
    claims: {
      openid: ['sub'],
      profile: ['name', 'preferred_username'],
      email: ['email', 'email_verified'],
    },
    scopes: ['openid', 'offline_access'],
    findAccount,
    clockTolerance: options.clockTolerance ?? 0,
    pkce: { required: () => true },
    rotateRefreshToken: () => rotate,
    ttl: {
      AccessToken: accessTokenTtl,
      AuthorizationCode: authorizationCodeTtl,
      ClientCredentials: accessTokenTtl,
      DeviceCode: deviceCodeTtl,
      IdToken: accessTokenTtl,
      RefreshToken: refreshTokenTtl,
      Interaction: 3600,
      Session: 14 * DAY,
      Grant: Math.max(refreshTokenTtl, 14 * DAY),
    },
    clientBasedCORS: () => true,
    async renderError(ctx: KoaContext, out: Record<string, unknown>) {
      ctx.type = 'json';
      ctx.body = out;
    },
    features: {
      devInteractions: { enabled: true },
      deviceFlow: {
        enabled: true,
        async userCodeInputSource(
          ctx: KoaContext,
          form: string,
          out: { error?: string; error_description?: string } | undefined,
          err: { name?: string; userCode?: string } | undefined,
        ) {
          let message = 'Enter the code displayed on your device';
          if (err?.name === 'AbortedError') message = 'The Sign-in request was interrupted';
          else if (err && (err.userCode || err.name === 'NoCodeError')) message = 'The code you entered is incorrect. Try again';
          else if (err) message = 'There was an error processing your request';
          ctx.type = 'html';
          ctx.body = page(
            'Sign-in',
            `<p id="message" data-error="${escapeHtml(out?.error ?? '')}" data-error-name="${escapeHtml(err?.name ?? '')}">${escapeHtml(message)}</p>
${form}
<button type="submit" form="op.deviceInputForm">Continue</button>`,
          );
        },
        async userCodeConfirmSource(ctx: KoaContext, form: string, client: ProviderClient, _info: unknown, userCode: string) {
          ctx.type = 'html';
          ctx.body = page(
            'Confirm Device',
            `<p>Client <strong id="client">${escapeHtml(client.clientId)}</strong> asks to sign in. Your device should show</p>
<p><code id="user-code">${escapeHtml(userCode)}</code></p>
${form}
<button type="submit" form="op.deviceConfirmForm">Continue</button>
<button type="submit" form="op.deviceConfirmForm" value="yes" name="abort">[ Abort ]</button>`,
          );
        },
        async successSource(ctx: KoaContext) {
          ctx.type = 'html';
          ctx.body = page('Sign-in Success', '<p id="device-success">Your sign-in was successful, you can now close this page.</p>');
        },
      },
      revocation: { enabled: true, allowedPolicy: mayInspect },
      introspection: { enabled: true, allowedPolicy: mayInspect },
      userinfo: { enabled: true },
      rpInitiatedLogout: { enabled: false },
    },
  };

  // 3. The provider (construction prints development-only warnings; keep them off the console).
  let provider: ProviderInstance;
  try {
    provider = await withoutProviderNotices(quiet, () => new Provider(issuer, configuration));
  } catch (error) {
    httpServer.close();
    throw error;
  }

  const grantCounts = zeroCounts();
  const grantSuccesses = zeroCounts();
  const requests: RequestRecord[] = [];
  const grantTypeOf = new WeakMap<IncomingMessage, string>();

  // Koa middleware, registered with provider.use so it runs before oidc-provider's routes.
  provider.use(async (ctx, next) => {
    // Token endpoint: count, inject faults / slow_down, count successes.
    if (ctx.method === 'POST' && ctx.path === '/token') {
      const raw = await readBody(ctx.req);
      // oidc-provider reads a pre-read body from req.body (a Buffer is parsed as the form).
      ctx.req.body = raw;
      const params = new URLSearchParams(raw.toString('utf8'));
      const grantType = params.get('grant_type') ?? undefined;
      if (grantType !== undefined) grantTypeOf.set(ctx.req, grantType);
      const counted = countedAs(grantType);
      grantCounts[counted] += 1;

      const injected = faultHook?.({
        grantType,
        countedAs: counted,
        attempt: grantCounts[counted],
        params,
        headers: ctx.req.headers,
      });
      if (injected) {
        if (injected.delayMs) await sleep(injected.delayMs);
      }
      if (injected && !('passThrough' in injected)) {
        if ('dropConnection' in injected) {
          ctx.respond = false;
          ctx.req.socket.destroy();
          return;
        }
        ctx.status = injected.status;
        if (injected.body !== undefined) {
          ctx.body = typeof injected.body === 'string' ? injected.body : JSON.stringify(injected.body);
          ctx.type = typeof injected.body === 'string' ? 'text/plain' : 'application/json';
        }
        ctx.set('cache-control', 'no-store');
        for (const [name, value] of Object.entries(injected.headers ?? {})) ctx.set(name, value);
        return;
      }

      if (counted === 'device_code' && slowDownRemaining > 0) {
        slowDownRemaining -= 1;
        ctx.status = 400;
        ctx.set('cache-control', 'no-store');
        ctx.body = {
          error: 'slow_down',
          error_description: 'you are polling too quickly and should back off at a reasonable rate',
        };
        return;
      }

      await withoutProviderNotices(quiet && !bodyNoticeSuppressed, next);
      bodyNoticeSuppressed = true;
      if (ctx.status === 200) grantSuccesses[counted] += 1;
      return;
    }

    // Device authorization: add `interval`.
    if (ctx.method === 'POST' && ctx.path === '/device/auth') {
      await next();
      const interval = options.deviceInterval;
      if (interval !== undefined && ctx.status === 200 && ctx.body && typeof ctx.body === 'object') {
        ctx.body = { ...(ctx.body as Record<string, unknown>), interval };
      }
      return;
    }

    // Authorization endpoint: make offline_access work without prompt=consent.
    if (ctx.method === 'GET' && ctx.path === '/auth' && !options.requirePromptConsentForOfflineAccess) {
      const query = new URLSearchParams(ctx.querystring);
      const scopes = (query.get('scope') ?? '').split(' ');
      if (scopes.includes('offline_access') && !query.has('prompt')) {
        query.set('prompt', 'consent');
        ctx.querystring = query.toString();
      }
    }

    await next();
  });

  const handle = provider.callback();

  // 4. Serve: /paste-code ourselves, everything else through oidc-provider.
  httpServer.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    res.on('finish', () => {
      const grantType = grantTypeOf.get(req);
      const record: RequestRecord = {
        method: req.method ?? 'GET',
        path,
        status: res.statusCode,
        ...(grantType !== undefined ? { grantType } : {}),
      };
      requests.push(record);
      options.onRequest?.(record);
    });
    if (path === '/paste-code' && (req.method === 'GET' || req.method === 'HEAD')) {
      servePasteCode(new URL(req.url ?? '/', issuer), res);
      return;
    }
    handle(req, res);
  });

  let closing: Promise<void> | undefined;

  const basic = `Basic ${Buffer.from(
    `${encodeURIComponent(clients.confidential.clientId)}:${encodeURIComponent(clients.confidential.clientSecret)}`,
  ).toString('base64')}`;

  const server: TestAuthServer = {
    issuer,
    port,
    clients,
    endpoints,
    provider,
    stateFile,
    restored: saved !== undefined,
    get grantCounts() {
      return { ...grantCounts };
    },
    get grantSuccesses() {
      return { ...grantSuccesses };
    },
    requests,
    url,
    resetCounts() {
      Object.assign(grantCounts, zeroCounts());
      Object.assign(grantSuccesses, zeroCounts());
      requests.length = 0;
    },
    setTokenEndpointFault(hook) {
      faultHook = hook;
    },
    setSlowDownCount(n) {
      slowDownRemaining = n;
    },
    async introspect(token) {
      const res = await fetch(endpoints.introspection, {
        method: 'POST',
        headers: { authorization: basic, 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
        body: new URLSearchParams({ token }).toString(),
      });
      const body = await parseResponse(res);
      if (res.status !== 200 || !body || typeof body !== 'object') {
        throw new Error(`introspection failed: ${res.status} ${JSON.stringify(body)}`);
      }
      return body as IntrospectionResult;
    },
    async isActive(token) {
      return (await server.introspect(token)).active === true;
    },
    async revoke(token, tokenTypeHint) {
      const form = new URLSearchParams({ token });
      if (tokenTypeHint) form.set('token_type_hint', tokenTypeHint);
      const res = await fetch(endpoints.revocation, {
        method: 'POST',
        headers: { authorization: basic, 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
        body: form.toString(),
      });
      if (res.status !== 200) {
        throw new Error(`revocation failed: ${res.status} ${await res.text()}`);
      }
      await res.arrayBuffer().catch(() => undefined);
    },
    async userinfo(accessToken) {
      const res = await fetch(endpoints.userinfo, {
        headers: { authorization: `Bearer ${accessToken}`, accept: 'application/json' },
      });
      return { status: res.status, headers: res.headers, body: await parseResponse(res) };
    },
    close() {
      closed = true;
      closing ??= new Promise<void>((resolve) => {
        httpServer.close(() => {
          store.clear();
          resolve();
        });
        httpServer.closeAllConnections();
      });
      return closing;
    },
  };

  return server;
}

function servePasteCode(url: URL, res: ServerResponse): void {
  const code = url.searchParams.get('code');
  const state = url.searchParams.get('state');
  const error = url.searchParams.get('error');
  let html: string;
  if (code) {
    const value = state ? `${code}#${state}` : code;
    html = page(
      'Authorization code',
      `<p>Copy this code and paste it into the application:</p>
<p><code id="code">${escapeHtml(value)}</code></p>`,
    );
  } else {
    const description = url.searchParams.get('error_description') ?? '';
    html = page(
      'Authorization failed',
      `<p><code id="error">${escapeHtml(error ?? 'no code')}</code></p>
<p id="error-description">${escapeHtml(description)}</p>`,
    );
  }
  res.writeHead(200, {
    'content-type': 'text/html; charset=utf-8',
    'cache-control': 'no-store',
    'content-length': Buffer.byteLength(html),
  });
  res.end(html);
}

/**
 * The OpenID Connect parts Google, Microsoft and GitLab share, parameterised by each provider's
 * dialect: who may redeem a code (secret required or not), what a refresh does to the refresh
 * token (kept, rotated, or rotated with reuse revoking the grant), whether a refresh token is
 * issued at all, and how the id token's `iss` is written.
 */
import { clientCredentials, DEFAULT_USER, EmulationCore, type EmulatedUser, IdTokenSigner, isLoopbackRedirect, json, type ParsedRequest, type PendingCode, type ProviderEmulation, redirect, type Reply } from './common.js';

export const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';

export interface OidcDialect {
  name: string;
  alg: 'RS256' | 'ES256';
  clientId: string;
  clientSecret: string;
  user: EmulatedUser;
  accessTokenTtl: number;
  /** The token endpoint needs the client secret (Google's Desktop app clients). */
  secretRequired: boolean;
  /** What a refresh grant does to the refresh token. */
  refresh: 'kept' | 'rotate' | 'rotate-reuse-revokes';
  /** Check the authorization request; a Reply refuses it (after recording why). */
  checkAuthorization(q: URLSearchParams, core: EmulationCore): Reply | undefined;
  /** Whether this authorization request earns a refresh token. */
  offline(q: URLSearchParams): boolean;
  /** The id token's `iss` and extra claims for a request made under `tenant`. */
  idTokenIssuer(tenant: string | undefined): string;
  extraClaims?(user: EmulatedUser): Record<string, unknown>;
  /** Device interval, seconds. */
  deviceInterval: number;
}

export class OidcEmulation {
  readonly core: EmulationCore;
  readonly signer: IdTokenSigner;

  constructor(readonly d: OidcDialect, route: (req: ParsedRequest, self: OidcEmulation) => Reply | Promise<Reply>) {
    this.core = new EmulationCore(d.name, (req) => route(req, this));
    this.signer = new IdTokenSigner(d.alg);
  }

  /** GET authorize: the common checks (client, loopback redirect, state, PKCE S256), then the dialect's. */
  authorize(req: ParsedRequest, tenant?: string): Reply {
    const q = req.query;
    const d = this.d;
    if (q.get('client_id') !== d.clientId) return this.core.violation(`unknown client_id ${q.get('client_id')}`);
    const redirectUri = q.get('redirect_uri') ?? undefined;
    if (!isLoopbackRedirect(redirectUri)) return this.core.violation(`redirect_uri ${redirectUri} is not a registered loopback redirect`);
    const state = q.get('state');
    if (!state) return this.core.violation('no state in the authorization request');
    if (q.get('response_type') !== 'code') return this.core.violation('response_type is not code');
    if (!q.get('code_challenge') || q.get('code_challenge_method') !== 'S256') return this.core.violation('no PKCE S256 code_challenge');
    const refused = d.checkAuthorization(q, this.core);
    if (refused) return refused;
    const back = new URL(redirectUri!);
    back.searchParams.set('state', state);
    if (q.get('x_emulation_deny')) {
      back.searchParams.set('error', 'access_denied');
      return redirect(back.href);
    }
    const code = Math.random().toString(36).slice(2) + Date.now().toString(36);
    const nonce = q.get('nonce') ?? undefined;
    const pending: PendingCode = { clientId: d.clientId, redirectUri: redirectUri!, challenge: q.get('code_challenge')!, scope: q.get('scope') ?? '', user: d.user, used: false, offline: d.offline(q) };
    if (nonce !== undefined) pending.nonce = nonce;
    this.core.codes.set(code, pending);
    back.searchParams.set('code', code);
    if (tenant !== undefined) back.searchParams.set('x_tenant', tenant);
    return redirect(back.href);
  }

  /** POST token: authorization_code, refresh_token and device_code grants, standard 400 errors. */
  token(req: ParsedRequest, tenant?: string): Reply {
    const d = this.d;
    const p = req.params;
    if (req.method !== 'POST' || req.bodyType !== 'form') return this.core.violation('token request is not a form POST');
    const creds = clientCredentials(req);
    if (creds.id !== d.clientId) return json(401, { error: 'invalid_client' });
    if (d.secretRequired && creds.secret !== d.clientSecret) return json(401, { error: 'invalid_client', error_description: 'client_secret is missing or wrong' });
    if (p.grant_type === 'authorization_code') {
      const code = this.core.redeemCode(p, d.clientId);
      if ('status' in code) return code;
      return this.#issue(code.scope, code.user, code.offline, 'code-' + Math.random(), tenant, code.nonce);
    }
    if (p.grant_type === 'refresh_token') {
      const value = p.refresh_token;
      const known = value === undefined ? undefined : this.core.tokens.get(value);
      const rt = this.core.live(value, 'refresh');
      if (!rt) {
        // GitLab: presenting a refresh token that was already rotated away ends the whole grant.
        if (known && known.kind === 'refresh' && d.refresh === 'rotate-reuse-revokes') {
          this.core.violation('a rotated (already used) refresh token was presented again');
          this.core.revokeGrant(known.grant);
        }
        return json(400, { error: 'invalid_grant', error_description: 'the refresh token is invalid' });
      }
      if (d.refresh !== 'kept') rt.active = false;
      return this.#issue(rt.scope, rt.user, d.refresh !== 'kept', rt.grant, tenant, undefined, d.refresh === 'kept');
    }
    if (p.grant_type === DEVICE_GRANT) {
      const device = this.core.devices.get(p.device_code ?? '');
      if (!device) return json(400, { error: 'invalid_grant' });
      const now = Date.now();
      if (now >= device.expiresAt) return json(400, { error: 'expired_token' });
      if (device.lastPollAt !== undefined && now - device.lastPollAt < device.interval * 1000 - 50) {
        this.core.violation(`device polled after ${now - device.lastPollAt} ms, before the interval`);
        device.lastPollAt = now;
        return json(400, { error: 'slow_down' });
      }
      device.lastPollAt = now;
      if (device.state === 'denied') return json(400, { error: 'access_denied' });
      if (device.state === 'pending') return json(400, { error: 'authorization_pending' });
      this.core.devices.delete(p.device_code!);
      return this.#issue(device.scope, device.user, device.scope.split(' ').includes('offline_access') || d.name !== 'microsoft', 'device-' + now, tenant);
    }
    return json(400, { error: 'unsupported_grant_type' });
  }

  /** POST device authorization (RFC 8628 §3.1). */
  device(req: ParsedRequest, verificationUri: string): Reply {
    if (req.method !== 'POST') return json(405, { error: 'invalid_request' });
    const creds = clientCredentials(req);
    if (creds.id !== this.d.clientId) return json(401, { error: 'invalid_client' });
    const { deviceCode, device } = this.core.newDevice(this.d.clientId, req.params.scope ?? '', this.d.user, this.d.deviceInterval, 900);
    return json(200, { device_code: deviceCode, user_code: device.userCode, verification_uri: verificationUri, expires_in: 900, interval: this.d.deviceInterval });
  }

  /** RFC 7009 revocation: form `token=`; a refresh token ends its grant. */
  revoke(req: ParsedRequest): Reply {
    if (req.method !== 'POST' || req.bodyType !== 'form' || req.params.token === undefined) return this.core.violation('revocation is not an RFC 7009 form POST with token=');
    const t = this.core.tokens.get(req.params.token);
    if (t) {
      if (t.kind === 'refresh') this.core.revokeGrant(t.grant);
      else t.active = false;
    }
    return { status: 200 };
  }

  #issue(scope: string, user: EmulatedUser, withRefresh: boolean, grant: string, tenant: string | undefined, nonce?: string, keepRefresh = false): Reply {
    const d = this.d;
    const now = Date.now();
    const body: Record<string, unknown> = {
      access_token: this.core.issue('access', { clientId: d.clientId, user, scope, grant, expiresAt: now + d.accessTokenTtl * 1000 }),
      token_type: 'Bearer',
      expires_in: d.accessTokenTtl,
      scope,
    };
    if (withRefresh && !keepRefresh) body.refresh_token = this.core.issue('refresh', { clientId: d.clientId, user, scope, grant });
    if (scope.split(' ').includes('openid')) {
      const iat = Math.floor(now / 1000);
      body.id_token = this.signer.sign({
        iss: d.idTokenIssuer(tenant),
        sub: user.sub,
        aud: d.clientId,
        iat,
        exp: iat + 3600,
        ...(nonce !== undefined ? { nonce } : {}),
        email: user.email,
        preferred_username: user.login,
        ...(d.extraClaims?.(user) ?? {}),
      });
    }
    return json(200, body);
  }

  handle(): ProviderEmulation {
    const core = this.core;
    const d = this.d;
    return {
      get base() {
        return core.base;
      },
      get port() {
        return core.port;
      },
      clientId: d.clientId,
      clientSecret: d.clientSecret,
      user: d.user,
      violations: core.violations,
      get hits() {
        return { ...core.hits };
      },
      requests: core.requests,
      authorize: (url, o) => core.authorize(url, o?.deny),
      approveDevice: (code, o) => core.approveDevice(code, o?.deny),
      isActive: (t) => core.isActive(t),
      secrets: () => [...core.secrets(), d.clientSecret],
      close: () => core.close(),
    };
  }
}

export interface OidcEmulationOptions {
  clientId?: string;
  clientSecret?: string;
  user?: EmulatedUser;
  accessTokenTtl?: number;
  deviceInterval?: number;
  alg?: 'RS256' | 'ES256';
}

export function dialectDefaults(name: string, o: OidcEmulationOptions): Pick<OidcDialect, 'clientId' | 'clientSecret' | 'user' | 'accessTokenTtl' | 'deviceInterval'> {
  return {
    clientId: o.clientId ?? `${name}-client`,
    clientSecret: o.clientSecret ?? `${name}-secret-${Math.random().toString(36).slice(2)}`,
    user: o.user ?? DEFAULT_USER,
    accessTokenTtl: o.accessTokenTtl ?? 3600,
    deviceInterval: o.deviceInterval ?? 0.05,
  };
}

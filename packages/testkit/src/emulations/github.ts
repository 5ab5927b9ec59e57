/**
 * An emulated GitHub (github.com web endpoints and the REST API under /api/v3, as GitHub
 * Enterprise Server lays them out), enforcing GitHub's dialect:
 * - the token endpoint answers application/x-www-form-urlencoded unless the request has
 *   `Accept: application/json`; its errors (including device polling's authorization_pending,
 *   slow_down with a new interval, expired_token, access_denied) are HTTP 200 bodies;
 * - OAuth-app tokens have no expiry and no refresh token; with `expiringTokens` (GitHub App
 *   user tokens) they expire and the refresh token rotates;
 * - the web flow's code exchange needs the client secret (in the body); the device flow needs none;
 * - revocation only as `DELETE /applications/{client_id}/token` with Basic client_id:secret and a
 *   JSON body `{"access_token"}` (204; 404 when unknown); anything like RFC 7009 is a deviation;
 * - `GET /user` answers the `login`.
 */
import { bearer, clientCredentials, DEFAULT_USER, EmulationCore, type EmulatedUser, form, isLoopbackRedirect, json, type ParsedRequest, type ProviderEmulation, redirect, type Reply } from './common.js';

export interface GitHubEmulationOptions {
  clientId?: string;
  clientSecret?: string;
  user?: EmulatedUser;
  /** GitHub App user tokens: expire (8 h unless set) with a rotating refresh token. */
  expiringTokens?: boolean;
  accessTokenTtl?: number;
  /** Device interval, seconds (GitHub: 5). */
  deviceInterval?: number;
  /** Answer the first device poll with slow_down. */
  slowDownOnce?: boolean;
  /** Where the REST API lives: '/api/v3' (Enterprise Server layout, default) or '' (at the root, as api.github.com). */
  apiPrefix?: '/api/v3' | '';
}

const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';

export async function startGitHubEmulation(options: GitHubEmulationOptions = {}): Promise<ProviderEmulation> {
  const clientId = options.clientId ?? 'Iv1.emulatedgithub';
  const clientSecret = options.clientSecret ?? 'gh-secret-' + Math.random().toString(36).slice(2);
  const user = options.user ?? DEFAULT_USER;
  const interval = options.deviceInterval ?? 5;
  let slowDown = options.slowDownOnce ?? false;
  const core: EmulationCore = new EmulationCore('github', (req) => route(req));

  /** GitHub's token endpoint: form unless JSON is asked for, errors with HTTP 200. */
  const tokenReply = (req: ParsedRequest, body: Record<string, string | number>): Reply =>
    (req.headers.accept ?? '').includes('application/json') ? json(200, body) : form(200, body);

  const issueTokens = (req: ParsedRequest, scope: string, grant: string): Reply => {
    const expiring = options.expiringTokens === true;
    const ttl = options.accessTokenTtl ?? 8 * 3600;
    const access = core.issue('access', { clientId, user, scope, grant, ...(expiring ? { expiresAt: Date.now() + ttl * 1000 } : {}) }, expiring ? 'ghu_' : 'gho_');
    const body: Record<string, string | number> = { access_token: access, token_type: 'bearer', scope };
    if (expiring) {
      body.expires_in = ttl;
      body.refresh_token = core.issue('refresh', { clientId, user, scope, grant, expiresAt: Date.now() + 182 * 86400_000 }, 'ghr_');
      body.refresh_token_expires_in = 182 * 86400;
    }
    return tokenReply(req, body);
  };

  const route = (req: ParsedRequest): Reply => {
    const prefix = options.apiPrefix ?? '/api/v3';
    const api = req.path.startsWith(`${prefix}/`) ? req.path.slice(prefix.length) : undefined;
    if (req.method === 'GET' && req.path === '/login/oauth/authorize') return authorize(req);
    if (req.path === '/login/device/code') return deviceCode(req);
    if (req.path === '/login/oauth/access_token') return token(req);
    if (api === '/user') return userApi(req);
    if (api !== undefined && /^\/applications\/[^/]+\/token$/.test(api)) return revoke(req, decodeURIComponent(api.split('/')[2]!));
    if (/revoke/.test(req.path)) return core.violation(`${req.method} ${req.path}: GitHub has no RFC 7009 endpoint (use DELETE /applications/{client_id}/token)`, json(404, { message: 'Not Found' }));
    return json(404, { message: 'Not Found' });
  };

  const authorize = (req: ParsedRequest): Reply => {
    const q = req.query;
    if (q.get('client_id') !== clientId) return core.violation(`unknown client_id ${q.get('client_id')}`, json(404, { message: 'Not Found' }));
    const redirectUri = q.get('redirect_uri') ?? undefined;
    // GitHub: a loopback callback may use any port of the registered 127.0.0.1 URL.
    if (!isLoopbackRedirect(redirectUri) || new URL(redirectUri!).pathname !== '/callback') return core.violation(`redirect_uri ${redirectUri} does not match the registered http://127.0.0.1/callback`, json(400, { error: 'redirect_uri_mismatch' }));
    const state = q.get('state');
    if (!state) return core.violation('no state in the authorization request');
    const back = new URL(redirectUri!);
    if (q.get('x_emulation_deny')) {
      back.searchParams.set('error', 'access_denied');
      back.searchParams.set('state', state);
      return redirect(back.href);
    }
    const code = Math.random().toString(36).slice(2) + Date.now().toString(36);
    const challenge = q.get('code_challenge') ?? undefined;
    if (challenge !== undefined && q.get('code_challenge_method') !== 'S256') return core.violation('PKCE method other than S256');
    core.codes.set(code, { clientId, redirectUri: redirectUri!, ...(challenge !== undefined ? { challenge } : {}), scope: q.get('scope') ?? '', user, used: false, offline: false });
    back.searchParams.set('code', code);
    back.searchParams.set('state', state);
    return redirect(back.href);
  };

  const deviceCode = (req: ParsedRequest): Reply => {
    if (req.method !== 'POST') return json(404, { message: 'Not Found' });
    if (req.params.client_id !== clientId) return tokenReply(req, { error: 'unauthorized_client' });
    const { deviceCode: dc, device } = core.newDevice(clientId, req.params.scope ?? '', user, interval, 900);
    return tokenReply(req, { device_code: dc, user_code: device.userCode, verification_uri: `${core.base}/login/device`, expires_in: 900, interval });
  };

  const token = (req: ParsedRequest): Reply => {
    if (req.method !== 'POST') return json(404, { message: 'Not Found' });
    const p = req.params;
    const creds = clientCredentials(req);
    if (creds.id !== clientId) return tokenReply(req, { error: 'incorrect_client_credentials', error_description: 'The client_id and/or client_secret passed are incorrect.' });
    if (p.grant_type === DEVICE_GRANT) {
      const device = core.devices.get(p.device_code ?? '');
      if (!device) return tokenReply(req, { error: 'incorrect_device_code' });
      const now = Date.now();
      if (now >= device.expiresAt) return tokenReply(req, { error: 'expired_token' });
      if (slowDown) {
        slowDown = false;
        device.interval += 5;
        device.lastPollAt = now;
        return tokenReply(req, { error: 'slow_down', error_description: 'Too many requests have been made in the same timeframe.', interval: device.interval });
      }
      if (device.lastPollAt !== undefined && now - device.lastPollAt < device.interval * 1000 - 50) {
        core.violation(`device polled after ${now - device.lastPollAt} ms, before the interval of ${device.interval} s`);
        device.interval += 5;
        device.lastPollAt = now;
        return tokenReply(req, { error: 'slow_down', interval: device.interval });
      }
      device.lastPollAt = now;
      if (device.state === 'denied') return tokenReply(req, { error: 'access_denied' });
      if (device.state === 'pending') return tokenReply(req, { error: 'authorization_pending' });
      core.devices.delete(p.device_code!);
      return issueTokens(req, device.scope, 'device-' + now);
    }
    if (creds.secret !== clientSecret) {
      if (creds.via === 'basic') core.violation('client secret sent with HTTP Basic; GitHub documents client_secret as a body parameter');
      return tokenReply(req, { error: 'incorrect_client_credentials', error_description: 'The client_id and/or client_secret passed are incorrect.' });
    }
    if (p.grant_type === 'authorization_code' || (p.grant_type === undefined && p.code !== undefined)) {
      const code = core.redeemCode(p, clientId);
      if ('status' in code) return tokenReply(req, { error: 'bad_verification_code', error_description: 'The code passed is incorrect or expired.' });
      return issueTokens(req, code.scope, 'code-' + Date.now());
    }
    if (p.grant_type === 'refresh_token') {
      const rt = core.live(p.refresh_token, 'refresh');
      if (!rt) return tokenReply(req, { error: 'bad_refresh_token', error_description: 'The refresh token passed is incorrect or expired.' });
      // GitHub App user tokens: the refresh token rotates; the old one stops working.
      rt.active = false;
      return issueTokens(req, rt.scope, rt.grant);
    }
    return tokenReply(req, { error: 'unsupported_grant_type' });
  };

  const userApi = (req: ParsedRequest): Reply => {
    if (req.method !== 'GET') return json(404, { message: 'Not Found' });
    const t = core.live(bearer(req), 'access');
    if (!t) return json(401, { message: 'Bad credentials' });
    return json(200, { login: t.user.login, id: Number(t.user.sub), email: null });
  };

  const revoke = (req: ParsedRequest, pathClientId: string): Reply => {
    if (req.method !== 'DELETE') return core.violation(`${req.method} on /applications/{client_id}/token; GitHub revokes with DELETE`, json(404, { message: 'Not Found' }));
    if (!req.basic || req.basic.user !== clientId || req.basic.password !== clientSecret || pathClientId !== clientId) {
      return core.violation('revocation without Basic client_id:client_secret', json(401, { message: 'Requires authentication' }));
    }
    if (req.bodyType !== 'json' || req.params.access_token === undefined) return core.violation('revocation body is not JSON {"access_token": ...}', json(422, { message: 'Validation Failed' }));
    const t = core.tokens.get(req.params.access_token);
    if (!t || !t.active) return json(404, { message: 'Not Found' });
    core.revokeGrant(t.grant);
    return { status: 204 };
  };

  await core.listen();
  return {
    get base() {
      return core.base;
    },
    get port() {
      return core.port;
    },
    clientId,
    clientSecret,
    user,
    violations: core.violations,
    get hits() {
      return { ...core.hits };
    },
    requests: core.requests,
    authorize: (url, o) => core.authorize(url, o?.deny),
    approveDevice: (code, o) => core.approveDevice(code, o?.deny),
    isActive: (t) => core.isActive(t),
      secrets: () => [...core.secrets(), clientSecret],
    close: () => core.close(),
  };
}

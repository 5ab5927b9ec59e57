import { promises as fs } from 'node:fs';
import { createServer, request as httpRequest, Agent } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';

import * as oauth from 'oauth4webapi';
import { afterEach, describe, expect, it } from 'vitest';

import {
  createScriptedUser,
  ScriptedUserError,
  startTestAuthServer,
  type TestAuthServer,
  type TestAuthServerOptions,
} from './index.js';

const insecure = { [oauth.allowInsecureRequests]: true } as const;
const SCOPE = 'openid offline_access profile email';
const LOOPBACK_REDIRECT = 'http://127.0.0.1:49152/callback';

const servers: TestAuthServer[] = [];
const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
  await Promise.all(dirs.splice(0).map((d) => fs.rm(d, { recursive: true, force: true })));
});

async function tempStateFile(): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tk-'));
  dirs.push(dir);
  return path.join(dir, 'as-state.json');
}

async function start(options?: TestAuthServerOptions) {
  const server = await startTestAuthServer(options);
  servers.push(server);
  const issuer = new URL(server.issuer);
  const as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, insecure));
  return { server, as };
}

async function authUrl(
  as: oauth.AuthorizationServer,
  clientId: string,
  redirectUri: string,
  extra: Record<string, string> = {},
) {
  const verifier = oauth.generateRandomCodeVerifier();
  const state = oauth.generateRandomState();
  const url = new URL(as.authorization_endpoint!);
  url.search = new URLSearchParams({
    client_id: clientId,
    redirect_uri: redirectUri,
    response_type: 'code',
    scope: SCOPE,
    code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    ...extra,
  }).toString();
  return { url, verifier, state };
}

/** Full code+PKCE login with the native client; returns the token response. */
async function codeLogin(as: oauth.AuthorizationServer, user = createScriptedUser()) {
  const client: oauth.Client = { client_id: 'native' };
  const { url, verifier, state } = await authUrl(as, 'native', LOOPBACK_REDIRECT);
  const location = await user.authorize(url);
  const params = oauth.validateAuthResponse(as, client, new URL(location), state);
  const response = await oauth.authorizationCodeGrantRequest(
    as,
    client,
    oauth.None(),
    params,
    LOOPBACK_REDIRECT,
    verifier,
    insecure,
  );
  return oauth.processAuthorizationCodeResponse(as, client, response);
}

async function expectOAuthError(promise: Promise<unknown>, error: string) {
  try {
    await promise;
  } catch (err) {
    if (err instanceof oauth.ResponseBodyError || err instanceof oauth.AuthorizationResponseError) {
      expect(err.error).toBe(error);
      return err;
    }
    // 401 answers (invalid_client) carry a WWW-Authenticate challenge; oauth4webapi reports that.
    if (err instanceof oauth.WWWAuthenticateChallengeError) {
      expect(err.cause[0]?.parameters.error).toBe(error);
      return err;
    }
    throw err;
  }
  throw new Error(`expected OAuth error ${error}`);
}

describe('test authorization server', () => {
  it('serves discovery with the bound port as issuer and the expected endpoints', async () => {
    const { server, as } = await start();
    expect(server.issuer).toBe(`http://127.0.0.1:${server.port}`);
    expect(as.issuer).toBe(server.issuer);
    expect(as.token_endpoint).toBe(server.endpoints.token);
    expect(as.device_authorization_endpoint).toBe(server.endpoints.deviceAuthorization);
    expect(as.revocation_endpoint).toBe(server.endpoints.revocation);
    expect(as.introspection_endpoint).toBe(server.endpoints.introspection);
    expect(as.userinfo_endpoint).toBe(server.endpoints.userinfo);
    expect(as.code_challenge_methods_supported).toEqual(['S256']);
    expect(server.url('/paste-code')).toBe(server.clients.paste.redirectUri);
  });

  it('runs code + PKCE for the native client on any loopback port, userinfo, rotating refresh', async () => {
    const { server, as } = await start();
    const client: oauth.Client = { client_id: 'native' };
    const user = createScriptedUser();
    const { url, verifier, state } = await authUrl(as, 'native', LOOPBACK_REDIRECT);

    const location = new URL(await user.authorize(url, { login: 'alice' }));
    expect(location.origin + location.pathname).toBe(LOOPBACK_REDIRECT);
    expect(location.searchParams.get('state')).toBe(state);
    expect(location.searchParams.get('iss')).toBe(server.issuer);
    expect(location.searchParams.get('code')).toBeTruthy();

    const params = oauth.validateAuthResponse(as, client, location, state);
    const tokens = await oauth.processAuthorizationCodeResponse(
      as,
      client,
      await oauth.authorizationCodeGrantRequest(as, client, oauth.None(), params, LOOPBACK_REDIRECT, verifier, insecure),
    );
    expect(tokens.token_type.toLowerCase()).toBe('bearer');
    expect(tokens.expires_in).toBe(3600);
    expect(tokens.refresh_token).toBeTruthy();
    expect(tokens.scope?.split(' ').sort()).toEqual(SCOPE.split(' ').sort());

    const info = await server.userinfo(tokens.access_token);
    expect(info.status).toBe(200);
    expect(info.body).toMatchObject({ sub: 'alice', email: 'alice@example.test' });

    // Refresh rotates; the old refresh token is then rejected.
    const refreshed = await oauth.processRefreshTokenResponse(
      as,
      client,
      await oauth.refreshTokenGrantRequest(as, client, oauth.None(), tokens.refresh_token!, insecure),
    );
    expect(refreshed.refresh_token).toBeTruthy();
    expect(refreshed.refresh_token).not.toBe(tokens.refresh_token);
    expect(refreshed.access_token).not.toBe(tokens.access_token);
    expect((await server.userinfo(refreshed.access_token)).status).toBe(200);

    await expectOAuthError(
      oauth
        .refreshTokenGrantRequest(as, client, oauth.None(), tokens.refresh_token!, insecure)
        .then((r) => oauth.processRefreshTokenResponse(as, client, r)),
      'invalid_grant',
    );
    // oidc-provider treats reuse of a rotated refresh token as theft and revokes the whole grant.
    expect(await server.isActive(refreshed.refresh_token!)).toBe(false);
    expect(await server.isActive(refreshed.access_token)).toBe(false);

    expect(server.grantCounts).toEqual({ authorization_code: 1, refresh_token: 2, device_code: 0, other: 0 });
    expect(server.grantSuccesses).toEqual({ authorization_code: 1, refresh_token: 1, device_code: 0, other: 0 });
  });

  it('treats a reused authorization code as invalid_grant and revokes what it issued', async () => {
    const { server, as } = await start();
    const client: oauth.Client = { client_id: 'native' };
    const { url, verifier, state } = await authUrl(as, 'native', LOOPBACK_REDIRECT);
    const params = oauth.validateAuthResponse(as, client, new URL(await createScriptedUser().authorize(url)), state);
    const exchange = () =>
      oauth
        .authorizationCodeGrantRequest(as, client, oauth.None(), params, LOOPBACK_REDIRECT, verifier, insecure)
        .then((r) => oauth.processAuthorizationCodeResponse(as, client, r));
    const tokens = await exchange();
    await expectOAuthError(exchange(), 'invalid_grant');
    expect(await server.isActive(tokens.refresh_token!)).toBe(false);
    expect(server.grantCounts.authorization_code).toBe(2);
    expect(server.grantSuccesses.authorization_code).toBe(1);
  });

  it('keeps the refresh token when rotation is off', async () => {
    const { as } = await start({ rotateRefreshToken: false });
    const client: oauth.Client = { client_id: 'native' };
    const tokens = await codeLogin(as);
    for (let i = 0; i < 2; i++) {
      const refreshed = await oauth.processRefreshTokenResponse(
        as,
        client,
        await oauth.refreshTokenGrantRequest(as, client, oauth.None(), tokens.refresh_token!, insecure),
      );
      expect(refreshed.refresh_token ?? tokens.refresh_token).toBe(tokens.refresh_token);
    }
  });

  it('supports the confidential client with client_secret_basic', async () => {
    const { server, as } = await start();
    const { clientId, clientSecret } = server.clients.confidential;
    const client: oauth.Client = { client_id: clientId };
    const { url, verifier, state } = await authUrl(as, clientId, 'http://127.0.0.1:8123/callback');
    const location = await createScriptedUser().authorize(url);
    const params = oauth.validateAuthResponse(as, client, new URL(location), state);
    const tokens = await oauth.processAuthorizationCodeResponse(
      as,
      client,
      await oauth.authorizationCodeGrantRequest(
        as,
        client,
        oauth.ClientSecretBasic(clientSecret),
        params,
        'http://127.0.0.1:8123/callback',
        verifier,
        insecure,
      ),
    );
    expect(tokens.refresh_token).toBeTruthy();

    await expectOAuthError(
      oauth
        .refreshTokenGrantRequest(as, client, oauth.ClientSecretBasic('wrong'), tokens.refresh_token!, insecure)
        .then((r) => oauth.processRefreshTokenResponse(as, client, r)),
      'invalid_client',
    );
  });

  it('does not request the loopback redirect itself; followRedirect does', async () => {
    const { as } = await start();
    const hits: string[] = [];
    const callback = createServer((req, res) => {
      hits.push(req.url ?? '');
      res.writeHead(200, { 'content-type': 'text/plain' }).end('callback ok');
    });
    await new Promise<void>((resolve) => callback.listen(0, '127.0.0.1', resolve));
    try {
      const redirectUri = `http://127.0.0.1:${(callback.address() as AddressInfo).port}/callback`;
      const user = createScriptedUser();
      const { url } = await authUrl(as, 'native', redirectUri);
      const location = await user.authorize(url);
      expect(location.startsWith(`${redirectUri}?`)).toBe(true);
      expect(hits).toEqual([]);
      const followed = await user.followRedirect(location);
      expect(followed).toMatchObject({ status: 200, body: 'callback ok' });
      expect(hits).toHaveLength(1);
    } finally {
      callback.closeAllConnections();
      await new Promise((resolve) => callback.close(resolve));
    }
  });

  it('reuses the session for a second login of the same user', async () => {
    const { server, as } = await start();
    const user = createScriptedUser();
    await codeLogin(as, user);
    const before = server.requests.length;
    await codeLogin(as, user);
    const posts = server.requests.slice(before).filter((r) => r.method === 'POST' && r.path.startsWith('/interaction/'));
    expect(posts).toHaveLength(1); // consent only: offline_access forces prompt=consent, login is remembered
  });

  it('denies a code flow with access_denied (at login and at consent)', async () => {
    const { server, as } = await start();
    const client: oauth.Client = { client_id: 'native' };
    for (const deny of [true, 'consent'] as const) {
      const { url, state } = await authUrl(as, 'native', LOOPBACK_REDIRECT);
      const location = new URL(await createScriptedUser().authorize(url, { deny }));
      expect(location.searchParams.get('error')).toBe('access_denied');
      expect(location.searchParams.get('state')).toBe(state);
      expect(location.searchParams.get('iss')).toBe(server.issuer);
      await expectOAuthError(Promise.resolve().then(() => oauth.validateAuthResponse(as, client, location, state)), 'access_denied');
    }
    expect(server.grantCounts.authorization_code).toBe(0);
  });

  it('answers authorization requests it cannot redirect with a JSON error', async () => {
    const { as } = await start();
    const { url } = await authUrl(as, 'native', 'https://evil.example/callback');
    const err = await createScriptedUser()
      .authorize(url)
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(err).toBeInstanceOf(ScriptedUserError);
    const e = err as ScriptedUserError;
    expect(e.status).toBe(400);
    expect(JSON.parse(e.body)).toMatchObject({ error: 'invalid_redirect_uri' });
  });

  it('requires PKCE', async () => {
    const { as } = await start();
    const url = new URL(as.authorization_endpoint!);
    url.search = new URLSearchParams({
      client_id: 'native',
      redirect_uri: LOOPBACK_REDIRECT,
      response_type: 'code',
      scope: 'openid',
      state: 's',
    }).toString();
    const location = new URL(await createScriptedUser().authorize(url));
    expect(location.searchParams.get('error')).toBe('invalid_request');
  });

  it('shows code#state on the paste page for the paste client', async () => {
    const { server, as } = await start();
    const client: oauth.Client = { client_id: 'paste' };
    const redirectUri = server.clients.paste.redirectUri;
    const user = createScriptedUser();
    const { url, verifier, state } = await authUrl(as, 'paste', redirectUri);
    const location = await user.authorize(url);
    expect(location.startsWith(`${redirectUri}?`)).toBe(true);

    const pasted = await user.readPastedCode(location);
    const [code, pastedState] = pasted.split('#');
    expect(code).toBe(new URL(location).searchParams.get('code'));
    expect(pastedState).toBe(state);
    const page = await user.followRedirect(location);
    expect(page.body).toContain(`${code}#${state}`);

    const params = new URLSearchParams({ code: code!, state: pastedState!, iss: server.issuer });
    const validated = oauth.validateAuthResponse(as, client, params, state);
    const tokens = await oauth.processAuthorizationCodeResponse(
      as,
      client,
      await oauth.authorizationCodeGrantRequest(as, client, oauth.None(), validated, redirectUri, verifier, insecure),
    );
    expect(tokens.refresh_token).toBeTruthy();
  });

  it('runs the device flow with a fractional interval and one slow_down', async () => {
    const { server, as } = await start({ deviceInterval: 0.05, slowDownCount: 1 });
    const client: oauth.Client = { client_id: 'native' };
    const device = await oauth.processDeviceAuthorizationResponse(
      as,
      client,
      await oauth.deviceAuthorizationRequest(as, client, oauth.None(), { scope: SCOPE }, insecure),
    );
    expect(device.interval).toBe(0.05);
    expect(device.expires_in).toBe(600);
    expect(device.verification_uri).toBe(server.endpoints.verification);

    const poll = () =>
      oauth
        .deviceCodeGrantRequest(as, client, oauth.None(), device.device_code, insecure)
        .then((r) => oauth.processDeviceCodeResponse(as, client, r));

    await expectOAuthError(poll(), 'slow_down');
    await expectOAuthError(poll(), 'authorization_pending');

    await createScriptedUser().approveDevice(server.issuer, device.user_code, { login: 'bob' });
    const tokens = await poll();
    expect(tokens.refresh_token).toBeTruthy();
    expect((await server.userinfo(tokens.access_token)).body).toMatchObject({ sub: 'bob' });

    // The device code is single-use.
    await expectOAuthError(poll(), 'invalid_grant');
    expect(server.grantCounts.device_code).toBe(4);
    expect(server.grantSuccesses.device_code).toBe(1);
  });

  it('omits interval unless configured, and slowDownOnce works', async () => {
    const { as } = await start({ slowDownOnce: true });
    const client: oauth.Client = { client_id: 'native' };
    const response = await oauth.deviceAuthorizationRequest(as, client, oauth.None(), { scope: 'openid' }, insecure);
    const device = (await response.json()) as Record<string, unknown>;
    expect(device).not.toHaveProperty('interval');
    const poll = () =>
      oauth
        .deviceCodeGrantRequest(as, client, oauth.None(), device.device_code as string, insecure)
        .then((r) => oauth.processDeviceCodeResponse(as, client, r));
    await expectOAuthError(poll(), 'slow_down');
    await expectOAuthError(poll(), 'authorization_pending');
  });

  it('denies a device flow (abort on the confirm page, and at consent)', async () => {
    const { server, as } = await start({ deviceInterval: 0.05 });
    const client: oauth.Client = { client_id: 'native' };
    for (const deny of [true, 'consent'] as const) {
      const device = await oauth.processDeviceAuthorizationResponse(
        as,
        client,
        await oauth.deviceAuthorizationRequest(as, client, oauth.None(), { scope: SCOPE }, insecure),
      );
      await createScriptedUser().approveDevice(server.issuer, device.user_code, { deny });
      await expectOAuthError(
        oauth
          .deviceCodeGrantRequest(as, client, oauth.None(), device.device_code, insecure)
          .then((r) => oauth.processDeviceCodeResponse(as, client, r)),
        'access_denied',
      );
    }
  });

  it('rejects an unknown user code', async () => {
    const { server } = await start();
    await expect(createScriptedUser().approveDevice(server.issuer, 'BCDF-GHJK')).rejects.toBeInstanceOf(ScriptedUserError);
  });

  it('revoking the refresh token revokes the grant (introspection shows inactive)', async () => {
    const { server, as } = await start();
    const client: oauth.Client = { client_id: 'native' };
    const tokens = await codeLogin(as);
    expect(await server.introspect(tokens.refresh_token!)).toMatchObject({ active: true, client_id: 'native' });
    expect(await server.isActive(tokens.access_token)).toBe(true);

    // The owning client revokes it through oauth4webapi.
    await oauth.processRevocationResponse(
      await oauth.revocationRequest(as, client, oauth.None(), tokens.refresh_token!, insecure),
    );
    expect(await server.introspect(tokens.refresh_token!)).toEqual({ active: false });
    expect(await server.isActive(tokens.access_token)).toBe(false);
    expect((await server.userinfo(tokens.access_token)).status).toBe(401);
    await expectOAuthError(
      oauth
        .refreshTokenGrantRequest(as, client, oauth.None(), tokens.refresh_token!, insecure)
        .then((r) => oauth.processRefreshTokenResponse(as, client, r)),
      'invalid_grant',
    );

    // server.revoke() can revoke any client's token (server-side revocation in tests).
    const second = await codeLogin(as);
    await server.revoke(second.refresh_token!, 'refresh_token');
    expect(await server.isActive(second.refresh_token!)).toBe(false);
  });

  it('expires access tokens exactly at their TTL', async () => {
    const { server, as } = await start({ accessTokenTtl: 1 });
    const tokens = await codeLogin(as);
    expect(tokens.expires_in).toBe(1);
    expect((await server.userinfo(tokens.access_token)).status).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const expired = await server.userinfo(tokens.access_token);
    expect(expired.status).toBe(401);
    expect(expired.headers.get('www-authenticate')).toContain('invalid_token');
  });

  it('injects token endpoint faults', async () => {
    const { server, as } = await start();
    const client: oauth.Client = { client_id: 'native' };
    const tokens = await codeLogin(as);
    const seen: string[] = [];
    server.setTokenEndpointFault((req) => {
      seen.push(`${req.countedAs}#${req.attempt}`);
      if (req.countedAs === 'refresh_token' && req.attempt === 1) {
        return { status: 503, body: 'upstream down', headers: { 'retry-after': '1' } };
      }
      if (req.countedAs === 'refresh_token' && req.attempt === 2) {
        return { status: 400, body: { error: 'invalid_grant', error_description: 'injected' } };
      }
      return undefined;
    });
    const refresh = () => oauth.refreshTokenGrantRequest(as, client, oauth.None(), tokens.refresh_token!, insecure);

    const first = await refresh();
    expect(first.status).toBe(503);
    expect(first.headers.get('retry-after')).toBe('1');
    expect(await first.text()).toBe('upstream down');
    await expectOAuthError(refresh().then((r) => oauth.processRefreshTokenResponse(as, client, r)), 'invalid_grant');
    const ok = await oauth.processRefreshTokenResponse(as, client, await refresh());
    expect(ok.access_token).toBeTruthy();
    expect(seen).toEqual(['refresh_token#1', 'refresh_token#2', 'refresh_token#3']);
    expect(server.grantCounts.refresh_token).toBe(3);
    expect(server.grantSuccesses.refresh_token).toBe(1);

    server.setTokenEndpointFault(() => ({ dropConnection: true }));
    await expect(refresh()).rejects.toThrow();
    server.setTokenEndpointFault(undefined);
  });

  it('offline_access without prompt=consent: refresh token by default, none in stock mode', async () => {
    const { as } = await start({ requirePromptConsentForOfflineAccess: true });
    const tokens = await codeLogin(as);
    expect(tokens.refresh_token).toBeUndefined();
    expect(tokens.scope?.split(' ')).not.toContain('offline_access');
  });

  it('keeps more than 1000 artifacts (Map-backed storage)', async () => {
    const { server, as } = await start();
    const client: oauth.Client = { client_id: 'native' };
    const request = () =>
      oauth
        .deviceAuthorizationRequest(as, client, oauth.None(), { scope: 'openid' }, insecure)
        .then((r) => oauth.processDeviceAuthorizationResponse(as, client, r));
    const first = await request();
    for (let i = 0; i < 1100; i += 50) await Promise.all(Array.from({ length: 50 }, request));
    await createScriptedUser().approveDevice(server.issuer, first.user_code);
    const tokens = await oauth.processDeviceCodeResponse(
      as,
      client,
      await oauth.deviceCodeGrantRequest(as, client, oauth.None(), first.device_code, insecure),
    );
    expect(tokens.access_token).toBeTruthy();
  });

  it('close() resolves promptly with idle keep-alive connections open', async () => {
    const server = await startTestAuthServer();
    const agent = new Agent({ keepAlive: true });
    await new Promise<void>((resolve, reject) => {
      httpRequest(server.url('/.well-known/openid-configuration'), { agent }, (res) => {
        res.resume();
        res.on('end', resolve);
      })
        .on('error', reject)
        .end();
    });
    const started = Date.now();
    await server.close();
    await server.close(); // idempotent
    expect(Date.now() - started).toBeLessThan(1000);
    agent.destroy();
    await expect(fetch(server.issuer)).rejects.toThrow();
  });
});

describe('persistence across a restart (stateFile)', () => {
  const client: oauth.Client = { client_id: 'native' };
  const refreshWith = (as: oauth.AuthorizationServer, refreshToken: string) =>
    oauth
      .refreshTokenGrantRequest(as, client, oauth.None(), refreshToken, insecure)
      .then((r) => oauth.processRefreshTokenResponse(as, client, r));

  it('a server started again on the same state file keeps its port, keys, secrets and every token', async () => {
    const stateFile = await tempStateFile();
    const { server: first, as } = await start({ stateFile, rotateRefreshToken: true });
    expect(first.restored).toBe(false);
    expect(first.stateFile).toBe(stateFile);
    const user = createScriptedUser();
    const tokens = await codeLogin(as, user);
    // Rotate once before the "crash": the first refresh token is consumed, the second is live.
    const rotated = await refreshWith(as, tokens.refresh_token!);
    expect(rotated.refresh_token).not.toBe(tokens.refresh_token);
    const jwksBefore = await (await fetch(first.endpoints.jwks)).json();
    // Every write was already on disk; close() (like a kill) must not empty the file.
    const onDisk = await fs.readFile(stateFile, 'utf8');
    await first.close();
    expect(await fs.readFile(stateFile, 'utf8')).toBe(onDisk);
    await expect(fetch(first.issuer)).rejects.toThrow();

    const { server: second, as: as2 } = await start({ stateFile, rotateRefreshToken: true });
    expect(second.restored).toBe(true);
    expect(second.port).toBe(first.port);
    expect(second.issuer).toBe(first.issuer);
    expect(second.clients.confidential.clientSecret).toBe(first.clients.confidential.clientSecret);
    expect(await (await fetch(second.endpoints.jwks)).json()).toEqual(jwksBefore);

    // Tokens issued before the restart still work: access token at userinfo, refresh token at /token.
    expect((await second.userinfo(rotated.access_token)).status).toBe(200);
    expect(await second.isActive(rotated.refresh_token!)).toBe(true);
    const after = await refreshWith(as2, rotated.refresh_token!);
    expect(after.refresh_token).not.toBe(rotated.refresh_token);
    expect((await second.userinfo(after.access_token)).status).toBe(200);
    // The consumed state survived too: replaying the refresh token consumed before the restart is
    // refused (and, per oidc-provider's rotation policy, revokes the grant).
    await expectOAuthError(refreshWith(as2, tokens.refresh_token!), 'invalid_grant');

    // The login session (cookie keys + Session entry) survived: a second login needs consent only.
    const before = second.requests.length;
    await codeLogin(as2, user);
    const posts = second.requests.slice(before).filter((r) => r.method === 'POST' && r.path.startsWith('/interaction/'));
    expect(posts).toHaveLength(1);
  });

  it('without a state file nothing survives: a new server on the same port knows no tokens', async () => {
    const { server: first, as } = await start();
    const tokens = await codeLogin(as);
    await first.close();
    // (also lets fetch's pool see its keep-alive connections to the old server closed)
    await expect(fetch(first.issuer)).rejects.toThrow();
    const { server: second } = await start({ port: first.port });
    expect(second.issuer).toBe(first.issuer);
    expect(second.restored).toBe(false);
    expect((await second.userinfo(tokens.access_token)).status).toBe(401);
    expect(await second.isActive(tokens.refresh_token!)).toBe(false);
  });

  it('rejects a file that is not a state file', async () => {
    const stateFile = await tempStateFile();
    await fs.writeFile(stateFile, JSON.stringify({ hello: 'world' }));
    await expect(startTestAuthServer({ stateFile })).rejects.toThrow(/not a test authorization server state file/);
  });

  it('passThrough holds a token request, then the real endpoint answers it', async () => {
    const { server, as } = await start();
    const tokens = await codeLogin(as);
    const held: number[] = [];
    server.setTokenEndpointFault((req) => {
      if (req.countedAs !== 'refresh_token') return undefined;
      held.push(req.attempt);
      return { passThrough: true, delayMs: 300 };
    });
    const started = Date.now();
    const refreshed = await refreshWith(as, tokens.refresh_token!);
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    expect(held).toEqual([1]);
    expect(server.grantSuccesses.refresh_token).toBe(1);
    expect((await server.userinfo(refreshed.access_token)).status).toBe(200);
  });

  it('reports each answered request to onRequest', async () => {
    const seen: string[] = [];
    const { as } = await start({ onRequest: (r) => seen.push(`${r.method} ${r.path} ${r.status}${r.grantType ? ` ${r.grantType}` : ''}`) });
    await codeLogin(as);
    expect(seen).toContain('GET /.well-known/openid-configuration 200');
    expect(seen).toContain('POST /token 200 authorization_code');
  });
});

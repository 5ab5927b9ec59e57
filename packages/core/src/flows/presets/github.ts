/**
 * GitHub (OAuth apps and GitHub Apps' user tokens). Not OpenID Connect: no discovery, no id token.
 * - The token endpoint answers a form unless asked for JSON (`accept_json`).
 * - Device polling errors (authorization_pending, slow_down with a new interval, expired_token,
 *   access_denied) arrive as HTTP 200 bodies: OAuthProvider turns them into the 400 of RFC 6749.
 * - OAuth-app tokens carry no expiry and no refresh token: stored with a one-year lifetime (GitHub
 *   deletes tokens unused for a year). GitHub-App user tokens expire (8 h) and rotate their
 *   refresh token, which the generic refresh keeps.
 * - Revocation is `DELETE /applications/{client_id}/token` on the API with Basic client_id:secret
 *   and a JSON body `{"access_token": …}`; without the secret there is no way to revoke.
 * - Identity: `GET /user` on the API → `login`.
 * `--issuer` is a GitHub Enterprise Server base URL (API under /api/v3).
 */
import type { ProviderConfig } from '../../config/config-file.js';
import type { OAuthProvider, ProviderQuirks, RevocationResult } from '../oauth-provider.js';
import { describeUpstream } from '../oauth-provider.js';
import { loopbackRedirect, type ProviderPreset, trimBase, withPresetDefaults } from './preset.js';

const GITHUB = 'https://github.com';
const GITHUB_API = 'https://api.github.com';
const YEAR_SECONDS = 365 * 24 * 3600;

/** The REST API's base for a GitHub web base URL (github.com or an Enterprise Server). */
export function githubApiBase(web: string): string {
  return web === GITHUB ? GITHUB_API : `${web}/api/v3`;
}

function webBase(config: ProviderConfig): string {
  return trimBase(config.issuer ?? GITHUB);
}

const API_HEADERS = { accept: 'application/vnd.github+json', 'x-github-api-version': '2022-11-28', 'user-agent': 'credproxy' };

async function revoke(provider: OAuthProvider, apiBases: readonly string[], token: { access_token: string }, signal?: AbortSignal): Promise<RevocationResult> {
  const config = provider.config;
  if (!provider.hasSecret()) {
    return {
      revoked: false,
      reason: `GitHub revokes a token only with the app's client secret, and ${config.name} has none configured — the token was forgotten here but still works at GitHub until you revoke it at https://github.com/settings/applications (or add --client-secret-env)`,
    };
  }
  const secret = provider.clientSecret()!;
  const basic = Buffer.from(`${config.client_id}:${secret}`).toString('base64');
  try {
    // The first base that knows the route answers; 404 from all of them: the token is gone.
    for (const apiBase of apiBases) {
      const url = `${apiBase}/applications/${encodeURIComponent(config.client_id)}/token`;
      const response = await provider.fetch(
        url,
        { method: 'DELETE', headers: { ...API_HEADERS, authorization: `Basic ${basic}`, 'content-type': 'application/json' }, body: JSON.stringify({ access_token: token.access_token }) },
        signal,
      );
      await response.body?.cancel();
      if (response.status === 204) return { revoked: true };
      if (response.status !== 404) return { revoked: false, reason: `GitHub answered HTTP ${response.status} to the revocation — check the client secret; the local copy was deleted anyway` };
    }
    return { revoked: true, reason: 'GitHub no longer knew the token (already revoked or expired)' };
  } catch (err) {
    return { revoked: false, reason: `GitHub could not be reached to revoke (${describeUpstream(err, [token.access_token, secret])}); the local copy was deleted anyway` };
  }
}

/**
 * The API bases to try, in order: `revocation_endpoint` when set; api.github.com for github.com;
 * for any other base (Enterprise Server, an emulation) its `/api/v3` and then the base itself,
 * which is where an API served at the root answers.
 */
function apiBases(config: ProviderConfig): string[] {
  if (config.revocation_endpoint !== undefined) return [trimBase(config.revocation_endpoint)];
  const web = webBase(config);
  return web === GITHUB ? [GITHUB_API] : [githubApiBase(web), web];
}

async function identity(provider: OAuthProvider, urls: readonly string[], token: { access_token: string }, signal?: AbortSignal): Promise<string | undefined> {
  for (const url of urls) {
    const response = await provider.fetch(url, { headers: { ...API_HEADERS, authorization: `Bearer ${token.access_token}` } }, signal);
    if (response.status === 404) {
      await response.body?.cancel();
      continue;
    }
    if (!response.ok) {
      await response.body?.cancel();
      return undefined;
    }
    const user = (await response.json()) as { login?: unknown };
    return typeof user.login === 'string' ? user.login : undefined;
  }
  return undefined;
}

export const githubPreset: ProviderPreset = {
  name: 'github',
  title: 'GitHub (OAuth app or GitHub App)',
  flows: ['device_code', 'pkce_redirect'],
  defaultFlow: 'device_code',
  defaultScopes: ['repo', 'read:org'],
  clientSecret: 'optional',
  secretNote: 'needed for the loopback web flow of an OAuth app and for revocation at logout; the device flow needs none',
  secretNeededFor: ['pkce_redirect'],
  issuerNote: 'a GitHub Enterprise Server URL (https://HOST); default https://github.com',
  revocation: 'DELETE /applications/{client_id}/token with the client secret (without it: forgotten locally)',
  identity: 'GET /user → login',
  docs: [
    'https://docs.github.com/en/apps/oauth-apps/building-oauth-apps/authorizing-oauth-apps',
    'https://docs.github.com/en/rest/apps/oauth-applications#delete-an-app-token',
    'https://docs.github.com/en/apps/creating-github-apps/authenticating-with-a-github-app/refreshing-user-access-tokens',
  ],
  registration(name) {
    return [
      'GitHub needs an OAuth app of your own (credproxy ships no client id):',
      '  1. open https://github.com/settings/applications/new (Settings → Developer settings → OAuth Apps → New OAuth App)',
      `  2. Homepage URL: anything (e.g. https://github.com); Authorization callback URL: ${loopbackRedirect()} (GitHub accepts any port on 127.0.0.1)`,
      '  3. tick "Enable Device Flow", then Register application and copy the Client ID',
      '  4. optional: "Generate a new client secret", export it (e.g. GITHUB_OAUTH_SECRET) where `credproxy serve` runs — needed for the web flow and for revocation',
      `then run: credproxy provider add ${name} --preset github --client-id CLIENT_ID [--client-secret-env GITHUB_OAUTH_SECRET]`,
      `and: credproxy login ${name}`,
    ].join('\n');
  },
  resolve(config) {
    const out = withPresetDefaults(config, githubPreset);
    const web = webBase(config);
    out.authorization_endpoint ??= `${web}/login/oauth/authorize`;
    out.token_endpoint ??= `${web}/login/oauth/access_token`;
    out.device_authorization_endpoint ??= `${web}/login/device/code`;
    if (web === GITHUB) out.userinfo_endpoint ??= `${GITHUB_API}/user`;
    out.accept_json ??= true;
    // Not a discovery issuer: the endpoints above are derived from it. The revocation base is
    // not an RFC 7009 endpoint, so it stays out of the metadata (the quirk below uses it).
    delete out.issuer;
    delete out.revocation_endpoint;
    return out;
  },
  quirks(config): ProviderQuirks {
    const bases = apiBases(config);
    const identityUrls = config.userinfo_endpoint !== undefined ? [config.userinfo_endpoint] : bases.map((b) => `${b}/user`);
    return {
      nonExpiringLifetimeSeconds: YEAR_SECONDS,
      clientSecretInBody: true,
      revoke: (provider, token, signal) => revoke(provider, bases, token, signal),
      identity: (provider, token, signal) => identity(provider, identityUrls, token, signal),
    };
  },
};

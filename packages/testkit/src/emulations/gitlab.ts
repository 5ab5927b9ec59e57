/**
 * An emulated GitLab (gitlab.com or self-managed), enforcing its dialect:
 * - OIDC discovery at /.well-known/openid-configuration, which does not list the device endpoint;
 *   the device authorization grant is at /oauth/authorize_device;
 * - the redirect URI must equal the registered one exactly, port included (so the client needs
 *   one fixed callback port);
 * - access tokens expire after 2 h; every refresh rotates the refresh token, and presenting an
 *   already rotated one revokes the whole grant;
 * - RFC 7009 revocation at /oauth/revoke.
 */
import { json, type ProviderEmulation } from './common.js';
import { dialectDefaults, OidcEmulation, type OidcEmulationOptions } from './oidc.js';

export async function startGitLabEmulation(options: OidcEmulationOptions & { redirectUri: string }): Promise<ProviderEmulation> {
  let base = '';
  const emu = new OidcEmulation(
    {
      name: 'gitlab',
      alg: options.alg ?? 'RS256',
      ...dialectDefaults('gitlab', { accessTokenTtl: 7200, ...options }),
      secretRequired: false,
      refresh: 'rotate-reuse-revokes',
      checkAuthorization(q, core) {
        if (q.get('redirect_uri') !== options.redirectUri) {
          return core.violation(`redirect_uri ${q.get('redirect_uri')} is not the registered ${options.redirectUri} (GitLab matches it exactly, port included)`, json(400, { error: 'invalid_redirect_uri' }));
        }
        return undefined;
      },
      offline: () => true,
      idTokenIssuer: () => base,
    },
    (req, self) => {
      if (req.path === '/.well-known/openid-configuration') {
        return json(200, {
          issuer: base,
          authorization_endpoint: `${base}/oauth/authorize`,
          token_endpoint: `${base}/oauth/token`,
          revocation_endpoint: `${base}/oauth/revoke`,
          introspection_endpoint: `${base}/oauth/introspect`,
          userinfo_endpoint: `${base}/oauth/userinfo`,
          jwks_uri: `${base}/oauth/discovery/keys`,
          scopes_supported: ['api', 'read_api', 'read_user', 'openid', 'profile', 'email'],
          response_types_supported: ['code'],
          grant_types_supported: ['authorization_code', 'password', 'client_credentials', 'device_code', 'refresh_token'],
          token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
          subject_types_supported: ['public'],
          id_token_signing_alg_values_supported: ['RS256'],
          code_challenge_methods_supported: ['plain', 'S256'],
        });
      }
      if (req.path === '/oauth/discovery/keys') return json(200, self.signer.jwks);
      if (req.path === '/oauth/authorize' && req.method === 'GET') return self.authorize(req);
      if (req.path === '/oauth/token') return self.token(req);
      if (req.path === '/oauth/authorize_device') return self.device(req, `${base}/oauth/device`);
      if (req.path === '/oauth/revoke') return self.revoke(req);
      return json(404, { error: 'not_found' });
    },
  );
  await emu.core.listen();
  base = emu.core.base;
  return emu.handle();
}

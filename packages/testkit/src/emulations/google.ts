/**
 * An emulated Google (accounts.google.com discovery, oauth2.googleapis.com token and revoke),
 * enforcing Google's dialect for Desktop app clients:
 * - an authorization request must carry `access_type=offline` and `prompt=consent`, or no refresh
 *   token would be issued (the emulation refuses such a request: a client that forgets them
 *   would silently lose refresh);
 * - the token endpoint requires the client secret; refresh tokens do not rotate (the refresh
 *   answer carries none);
 * - revocation is RFC 7009 style at /revoke (form `token=`);
 * - id tokens are RS256 and carry `iss` without the scheme (`accounts.google.com` form), which
 *   Google documents as one of two values a client must accept.
 */
import { json, type ProviderEmulation } from './common.js';
import { dialectDefaults, OidcEmulation, type OidcEmulationOptions } from './oidc.js';

export async function startGoogleEmulation(options: OidcEmulationOptions = {}): Promise<ProviderEmulation> {
  let host = '';
  const emu = new OidcEmulation(
    {
      name: 'google',
      alg: options.alg ?? 'RS256',
      ...dialectDefaults('google', options),
      secretRequired: true,
      refresh: 'kept',
      checkAuthorization(q, core) {
        if (q.get('access_type') !== 'offline') return core.violation('authorization request without access_type=offline: Google issues no refresh token');
        if (!(q.get('prompt') ?? '').split(' ').includes('consent')) return core.violation('authorization request without prompt=consent: a repeated consent gets no refresh token');
        return undefined;
      },
      offline: () => true,
      idTokenIssuer: () => host,
    },
    (req, self) => {
      const base = self.core.base;
      if (req.path === '/.well-known/openid-configuration') {
        return json(200, {
          issuer: base,
          authorization_endpoint: `${base}/o/oauth2/v2/auth`,
          token_endpoint: `${base}/token`,
          userinfo_endpoint: `${base}/v1/userinfo`,
          revocation_endpoint: `${base}/revoke`,
          device_authorization_endpoint: `${base}/device/code`,
          jwks_uri: `${base}/oauth2/v3/certs`,
          response_types_supported: ['code', 'token', 'id_token'],
          subject_types_supported: ['public'],
          id_token_signing_alg_values_supported: ['RS256'],
          scopes_supported: ['openid', 'email', 'profile'],
          token_endpoint_auth_methods_supported: ['client_secret_post', 'client_secret_basic'],
          code_challenge_methods_supported: ['plain', 'S256'],
          grant_types_supported: ['authorization_code', 'refresh_token', 'urn:ietf:params:oauth:grant-type:device_code'],
        });
      }
      if (req.path === '/oauth2/v3/certs') return json(200, self.signer.jwks);
      if (req.path === '/o/oauth2/v2/auth' && req.method === 'GET') return self.authorize(req);
      if (req.path === '/token') return self.token(req);
      if (req.path === '/revoke') return self.revoke(req);
      return json(404, { error: 'not_found' });
    },
  );
  await emu.core.listen();
  host = emu.core.base.replace(/^https?:\/\//, '');
  return emu.handle();
}

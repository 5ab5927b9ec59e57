/**
 * An emulated Microsoft identity platform (v2.0), enforcing its dialect:
 * - every path starts with the tenant: /{tenant}/v2.0/.well-known/openid-configuration,
 *   /{tenant}/oauth2/v2.0/{authorize,token,devicecode}, /{tenant}/discovery/v2.0/keys;
 * - for `organizations` and `common` the discovery `issuer` is the literal template
 *   `BASE/{tenantid}/v2.0`; for a GUID tenant it is that tenant's; an id token's `iss` always
 *   names the user's real tenant (its `tid` claim);
 * - a refresh token only with the `offline_access` scope; refresh tokens rotate (a new one every
 *   time; the old one stays valid until it expires);
 * - the redirect URI must be the registered http://localhost/callback, any port;
 * - no revocation endpoint: any attempt to revoke is a deviation.
 */
import { json, type EmulatedUser, type ProviderEmulation } from './common.js';
import { dialectDefaults, OidcEmulation, type OidcEmulationOptions } from './oidc.js';

export const EMULATED_TENANT_ID = '72f988bf-86f1-41af-91ab-2d7cd011db47';
const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const MULTI = new Set(['organizations', 'common']);

export async function startMicrosoftEmulation(options: OidcEmulationOptions & { tenantId?: string } = {}): Promise<ProviderEmulation & { tenantId: string }> {
  const tenantId = options.tenantId ?? EMULATED_TENANT_ID;
  let base = '';
  const emu = new OidcEmulation(
    {
      name: 'microsoft',
      alg: options.alg ?? 'RS256',
      ...dialectDefaults('microsoft', options),
      secretRequired: false,
      refresh: 'rotate',
      checkAuthorization(q, core) {
        // The app registers http://localhost/callback; Entra ignores the port of a localhost redirect, nothing else.
        const uri = new URL(q.get('redirect_uri')!);
        if (uri.hostname !== 'localhost' || uri.pathname !== '/callback') {
          return core.violation(`redirect_uri ${uri.href} does not match the registered http://localhost/callback (AADSTS50011)`, json(400, { error: 'invalid_request', error_description: 'AADSTS50011: The redirect URI specified in the request does not match the redirect URIs configured for the application.' }));
        }
        return undefined;
      },
      offline: (q) => (q.get('scope') ?? '').split(' ').includes('offline_access'),
      idTokenIssuer: () => `${base}/${tenantId}/v2.0`,
      extraClaims: (user: EmulatedUser) => ({ tid: tenantId, oid: `oid-${user.sub}`, ver: '2.0' }),
    },
    (req, self) => {
      const m = /^\/([^/]+)(\/.*)$/.exec(req.path);
      if (!m) return json(404, { error: 'not_found' });
      const tenant = decodeURIComponent(m[1]!);
      const rest = m[2]!;
      if (!MULTI.has(tenant) && tenant !== 'consumers' && tenant !== tenantId && !(GUID.test(tenant) && tenant === tenantId)) {
        return self.core.violation(`unknown tenant ${tenant}`, json(400, { error: 'invalid_tenant', error_description: `AADSTS90002: Tenant '${tenant}' not found.` }));
      }
      if (rest === '/v2.0/.well-known/openid-configuration') {
        const issuer = MULTI.has(tenant) ? `${base}/{tenantid}/v2.0` : `${base}/${tenantId}/v2.0`;
        return json(200, {
          issuer,
          authorization_endpoint: `${base}/${tenant}/oauth2/v2.0/authorize`,
          token_endpoint: `${base}/${tenant}/oauth2/v2.0/token`,
          device_authorization_endpoint: `${base}/${tenant}/oauth2/v2.0/devicecode`,
          userinfo_endpoint: `${base}/oidc/userinfo`,
          end_session_endpoint: `${base}/${tenant}/oauth2/v2.0/logout`,
          jwks_uri: `${base}/${tenant}/discovery/v2.0/keys`,
          response_types_supported: ['code', 'id_token', 'code id_token', 'id_token token'],
          subject_types_supported: ['pairwise'],
          id_token_signing_alg_values_supported: ['RS256'],
          token_endpoint_auth_methods_supported: ['client_secret_post', 'private_key_jwt', 'client_secret_basic'],
          scopes_supported: ['openid', 'profile', 'email', 'offline_access'],
          claims_supported: ['sub', 'iss', 'aud', 'exp', 'iat', 'nonce', 'preferred_username', 'name', 'tid', 'ver', 'oid', 'email'],
          tenant_region_scope: 'EU',
        });
      }
      if (rest === '/discovery/v2.0/keys') return json(200, self.signer.jwks);
      if (rest === '/oauth2/v2.0/authorize' && req.method === 'GET') return self.authorize(req, tenant);
      if (rest === '/oauth2/v2.0/token') return self.token(req, tenant);
      if (rest === '/oauth2/v2.0/devicecode') return self.device(req, 'https://microsoft.com/devicelogin');
      if (/revoke/.test(rest)) return self.core.violation(`${req.method} ${req.path}: Microsoft has no token revocation endpoint`, json(404, { error: 'not_found' }));
      return json(404, { error: 'not_found' });
    },
  );
  await emu.core.listen();
  base = emu.core.base;
  return Object.assign(emu.handle(), { tenantId });
}

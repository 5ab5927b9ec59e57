/**
 * Microsoft identity platform (Entra ID, v2.0 endpoints).
 * - The tenant is part of the issuer: https://login.microsoftonline.com/{tenant}/v2.0, tenant a
 *   GUID, a domain, `organizations` (default), `consumers` or `common`. For the multi-tenant
 *   values, discovery's `issuer` is the literal template `…/{tenantid}/v2.0` and an id token's
 *   `iss` names the real tenant (its `tid`): both are checked against that template.
 * - `offline_access` is needed for a refresh token; refresh tokens rotate.
 * - No token revocation endpoint: logout forgets locally and says so.
 */
import type { ProviderQuirks } from '../oauth-provider.js';
import { type ProviderPreset, trimBase, withPresetDefaults } from './preset.js';

const AUTHORITY = 'https://login.microsoftonline.com';
const TEMPLATE = '{tenantid}';
const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The issuer URL for a tenant: `--issuer` may be the authority (host) or a whole v2.0 issuer. */
export function microsoftIssuer(issuer: string | undefined, tenant: string): string {
  if (issuer !== undefined && /\/v2\.0\/?$/.test(issuer)) return trimBase(issuer);
  return `${trimBase(issuer ?? AUTHORITY)}/${tenant}/v2.0`;
}

/** Split `https://host/SEGMENT/v2.0` into origin and segment. */
function tenantSegment(issuer: string): { origin: string; segment: string } | undefined {
  try {
    const url = new URL(issuer);
    const m = /^\/([^/]+)\/v2\.0\/?$/.exec(url.pathname);
    return m ? { origin: url.origin, segment: decodeURIComponent(m[1]!) } : undefined;
  } catch {
    return undefined;
  }
}

export const microsoftPreset: ProviderPreset = {
  name: 'microsoft',
  title: 'Microsoft Entra ID / Microsoft account (v2.0)',
  flows: ['pkce_redirect', 'device_code'],
  defaultFlow: 'pkce_redirect',
  defaultScopes: ['openid', 'profile', 'email', 'offline_access', 'User.Read'],
  clientSecret: 'unused',
  issuerNote: 'the authority (https://login.microsoftonline.com, or a national cloud) or a whole …/{tenant}/v2.0 issuer; --tenant picks the tenant (default organizations)',
  revocation: 'none: Microsoft has no token revocation endpoint (forgotten locally)',
  identity: "the id token's email or preferred_username",
  docs: [
    'https://learn.microsoft.com/en-us/entra/identity-platform/v2-protocols-oidc#find-your-apps-openid-configuration-document-uri',
    'https://learn.microsoft.com/en-us/entra/identity-platform/access-tokens#validate-the-issuer',
    'https://learn.microsoft.com/en-us/entra/identity-platform/refresh-tokens',
    'https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-device-code',
  ],
  registration(name) {
    return [
      'Microsoft needs an app registration of your own (credproxy ships no client id):',
      '  1. open https://entra.microsoft.com → Identity → Applications → App registrations → New registration',
      '     (or https://portal.azure.com → Microsoft Entra ID → App registrations)',
      '  2. Supported account types: your organization only (then use --tenant TENANT_ID) or any organization (the default, tenant "organizations")',
      '  3. Redirect URI: platform "Public client/native (mobile & desktop)", URI http://localhost/callback (Microsoft ignores the port of localhost redirects)',
      '  4. Authentication → Advanced settings → "Allow public client flows": Yes (needed for the device flow), Save; copy the Application (client) ID',
      `then run: credproxy provider add ${name} --preset microsoft --client-id CLIENT_ID [--tenant TENANT_ID]`,
      `and: credproxy login ${name}`,
    ].join('\n');
  },
  resolve(config) {
    const out = withPresetDefaults(config, microsoftPreset);
    out.tenant = config.tenant ?? 'organizations';
    out.issuer = microsoftIssuer(config.issuer, out.tenant);
    // Entra registers loopback redirects as http://localhost (any port); the listener binds 127.0.0.1.
    if (out.redirect_uri === undefined) out.redirect_uri = 'http://localhost/callback';
    return out;
  },
  quirks(config): ProviderQuirks {
    const tenant = config.tenant ?? 'organizations';
    return {
      acceptDiscoveredIssuer(discovered, configured) {
        const d = tenantSegment(discovered);
        const c = tenantSegment(configured);
        if (!d || !c || d.origin !== c.origin) return false;
        // A GUID tenant must be that tenant; a domain or a multi-tenant value resolves to a GUID or the template.
        if (GUID.test(tenant)) return d.segment.toLowerCase() === tenant.toLowerCase();
        return d.segment === TEMPLATE || GUID.test(d.segment);
      },
      expectedIdTokenIssuer(claims, as) {
        if (!as.issuer.includes(TEMPLATE)) return as.issuer;
        const tid = claims.tid;
        if (typeof tid !== 'string' || !GUID.test(tid)) return as.issuer; // fails the comparison: no tenant to fill in
        return as.issuer.replace(TEMPLATE, tid);
      },
      async revoke() {
        return {
          revoked: false,
          reason: 'Microsoft has no token revocation endpoint: the tokens were forgotten here; to end the sign-in everywhere use https://myaccount.microsoft.com (Sign out everywhere) or revoke the app\'s sessions in Entra ID',
        };
      },
    };
  },
};

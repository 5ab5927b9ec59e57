/**
 * Google (OAuth client of type "Desktop app"). OpenID Connect with discovery.
 * - A refresh token comes only with `access_type=offline`, and on a repeated consent only with
 *   `prompt=consent`: both are always sent.
 * - The "installed app" client secret is required at the token endpoint although it is no secret.
 * - Refresh tokens do not rotate (the refresh answer carries none; the old one is kept).
 * - Revocation: RFC 7009 style at https://oauth2.googleapis.com/revoke (from discovery).
 * - Id tokens may carry `iss` as `accounts.google.com` without the scheme: both forms are accepted.
 */
import type { ProviderQuirks } from '../oauth-provider.js';
import { type ProviderPreset, trimBase, withPresetDefaults } from './preset.js';

const GOOGLE_ISSUER = 'https://accounts.google.com';

export const googlePreset: ProviderPreset = {
  name: 'google',
  title: 'Google (Desktop app OAuth client)',
  flows: ['pkce_redirect'],
  defaultFlow: 'pkce_redirect',
  defaultScopes: ['openid', 'email', 'profile'],
  clientSecret: 'required',
  secretNote: 'Google\'s token endpoint requires the "Desktop app" client secret (it is not secret, but it is required)',
  issuerNote: 'the issuer to discover; default https://accounts.google.com',
  revocation: 'RFC 7009 at https://oauth2.googleapis.com/revoke',
  identity: "the id token's email",
  docs: [
    'https://developers.google.com/identity/protocols/oauth2/native-app',
    'https://developers.google.com/identity/openid-connect/openid-connect#validatinganidtoken',
  ],
  registration(name) {
    return [
      'Google needs an OAuth client of your own (credproxy ships no client id):',
      '  1. open https://console.cloud.google.com/apis/credentials (Google Cloud console → APIs & Services → Credentials)',
      '  2. configure the OAuth consent screen if asked (User type: External or Internal; add yourself as a test user)',
      '  3. Create credentials → OAuth client ID → Application type "Desktop app" (no redirect URI to enter: loopback ports are allowed)',
      '  4. copy the Client ID and the Client secret; export the secret (e.g. GOOGLE_OAUTH_SECRET) where `credproxy serve` runs',
      `then run: credproxy provider add ${name} --preset google --client-id CLIENT_ID --client-secret-env GOOGLE_OAUTH_SECRET`,
      `and: credproxy login ${name}`,
    ].join('\n');
  },
  resolve(config) {
    const out = withPresetDefaults(config, googlePreset);
    out.issuer = trimBase(config.issuer ?? GOOGLE_ISSUER);
    out.extra_auth_params = { access_type: 'offline', prompt: 'consent', ...out.extra_auth_params };
    return out;
  },
  quirks(): ProviderQuirks {
    return {
      expectedIdTokenIssuer(claims, as) {
        const bare = as.issuer.replace(/^https?:\/\//, '');
        return claims.iss === bare ? bare : as.issuer;
      },
    };
  },
};

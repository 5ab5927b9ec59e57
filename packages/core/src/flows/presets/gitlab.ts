/**
 * GitLab (gitlab.com or self-managed via --issuer). OpenID Connect with discovery.
 * - PKCE for public ("non-confidential") applications; no client secret needed.
 * - GitLab matches the redirect URI exactly, port included: the preset uses one fixed loopback
 *   port, shared by all concurrent logins (flows/callback-router.ts).
 * - Device authorization grant at /oauth/authorize_device (GitLab 17.2+; not in discovery).
 * - Access tokens expire after 2 h; refresh tokens rotate, and reusing an old one fails.
 * - RFC 7009 revocation at /oauth/revoke.
 */
import type { ProviderQuirks } from '../oauth-provider.js';
import { loopbackRedirect, type ProviderPreset, trimBase, withPresetDefaults } from './preset.js';

const GITLAB = 'https://gitlab.com';
/** The fixed loopback port registered with GitLab (exact match); change it with --callback-port. */
export const GITLAB_CALLBACK_PORT = 48361;

export const gitlabPreset: ProviderPreset = {
  name: 'gitlab',
  title: 'GitLab (gitlab.com or self-managed)',
  flows: ['pkce_redirect', 'device_code'],
  defaultFlow: 'pkce_redirect',
  defaultScopes: ['openid', 'profile', 'email', 'read_api'],
  clientSecret: 'unused',
  callbackPort: GITLAB_CALLBACK_PORT,
  issuerNote: 'a self-managed GitLab URL; default https://gitlab.com',
  revocation: 'RFC 7009 at /oauth/revoke',
  identity: "the id token's email, preferred_username or sub",
  docs: [
    'https://docs.gitlab.com/api/oauth2/',
    'https://docs.gitlab.com/integration/openid_connect_provider/',
    'https://docs.gitlab.com/integration/oauth_provider/',
  ],
  registration(name) {
    return [
      'GitLab needs an application of your own (credproxy ships no client id):',
      '  1. open https://gitlab.com/-/user_settings/applications (self-managed: https://YOUR-GITLAB/-/user_settings/applications) → Add new application',
      `  2. Redirect URI: ${loopbackRedirect(GITLAB_CALLBACK_PORT)} (GitLab matches the port exactly; pick another with --callback-port and register that)`,
      '  3. untick "Confidential"; tick the scopes openid, profile, email and read_api (or api to write); for the device flow also tick "Device authorization grant" where shown',
      '  4. Save application and copy the Application ID',
      `then run: credproxy provider add ${name} --preset gitlab --client-id APPLICATION_ID [--issuer https://YOUR-GITLAB]`,
      `and: credproxy login ${name}`,
    ].join('\n');
  },
  resolve(config) {
    const out = withPresetDefaults(config, gitlabPreset);
    const base = trimBase(config.issuer ?? GITLAB);
    out.issuer = base;
    out.device_authorization_endpoint ??= `${base}/oauth/authorize_device`;
    out.revocation_endpoint ??= `${base}/oauth/revoke`;
    return out;
  },
  quirks(): ProviderQuirks {
    return {};
  },
};

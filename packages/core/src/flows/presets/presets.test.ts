import { describe, expect, it } from 'vitest';
import { ConfigError, parseProvider } from '../../config/config-file.js';
import { applyPreset, PROVIDER_PRESETS } from './index.js';

const parse = (raw: Record<string, unknown>) => parseProvider('p', raw, 'config.json');

describe('presets default to the real providers', () => {
  it('github: github.com web endpoints, api.github.com identity, device flow, JSON answers', () => {
    const { config, quirks } = applyPreset(parse({ preset: 'github', client_id: 'Iv1.x' }));
    expect(config).toMatchObject({
      authorization_endpoint: 'https://github.com/login/oauth/authorize',
      token_endpoint: 'https://github.com/login/oauth/access_token',
      device_authorization_endpoint: 'https://github.com/login/device/code',
      userinfo_endpoint: 'https://api.github.com/user',
      flow: 'device_code',
      scopes: ['repo', 'read:org'],
      accept_json: true,
    });
    expect(config.issuer).toBeUndefined();
    expect(config.revocation_endpoint).toBeUndefined();
    expect(quirks.clientSecretInBody).toBe(true);
    expect(typeof quirks.revoke).toBe('function');
  });

  it('github --issuer is an Enterprise Server: API under /api/v3', () => {
    const { config } = applyPreset(parse({ preset: 'github', client_id: 'x', issuer: 'https://ghe.example.com/' }));
    expect(config.token_endpoint).toBe('https://ghe.example.com/login/oauth/access_token');
    expect(config.userinfo_endpoint).toBeUndefined(); // tried at /api/v3/user, then /user
  });

  it('google: accounts.google.com, offline access and consent always asked', () => {
    const { config } = applyPreset(parse({ preset: 'google', client_id: 'x', client_secret_env: 'S' }));
    expect(config.issuer).toBe('https://accounts.google.com');
    expect(config.extra_auth_params).toMatchObject({ access_type: 'offline', prompt: 'consent' });
    expect(config.flow).toBe('pkce_redirect');
  });

  it('microsoft: tenant in the issuer (default organizations), localhost redirect', () => {
    expect(applyPreset(parse({ preset: 'microsoft', client_id: 'x' })).config).toMatchObject({
      issuer: 'https://login.microsoftonline.com/organizations/v2.0',
      redirect_uri: 'http://localhost/callback',
      scopes: expect.arrayContaining(['offline_access', 'openid']),
    });
    expect(applyPreset(parse({ preset: 'microsoft', client_id: 'x', tenant: 'contoso.onmicrosoft.com' })).config.issuer).toBe('https://login.microsoftonline.com/contoso.onmicrosoft.com/v2.0');
    expect(applyPreset(parse({ preset: 'microsoft', client_id: 'x', tenant: 'common', issuer: 'https://login.microsoftonline.us' })).config.issuer).toBe('https://login.microsoftonline.us/common/v2.0');
  });

  it('microsoft: discovery may name the {tenantid} template or a GUID on the same host; the id token must name its own tenant', () => {
    const { quirks } = applyPreset(parse({ preset: 'microsoft', client_id: 'x' }));
    const configured = 'https://login.microsoftonline.com/organizations/v2.0';
    expect(quirks.acceptDiscoveredIssuer!('https://login.microsoftonline.com/{tenantid}/v2.0', configured)).toBe(true);
    expect(quirks.acceptDiscoveredIssuer!('https://evil.example/{tenantid}/v2.0', configured)).toBe(false);
    const as = { issuer: 'https://login.microsoftonline.com/{tenantid}/v2.0' };
    const tid = '72f988bf-86f1-41af-91ab-2d7cd011db47';
    expect(quirks.expectedIdTokenIssuer!({ tid }, as)).toBe(`https://login.microsoftonline.com/${tid}/v2.0`);
    expect(quirks.expectedIdTokenIssuer!({ tid: 'not-a-guid' }, as)).toBe(as.issuer);
    const guidTenant = applyPreset(parse({ preset: 'microsoft', client_id: 'x', tenant: tid })).quirks;
    expect(guidTenant.acceptDiscoveredIssuer!(`https://login.microsoftonline.com/${tid}/v2.0`, `https://login.microsoftonline.com/${tid}/v2.0`)).toBe(true);
    expect(guidTenant.acceptDiscoveredIssuer!('https://login.microsoftonline.com/{tenantid}/v2.0', `https://login.microsoftonline.com/${tid}/v2.0`)).toBe(false);
  });

  it('gitlab: gitlab.com, its device and revocation endpoints, a fixed callback port', () => {
    expect(applyPreset(parse({ preset: 'gitlab', client_id: 'x' })).config).toMatchObject({
      issuer: 'https://gitlab.com',
      device_authorization_endpoint: 'https://gitlab.com/oauth/authorize_device',
      revocation_endpoint: 'https://gitlab.com/oauth/revoke',
      callback_port: 48361,
    });
  });

  it("the file's own flow, scopes and endpoints win over the preset's", () => {
    const { config } = applyPreset(parse({ preset: 'github', client_id: 'x', flow: 'pkce_redirect', scopes: ['gist'], token_endpoint: 'https://proxy.example/token' }));
    expect(config).toMatchObject({ flow: 'pkce_redirect', scopes: ['gist'], token_endpoint: 'https://proxy.example/token' });
  });

  it('an unknown preset names the known ones', () => {
    expect(() => applyPreset(parse({ preset: 'nope', client_id: 'x' }))).toThrow(/github, google, microsoft, gitlab/);
    expect([...PROVIDER_PRESETS.keys()]).toEqual(['github', 'google', 'microsoft', 'gitlab']);
  });
});

describe('provider options in the config file', () => {
  it('parses token_request, accept_json, extra_token_params, tenant and jwks_uri', () => {
    expect(parse({ token_endpoint: 'https://a.example/t', authorization_endpoint: 'https://a.example/a', client_id: 'x', token_request: 'json', accept_json: true, extra_token_params: { audience: 'api' }, jwks_uri: 'https://a.example/jwks' })).toMatchObject({
      token_request: 'json',
      accept_json: true,
      extra_token_params: { audience: 'api' },
      jwks_uri: 'https://a.example/jwks',
    });
  });

  it.each([
    [{ token_request: 'xml' }, /token_request/],
    [{ accept_json: 'yes' }, /accept_json/],
    [{ extra_token_params: { n: 1 } }, /extra_token_params/],
    [{ preset: 'GitHub!' }, /preset/],
    [{ preset: 'microsoft', tenant: 'a/b' }, /tenant/],
    [{ jwks_uri: 'http://remote.example/jwks' }, /jwks_uri/],
  ])('refuses %j naming the field', (extra, field) => {
    const raw = { issuer: 'https://a.example', client_id: 'x', ...extra };
    expect(() => parse(raw)).toThrow(ConfigError);
    expect(() => parse(raw)).toThrow(field);
  });
});

import { describe, expect, it } from 'vitest';
import { ErrorCode, ProxyError } from '../protocol/errors.js';
import { listRoutePresets, ROUTE_PRESETS } from './presets.js';
import {
  credentialFromHeader,
  formatCredential,
  isRouteName,
  parseUpstream,
  resolveRoute,
  resolveRoutes,
  routeToConfig,
  validateRouteConfig,
} from './route-config.js';

function invalidMessage(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ProxyError);
    expect((err as ProxyError).code).toBe(ErrorCode.INVALID_REQUEST);
    return (err as ProxyError).message;
  }
  throw new Error('expected an INVALID_REQUEST error');
}

describe('route presets', () => {
  it('has the presets SPEC §6 names, each an https origin with a header and a format holding {}', () => {
    for (const name of ['anthropic', 'openai', 'gemini', 'github', 'github-git', 'groq', 'mistral', 'openrouter', 'xai', 'huggingface']) {
      const p = ROUTE_PRESETS.get(name);
      expect(p, name).toBeDefined();
      expect(parseUpstream(p!.upstream).origin).toBe(p!.upstream);
      expect(p!.upstream.startsWith('https://')).toBe(true);
      expect(p!.format).toContain('{}');
      expect(p!.description.length).toBeGreaterThan(5);
      // Every preset resolves into a valid route.
      expect(resolveRoute(name, { preset: name, api_key: 'k' }).upstream.origin).toBe(p!.upstream);
    }
    expect(listRoutePresets().length).toBe(ROUTE_PRESETS.size);
  });

  it('fills upstream, header and format; explicit fields win', () => {
    const a = resolveRoute('anthropic', { preset: 'anthropic', api_key: 'anthropic' });
    expect(a).toMatchObject({
      name: 'anthropic',
      header: 'x-api-key',
      format: '{}',
      preset: 'anthropic',
      credential: { kind: 'api_key', name: 'anthropic' },
    });
    expect(a.upstream).toMatchObject({ origin: 'https://api.anthropic.com', host: 'api.anthropic.com', port: 443, addressPolicy: 'public-only' });
    const g = resolveRoute('gem', { preset: 'gemini', account: 'google:work' });
    expect(g).toMatchObject({ header: 'x-goog-api-key', credential: { kind: 'account', provider: 'google', bucket: 'work' } });
    expect(g.upstream.origin).toBe('https://generativelanguage.googleapis.com');
    const o = resolveRoute('o', { preset: 'openai', api_key: 'k', upstream: 'https://127.0.0.1:8443', header: 'X-Key', format: 'Token {}' });
    expect(o).toMatchObject({ header: 'x-key', format: 'Token {}' });
    expect(o.upstream).toMatchObject({ origin: 'https://127.0.0.1:8443', host: '127.0.0.1:8443', port: 8443, addressPolicy: 'literal' });
    expect(resolveRoute('d', { upstream: 'https://api.example.com', account: 'gh' })).toMatchObject({
      header: 'authorization',
      format: 'Bearer {}',
      credential: { kind: 'account', provider: 'gh', bucket: 'default' },
    });
  });
});

describe('route validation', () => {
  const ok = { upstream: 'https://api.example.com', api_key: 'k' };

  it('accepts an origin with or without the final slash, and http only on loopback hosts', () => {
    expect(resolveRoute('a', { ...ok, upstream: 'https://api.example.com/' }).upstream.origin).toBe('https://api.example.com');
    expect(resolveRoute('a', { ...ok, upstream: 'http://localhost:8080' }).upstream.addressPolicy).toBe('loopback-only');
    expect(resolveRoute('a', { ...ok, upstream: 'http://127.0.0.1:9' }).upstream.host).toBe('127.0.0.1:9');
    expect(resolveRoute('a', { ...ok, upstream: 'http://[::1]:9' }).upstream).toMatchObject({ hostname: '::1', host: '[::1]:9' });
  });

  it.each([
    [{ ...ok, upstream: 'http://api.example.com' }, /upstream uses plain http.*loopback.*https:\/\/api\.example\.com/],
    [{ ...ok, upstream: 'http://10.0.0.5' }, /only allowed for loopback/],
    [{ ...ok, upstream: 'https://api.example.com/v1' }, /routes\.r\.upstream must be an origin without a path/],
    [{ ...ok, upstream: 'https://api.example.com?x=1' }, /without a path/],
    [{ ...ok, upstream: 'https://u:p@api.example.com' }, /must not carry a user or password/],
    [{ ...ok, upstream: 'ftp://api.example.com' }, /must start with https:\/\//],
    [{ ...ok, upstream: 'api.example.com' }, /must be an origin such as/],
    [{ upstream: 'https://a.example' }, /exactly one of api_key .* and account/],
    [{ upstream: 'https://a.example', api_key: 'k', account: 'p' }, /exactly one of api_key/],
    [{ api_key: 'k' }, /needs an upstream .* or a preset/],
    [{ ...ok, preset: 'nope' }, /routes\.r\.preset: no preset "nope" — the presets are anthropic, openai/],
    [{ ...ok, account: undefined, api_key: '../x' }, /api_key must be a key name/],
    [{ upstream: 'https://a.example', account: 'gh:../x' }, /account must be PROVIDER or PROVIDER:BUCKET/],
    [{ ...ok, header: 'x api key' }, /header must be an HTTP header name/],
    [{ ...ok, header: 'Host' }, /header cannot be host/],
    [{ ...ok, header: 'proxy-authorization' }, /header cannot be proxy-authorization/],
    [{ ...ok, header: 'content-length' }, /cannot be content-length/],
    [{ ...ok, format: 'Bearer' }, /format must contain \{\}/],
    [{ ...ok, format: 'Bearer {}\r\nX-Evil: 1' }, /format must be printable text without line breaks/],
    [{ ...ok, format: 'Basic x-access-token:' }, /format must contain \{\} where the credential goes/],
    [{ ...ok, apikey: 'k' }, /unknown field "apikey"/],
    [{ ...ok, upstream: 42 }, /upstream must be a non-empty string/],
    ['https://x', /routes\.r must be an object/],
  ])('refuses %j naming the field and the fix', (raw, message) => {
    expect(invalidMessage(() => validateRouteConfig('r', raw))).toMatch(message);
  });

  it('refuses bad route names, including prototype names', () => {
    for (const name of ['.', '..', '__proto__', 'constructor', 'prototype', 'a/b', '', 'x'.repeat(65), 'a b']) {
      expect(isRouteName(name), name).toBe(false);
      expect(invalidMessage(() => resolveRoute(name, ok))).toMatch(/route name must be 1-64 characters/);
    }
    for (const name of ['anthropic', 'github-git', 'a.b', 'me@work', 'A_1', 'toString', 'hasOwnProperty']) {
      expect(isRouteName(name), name).toBe(true);
    }
  });

  it('reads the config file routes object into a Map, refusing __proto__ from JSON', () => {
    const routes = resolveRoutes(JSON.parse('{"toString": {"preset": "github", "account": "github"}, "ant": {"preset": "anthropic", "api_key": "ant"}}'));
    expect([...routes.keys()]).toEqual(['toString', 'ant']);
    expect(routes.get('toString')!.upstream.origin).toBe('https://api.github.com');
    expect(invalidMessage(() => resolveRoutes(JSON.parse('{"__proto__": {"preset": "github", "api_key": "k"}}')))).toMatch(/__proto__/);
    expect(resolveRoutes(undefined).size).toBe(0);
    expect(invalidMessage(() => resolveRoutes([]))).toMatch(/routes must be an object/);
  });

  it('writes a route back as config without any secret', () => {
    const r = resolveRoute('gh', { preset: 'github', account: 'github:work' });
    expect(routeToConfig(r)).toEqual({ upstream: 'https://api.github.com', header: 'authorization', format: 'Bearer {}', preset: 'github', account: 'github:work' });
    expect(resolveRoute('gh', routeToConfig(r))).toEqual(r);
  });
});

describe('formatCredential', () => {
  it('puts the secret in place of {}', () => {
    expect(formatCredential('Bearer {}', 'sk-1')).toBe('Bearer sk-1');
    expect(formatCredential('{}', 'sk-1')).toBe('sk-1');
  });

  it('base64-encodes the rest of a Basic format (RFC 7617)', () => {
    const v = formatCredential('Basic x-access-token:{}', 'ghs_SECRET');
    expect(v).toBe('Basic ' + Buffer.from('x-access-token:ghs_SECRET').toString('base64'));
    expect(v).not.toContain('ghs_SECRET');
  });

  it('refuses a secret that would break the header, and an empty one', () => {
    expect(() => formatCredential('Bearer {}', 'a\r\nX-Evil: 1')).toThrow(/line break/);
    expect(() => formatCredential('Bearer {}', '')).toThrow(/empty/);
    // Inside Basic the secret is base64-encoded, so any text is fine.
    expect(formatCredential('Basic u:{}', 'a\nb')).toBe('Basic ' + Buffer.from('u:a\nb').toString('base64'));
  });

  it('reads a token back from a header written in the format', () => {
    expect(credentialFromHeader('Bearer {}', 'Bearer tok')).toEqual(['tok']);
    expect(credentialFromHeader('{}', 'tok')).toEqual(['tok']);
    expect(credentialFromHeader('Bearer {}', 'Token tok')).toEqual([]);
    const basic = 'Basic ' + Buffer.from('x-access-token:tok').toString('base64');
    expect(credentialFromHeader('Basic x-access-token:{}', basic)).toEqual(['tok']);
    // git lets the user choose the user name: the password alone counts.
    expect(credentialFromHeader('Basic x-access-token:{}', 'Basic ' + Buffer.from('me:tok').toString('base64'))).toEqual(['tok']);
  });
});

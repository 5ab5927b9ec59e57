import type { IncomingMessage } from 'node:http';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { clientResponseHeaders, rewriteLocation, upstreamRequestHeaders } from './http-headers.js';
import { tokenCandidates, tokensEqual } from './request-auth.js';
import { resolveRoute } from './route-config.js';

const route = resolveRoute('ant', { preset: 'anthropic', api_key: 'k', upstream: 'https://api.example.com:8443' });
const git = resolveRoute('git', { preset: 'github-git', api_key: 'k' });

/** A request as node's parser leaves it: raw name/value pairs in the client's case, and the lower-cased headers. */
function fakeRequest(headers: Record<string, string | string[]>): IncomingMessage {
  const rawHeaders: string[] = [];
  const lower: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(headers)) {
    for (const one of Array.isArray(v) ? v : [v]) rawHeaders.push(k, one);
    lower[k.toLowerCase()] = Array.isArray(v) ? v.join(', ') : v;
  }
  return { headers: lower, rawHeaders } as unknown as IncomingMessage;
}

/** Flat name/value pairs as a record, repeated names as arrays (in order). */
function pairs(flat: string[]): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (let i = 0; i < flat.length; i += 2) {
    const [name, value] = [flat[i]!, flat[i + 1]!];
    const had = out[name];
    out[name] = had === undefined ? value : [...(Array.isArray(had) ? had : [had]), value];
  }
  return out;
}

describe('upstream request headers', () => {
  it('drop hop-by-hop, Connection-listed, Proxy-*, authorization and the route header, then set it and host', () => {
    const out = upstreamRequestHeaders(
      fakeRequest({
        Connection: 'keep-alive, X-Secret-Hop',
        'X-SECRET-HOP': 'a',
        'keep-alive': '5',
        te: 'trailers',
        trailer: 'x',
        'transfer-encoding': 'chunked',
        upgrade: 'h2c',
        'proxy-connection': 'keep-alive',
        'proxy-authorization': 'Basic eDp0',
        'proxy-anything': '1',
        authorization: 'Bearer token',
        'X-Api-Key': 'capability-token',
        Host: 'listener',
        'content-length': '5',
        expect: '100-continue',
        'accept-encoding': 'gzip, zstd',
        'anthropic-version': '2023-06-01',
        cookie: ['a=1', 'b=2'],
      }),
      route,
      'REAL-KEY',
    );
    expect(pairs(out)).toEqual({
      'anthropic-version': '2023-06-01',
      cookie: ['a=1', 'b=2'],
      host: 'api.example.com:8443',
      'accept-encoding': 'gzip',
      'x-api-key': 'REAL-KEY',
    });
    // The credential is the last pair (the 401 retry replaces it there), names are lower case.
    expect(out.slice(-2)).toEqual(['x-api-key', 'REAL-KEY']);
    expect(out.filter((_, i) => i % 2 === 0).every((n) => n === n.toLowerCase())).toBe(true);
  });
});

describe('client response headers', () => {
  it('drop hop-by-hop, Proxy-* and a forged x-credproxy-error, keep the rest', () => {
    expect({
      ...clientResponseHeaders({
        connection: 'close, x-hop',
        'x-hop': '1',
        'transfer-encoding': 'chunked',
        'proxy-authenticate': 'Basic',
        'x-credproxy-error': 'FORBIDDEN',
        'content-type': 'text/plain',
        'set-cookie': ['a=1', 'b=2'],
        'x-none': undefined,
      }),
    }).toEqual({ 'content-type': 'text/plain', 'set-cookie': ['a=1', 'b=2'] });
  });
});

describe('rewriteLocation', () => {
  it('maps the route origin to the route path and leaves other origins', () => {
    expect(rewriteLocation('https://api.example.com:8443/v2/x?y=1#f', route, '/v1/a')).toBe('/ant/v2/x?y=1#f');
    expect(rewriteLocation('/v2/x', route, '/v1/a')).toBe('/ant/v2/x');
    expect(rewriteLocation('b', route, '/v1/a')).toBe('/ant/v1/b');
    expect(rewriteLocation('https://api.example.com/v2', route, '/')).toBe('https://api.example.com/v2');
    expect(rewriteLocation('http://api.example.com:8443/v2', route, '/')).toBe('http://api.example.com:8443/v2');
    expect(rewriteLocation('https://other.example/x', route, '/')).toBe('https://other.example/x');
  });
});

describe('token candidates', () => {
  const t = 'a'.repeat(64);
  it('read the proxy password, Proxy-Authorization Bearer, Authorization Bearer and the route header', () => {
    expect(tokenCandidates({ 'proxy-authorization': `Basic ${Buffer.from(`x:${t}`).toString('base64')}` }, undefined)).toEqual([t]);
    expect(tokenCandidates({ 'proxy-authorization': `bearer ${t}` }, undefined)).toEqual([t]);
    expect(tokenCandidates({ authorization: `Bearer ${t}` }, undefined)).toEqual([t]);
    expect(tokenCandidates({ 'x-api-key': t }, route)).toEqual([t]);
    expect(tokenCandidates({ 'x-api-key': t }, undefined)).toEqual([]);
    expect(tokenCandidates({ authorization: `Basic ${Buffer.from(`x-access-token:${t}`).toString('base64')}` }, git)).toEqual([t]);
    expect(tokenCandidates({ authorization: `Token ${t}` }, undefined)).toEqual([]);
    expect(tokenCandidates({ authorization: `Bearer ${'b'.repeat(600)}` }, undefined)).toEqual([]);
  });

  it('read `Scheme credential` exactly as /^\\s*([A-Za-z]+)\\s+(.+?)\\s*$/ does (whitespace-only credentials aside)', () => {
    const reference = (value: string, scheme: string): string | undefined => {
      const m = /^\s*([A-Za-z]+)\s+(.+?)\s*$/.exec(value);
      if (!m || m[1]!.toLowerCase() !== scheme || m[2]!.trim() === '') return undefined;
      return m[2]!;
    };
    const pieces = fc.constantFrom('Bearer', 'bearer', 'BEARER', 'Bearerx', 'Basic', 'Token', ' ', '\t', '\u00a0', '\n', '\u2028', 'x', 'tok', '=', 'é', ':', '\r', '\u3000');
    fc.assert(
      fc.property(fc.array(pieces, { maxLength: 8 }).map((p) => p.join('')), (value) => {
        const expected = reference(value, 'bearer');
        const want = expected === undefined || expected.length > 512 ? [] : [expected];
        expect(tokenCandidates({ authorization: value }, undefined)).toEqual(want);
      }),
      { numRuns: 3000 },
    );
  });

  it('compare in constant time, whatever the lengths', () => {
    expect(tokensEqual(t, t)).toBe(true);
    expect(tokensEqual(t, t.slice(1))).toBe(false);
    expect(tokensEqual('', t)).toBe(false);
  });
});

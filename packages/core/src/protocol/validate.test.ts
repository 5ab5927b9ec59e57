import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { handlers } from '../server/dispatch.js';
import { ErrorCode, ProxyError } from './errors.js';
import {
  assertName,
  assertObject,
  assertOptionalBoolean,
  assertOptionalNumber,
  assertString,
  isName,
  isPlainObject,
} from './validate.js';

function invalidRequest(fn: () => unknown): void {
  expect(fn).toThrow(ProxyError);
  try {
    fn();
  } catch (err) {
    expect((err as ProxyError).code).toBe(ErrorCode.INVALID_REQUEST);
  }
}

describe('names (SPEC §3: ^[A-Za-z0-9._@-]{1,64}$, not . or ..)', () => {
  const good = ['a', 'github', 'user@example.com', 'A-Z_0.9', '...', '.env', 'x'.repeat(64)];
  const bad = ['', '.', '..', 'a/b', '../x', 'a\\b', 'x'.repeat(65), 'a b', 'a\u0000b', 'é', 'a\nb', 'a:b'];

  it.each(good)('accepts %j', (name) => {
    expect(isName(name)).toBe(true);
    expect(() => assertName(name, 'provider')).not.toThrow();
  });

  it.each(bad)('rejects %j with INVALID_REQUEST naming the field', (name) => {
    expect(isName(name)).toBe(false);
    invalidRequest(() => assertName(name, 'bucket'));
    expect(() => assertName(name, 'bucket')).toThrow(/bucket/);
  });

  it('rejects non-strings', () => {
    for (const v of [undefined, null, 1, true, [], {}, ['a']]) invalidRequest(() => assertName(v, 'name'));
  });
});

describe('small asserts', () => {
  it('assertObject wants a plain object', () => {
    expect(isPlainObject({})).toBe(true);
    for (const v of [null, [], 'x', 1, undefined]) invalidRequest(() => assertObject(v));
  });

  it('assertString wants a non-empty string within the limit', () => {
    expect(() => assertString('abc', 'f', 3)).not.toThrow();
    invalidRequest(() => assertString('abcd', 'f', 3));
    invalidRequest(() => assertString('', 'f'));
    invalidRequest(() => assertString(5, 'f'));
  });

  it('assertOptionalNumber checks finiteness, integers and range', () => {
    expect(() => assertOptionalNumber(undefined, 'n')).not.toThrow();
    expect(() => assertOptionalNumber(5, 'n', { min: 0, max: 10, integer: true })).not.toThrow();
    invalidRequest(() => assertOptionalNumber(5.5, 'n', { integer: true }));
    invalidRequest(() => assertOptionalNumber(-1, 'n', { min: 0 }));
    invalidRequest(() => assertOptionalNumber(Infinity, 'n'));
    invalidRequest(() => assertOptionalNumber(NaN, 'n'));
    invalidRequest(() => assertOptionalNumber('5', 'n'));
  });

  it('assertOptionalBoolean', () => {
    expect(() => assertOptionalBoolean(false, 'b')).not.toThrow();
    invalidRequest(() => assertOptionalBoolean('true', 'b'));
  });
});

describe('every op validator', () => {
  const ops = Object.keys(handlers) as Array<keyof typeof handlers>;
  const fields = [
    'provider', 'bucket', 'name', 'key', 'min_valid_seconds', 'token', 'session_id', 'code', 'flow',
    'redirect_uri', 'scopes', 'api_keys', 'allow_login', 'allow_refresh', 'ttl_seconds', 'socket',
    'revoke', 'targetId',
  ];
  const nameish = fc.oneof(fc.constantFrom('gh', 'default', '.', '..', 'a/b', 'x'.repeat(65), '/tmp/x.sock', 'device_code'), fc.string({ maxLength: 70 }));
  const anyValue = fc.oneof(fc.jsonValue({ maxDepth: 3 }), nameish, fc.integer(), fc.double(), fc.boolean());
  const tokenish = fc.record(
    { access_token: anyValue, refresh_token: anyValue, expiry: anyValue, token_type: anyValue, scope: anyValue, id_token: anyValue, extra: anyValue },
    { requiredKeys: [] },
  );
  const scopesish = fc.oneof(anyValue, fc.array(fc.oneof(anyValue, fc.record({ provider: anyValue, bucket: anyValue }, { requiredKeys: [] })), { maxLength: 4 }));
  const payload = fc.oneof(
    fc.dictionary(fc.string({ maxLength: 12 }), fc.jsonValue({ maxDepth: 3 })),
    fc.record(Object.fromEntries(fields.map((f) => [f, anyValue])), { requiredKeys: [] }),
    fc.record(
      {
        provider: nameish,
        bucket: nameish,
        name: nameish,
        key: anyValue,
        token: fc.oneof(tokenish, anyValue),
        scopes: scopesish,
        api_keys: fc.oneof(anyValue, fc.array(nameish, { maxLength: 4 })),
        session_id: anyValue,
        code: anyValue,
        ttl_seconds: anyValue,
        socket: anyValue,
      },
      { requiredKeys: [] },
    ),
  );
  // Objects as JSON.parse makes them: own "__proto__", and values that break String().
  const hostile = [
    '{"__proto__":{"provider":"gh"}}',
    '{"provider":{"toString":1}}',
    '{"provider":"gh","bucket":{"valueOf":1,"toString":1}}',
    '{"name":"k","key":{"toString":null}}',
    '{"provider":"gh","token":{"access_token":"a","__proto__":{"refresh_token":"r"},"expiry":{"toString":1}}}',
    '{"name":"c","scopes":[{"provider":"gh","bucket":{"toString":1}}],"ttl_seconds":{"valueOf":1}}',
    '{"name":"c","scopes":[],"socket":{"toString":1}}',
    '{"name":"c","scopes":"gh","api_keys":[{"toString":1}]}',
    '{"flow":{"toString":1},"provider":"gh","redirect_uri":[]}',
    '{"session_id":{"toString":1},"code":[]}',
    '{"min_valid_seconds":{"valueOf":1},"provider":"gh"}',
  ].map((t) => JSON.parse(t) as Record<string, unknown>);

  function check(op: keyof typeof handlers, p: Record<string, unknown>): void {
    const handler = handlers[op] as { validate(p: Record<string, unknown>): unknown };
    try {
      handler.validate(p);
    } catch (err) {
      if (!(err instanceof ProxyError) || err.code !== ErrorCode.INVALID_REQUEST) {
        throw new Error(`${op}.validate(${JSON.stringify(p)}) threw ${String(err)}`);
      }
    }
  }

  it('covers every dispatched op', () => {
    expect(ops.length).toBeGreaterThanOrEqual(23);
  });

  it.each(ops)('%s: returns or throws INVALID_REQUEST for arbitrary JSON payloads', (op) => {
    for (const p of hostile) check(op, p);
    fc.assert(
      fc.property(payload, (p) => check(op, p as Record<string, unknown>)),
      { numRuns: 300 },
    );
  });

  it('rejects bad names in every op that takes a provider', () => {
    for (const op of ['get_token', 'refresh_token', 'remove_token', 'logout', 'list_buckets', 'get_bucket_stats', 'oauth_initiate'] as const) {
      for (const provider of ['.', '..', 'a/b', 'x'.repeat(65)]) {
        invalidRequest(() => (handlers[op] as { validate(p: unknown): unknown }).validate({ provider }));
      }
    }
    for (const op of ['get_api_key', 'has_api_key', 'remove_api_key', 'client_remove'] as const) {
      invalidRequest(() => (handlers[op] as { validate(p: unknown): unknown }).validate({ name: '..' }));
    }
  });

  it('fills the default bucket and keeps valid input', () => {
    expect(handlers.get_token.validate({ provider: 'gh' })).toMatchObject({ provider: 'gh', bucket: 'default', min_valid_seconds: 60 });
    expect(handlers.save_token.validate({ provider: 'gh', bucket: 'b', token: { access_token: 'a', account_id: 'x' } })).toMatchObject({
      bucket: 'b',
      token: { access_token: 'a', account_id: 'x' },
    });
  });
});

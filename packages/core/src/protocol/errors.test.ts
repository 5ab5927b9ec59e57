import { describe, expect, it } from 'vitest';
import { ErrorCode, INTERNAL_ERROR_MESSAGE, isErrorCode, ProxyError, toErrorFrame } from './errors.js';

const SPEC_CODES = [
  'INVALID_REQUEST', 'UNKNOWN_VERSION', 'UNKNOWN_OP', 'UNAUTHORIZED', 'FORBIDDEN', 'NOT_FOUND',
  'PROVIDER_NOT_CONFIGURED', 'NOT_LOGGED_IN', 'REAUTH_REQUIRED', 'FLOW_INITIATION_FAILED',
  'SESSION_NOT_FOUND', 'SESSION_EXPIRED', 'SESSION_ALREADY_USED', 'STATE_MISMATCH', 'EXCHANGE_FAILED',
  'ACCESS_DENIED', 'REFRESH_FAILED', 'UPSTREAM_UNAVAILABLE', 'RATE_LIMITED', 'RESOURCE_EXHAUSTED',
  'CANCELLED', 'RESPONSE_TOO_LARGE', 'INTERNAL_ERROR',
];

describe('ErrorCode', () => {
  it('is exactly the table of SPEC §2, each code its own string', () => {
    expect(Object.keys(ErrorCode).sort()).toEqual([...SPEC_CODES].sort());
    for (const [k, v] of Object.entries(ErrorCode)) expect(v).toBe(k);
  });

  it('isErrorCode accepts table codes only, never prototype names', () => {
    for (const code of SPEC_CODES) expect(isErrorCode(code)).toBe(true);
    for (const other of ['toString', '__proto__', 'constructor', 'invalid_request', '', 1, null, undefined]) {
      expect(isErrorCode(other)).toBe(false);
    }
  });
});

describe('toErrorFrame', () => {
  it('carries v:2, ok:false, the code, the message and the id', () => {
    const frame = toErrorFrame(new ProxyError(ErrorCode.NOT_FOUND, 'no such key'), 'abc');
    expect(frame).toEqual({ v: 2, id: 'abc', ok: false, code: 'NOT_FOUND', error: 'no such key' });
  });

  it('uses id null where the request id is unknown', () => {
    expect(toErrorFrame(new ProxyError(ErrorCode.INVALID_REQUEST, 'bad'), null).id).toBeNull();
  });

  it('adds retryAfter on RATE_LIMITED only', () => {
    expect(toErrorFrame(new ProxyError(ErrorCode.RATE_LIMITED, 'slow down', { retryAfter: 42 }), '1')).toMatchObject({ retryAfter: 42 });
    expect(toErrorFrame(new ProxyError(ErrorCode.FORBIDDEN, 'no', { retryAfter: 42 }), '1')).not.toHaveProperty('retryAfter');
  });

  it('replaces any non-ProxyError with a generic INTERNAL_ERROR that carries no internals', () => {
    const secret = new Error('ENOENT: /home/alice/.local/share/credproxy/tokens/gh/default.json sk-live-123');
    for (const err of [secret, new TypeError('x is undefined'), 'a string', { code: 'FORBIDDEN', message: 'fake' }, undefined]) {
      const frame = toErrorFrame(err, '7');
      expect(frame).toEqual({ v: 2, id: '7', ok: false, code: 'INTERNAL_ERROR', error: INTERNAL_ERROR_MESSAGE });
      const bytes = JSON.stringify(frame);
      expect(bytes).not.toContain('/home/alice');
      expect(bytes).not.toContain('sk-live');
      expect(bytes).not.toMatch(/\bat .*:\d+:\d+/);
    }
  });

  it('replaces the message of a ProxyError that says INTERNAL_ERROR', () => {
    const frame = toErrorFrame(new ProxyError(ErrorCode.INTERNAL_ERROR, 'stack: /srv/secret.json'), null);
    expect(frame.error).toBe(INTERNAL_ERROR_MESSAGE);
  });

  it('ProxyError keeps its code, name and cause', () => {
    const cause = new Error('inner');
    const err = new ProxyError(ErrorCode.REFRESH_FAILED, 'outer', { cause });
    expect(err).toBeInstanceOf(Error);
    expect(err.name).toBe('ProxyError');
    expect(err.code).toBe('REFRESH_FAILED');
    expect(err.cause).toBe(cause);
  });
});

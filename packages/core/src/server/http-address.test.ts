import { describe, expect, it } from 'vitest';
import { formatHttpAddress, parseHttpAddress } from './http-address.js';

describe('parseHttpAddress', () => {
  it('takes loopback ports and absolute socket paths', () => {
    expect(parseHttpAddress('127.0.0.1:0')).toEqual({ kind: 'tcp', host: '127.0.0.1', port: 0 });
    expect(parseHttpAddress('localhost:8787')).toEqual({ kind: 'tcp', host: '127.0.0.1', port: 8787 });
    expect(parseHttpAddress('[::1]:9')).toEqual({ kind: 'tcp', host: '::1', port: 9 });
    expect(parseHttpAddress('/run/user/1000/box//http.sock')).toEqual({ kind: 'unix', path: '/run/user/1000/box/http.sock' });
    expect(formatHttpAddress(parseHttpAddress('[::1]:9'))).toBe('[::1]:9');
    expect(formatHttpAddress(parseHttpAddress('localhost:1'))).toBe('127.0.0.1:1');
  });

  it.each(['0.0.0.0:8787', '192.168.1.2:80', ':8787', '8787', 'example.com:80', 'relative/path.sock', '127.0.0.1:65536', '127.0.0.1:-1', '[::]:80'])(
    'refuses %s, naming what it takes',
    (value) => {
      expect(() => parseHttpAddress(value)).toThrow(/Unix socket path or 127\.0\.0\.1:PORT|not a port/);
    },
  );

  it('refuses a socket path longer than sun_path allows', () => {
    expect(() => parseHttpAddress('/' + 'x'.repeat(200))).toThrow();
  });
});

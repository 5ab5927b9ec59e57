/**
 * The address of a client's HTTP listener (`client add --http ADDR`), checked where it enters:
 * a Unix socket path or a loopback port, never another interface.
 */
import path from 'node:path';
import { ErrorCode, ProxyError } from '../protocol/errors.js';
import { assertSocketPathFits } from '../paths.js';

/** Where an HTTP listener listens. */
export type HttpAddress = { kind: 'unix'; path: string } | { kind: 'tcp'; host: '127.0.0.1' | '::1'; port: number };

/** Open connections one HTTP listener takes at once (node:http refuses more). */
export const HTTP_LISTENER_MAX_CONNECTIONS = 256;

/**
 * `--http ADDR`: an absolute Unix socket path, or a loopback `127.0.0.1:PORT` / `[::1]:PORT`
 * (`localhost:PORT` means 127.0.0.1; port 0 picks a free one). Never another interface: the
 * listener forwards with the owner's credentials.
 */
export function parseHttpAddress(value: string): HttpAddress {
  if (value.startsWith('/')) {
    assertSocketPathFits(value);
    return { kind: 'unix', path: path.normalize(value) };
  }
  const m = /^(127\.0\.0\.1|localhost|\[::1\]):(\d{1,5})$/.exec(value);
  if (!m) {
    throw new ProxyError(
      ErrorCode.INVALID_REQUEST,
      `--http takes an absolute Unix socket path or 127.0.0.1:PORT (port 0 picks one), not ${JSON.stringify(value.slice(0, 80))} — ` +
        'credproxy listens only on loopback; share it with a container by mounting a socket path',
    );
  }
  const port = Number(m[2]);
  if (port > 65535) throw new ProxyError(ErrorCode.INVALID_REQUEST, `--http port ${port} is not a port (0-65535)`);
  return { kind: 'tcp', host: m[1] === '[::1]' ? '::1' : '127.0.0.1', port };
}

export function formatHttpAddress(address: HttpAddress): string {
  if (address.kind === 'unix') return address.path;
  return address.host === '::1' ? `[::1]:${address.port}` : `${address.host}:${address.port}`;
}

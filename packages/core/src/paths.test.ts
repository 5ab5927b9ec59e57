import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ErrorCode } from './protocol/errors.js';
import { assertSocketPathFits, defaultSocketPath, resolvePaths, SOCKET_PATH_MAX_BYTES } from './paths.js';

describe('defaultSocketPath', () => {
  it('prefers $CREDPROXY_SOCKET, resolved to an absolute path', () => {
    expect(defaultSocketPath({ env: { CREDPROXY_SOCKET: '/x/y.sock', XDG_RUNTIME_DIR: '/run/user/1' } })).toBe('/x/y.sock');
    expect(defaultSocketPath({ env: { CREDPROXY_SOCKET: 'rel.sock' } })).toBe(path.resolve('rel.sock'));
  });

  it('then $XDG_RUNTIME_DIR/credproxy/proxy.sock', () => {
    expect(defaultSocketPath({ env: { XDG_RUNTIME_DIR: '/run/user/1000' } })).toBe('/run/user/1000/credproxy/proxy.sock');
  });

  it('then <tmpdir>/credproxy-<uid>/proxy.sock', () => {
    expect(defaultSocketPath({ env: {}, uid: 1234, tmpdir: '/tmp' })).toBe('/tmp/credproxy-1234/proxy.sock');
  });
});

describe('resolvePaths', () => {
  it('takes config and data from the environment it is given', () => {
    const p = resolvePaths({ env: { CREDPROXY_CONFIG: '/c/config.json', CREDPROXY_DATA_DIR: '/d', CREDPROXY_SOCKET: '/r/p.sock' } });
    expect(p).toEqual({
      configFile: '/c/config.json',
      dataDir: '/d',
      tokensDir: '/d/tokens',
      keysDir: '/d/keys',
      clientsFile: '/d/clients.json',
      storeKeyFile: '/d/store-key.json',
      autoKeyFile: '/c/store.key',
      socketPath: '/r/p.sock',
      runDir: '/r',
      pidFile: '/r/p.sock.pid',
      auditLog: '/d/audit.log',
    });
  });

  it('lets an explicit socketPath win over the environment', () => {
    const p = resolvePaths({ env: { CREDPROXY_SOCKET: '/r/p.sock' }, socketPath: '/s/q.sock' });
    expect(p.socketPath).toBe('/s/q.sock');
    expect(p.runDir).toBe('/s');
    expect(p.pidFile).toBe('/s/q.sock.pid');
  });

  it('falls back to env-paths names for config and data', () => {
    const p = resolvePaths({ env: {}, uid: 1, tmpdir: '/tmp' });
    expect(p.configFile.endsWith(path.join('credproxy', 'config.json'))).toBe(true);
    expect(path.basename(p.dataDir)).toBe('credproxy');
  });

  it('derives every data-dir path (tokens, keys, clients, audit log) from the data dir', () => {
    const p = resolvePaths({ env: { CREDPROXY_DATA_DIR: 'rel/data' } });
    expect(path.isAbsolute(p.dataDir)).toBe(true);
    for (const f of [p.tokensDir, p.keysDir, p.clientsFile, p.auditLog]) expect(path.dirname(f)).toBe(p.dataDir);
  });

  it('is the only place in core that names a file or folder inside the data dir', () => {
    const src = path.dirname(fileURLToPath(import.meta.url));
    const offenders: string[] = [];
    const walk = (dir: string): void => {
      for (const entry of readdirSync(dir, { withFileTypes: true })) {
        const full = path.join(dir, entry.name);
        if (entry.isDirectory()) walk(full);
        else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts') && full !== fileURLToPath(new URL('./paths.ts', import.meta.url))) {
          if (/path\.(join|resolve)\([^)]*dataDir/.test(readFileSync(full, 'utf8'))) offenders.push(path.relative(src, full));
        }
      }
    };
    walk(src);
    expect(offenders).toEqual([]);
  });

  it('computes from each call, caching nothing', () => {
    const a = resolvePaths({ env: { CREDPROXY_DATA_DIR: '/a' } });
    const b = resolvePaths({ env: { CREDPROXY_DATA_DIR: '/b' } });
    expect([a.dataDir, b.dataDir]).toEqual(['/a', '/b']);
  });
});

describe('assertSocketPathFits', () => {
  const pathOf = (bytes: number): string => '/' + 'a'.repeat(bytes - 1);

  it('accepts a path of exactly the limit', () => {
    expect(() => assertSocketPathFits(pathOf(SOCKET_PATH_MAX_BYTES))).not.toThrow();
  });

  it('refuses one byte more with a message that names the limit and the fix', () => {
    const long = pathOf(SOCKET_PATH_MAX_BYTES + 1);
    expect(() => assertSocketPathFits(long)).toThrow(expect.objectContaining({ code: ErrorCode.INVALID_REQUEST }));
    expect(() => assertSocketPathFits(long)).toThrow(new RegExp(`${SOCKET_PATH_MAX_BYTES}.*--socket`));
  });

  it('counts bytes, not characters', () => {
    const chars = Math.floor(SOCKET_PATH_MAX_BYTES / 2) + 1; // fewer characters than the limit, more bytes
    expect(() => assertSocketPathFits('/' + 'é'.repeat(chars))).toThrow();
  });

  it('is 107 bytes on Linux (sun_path is 108 with the NUL)', () => {
    if (process.platform === 'linux') expect(SOCKET_PATH_MAX_BYTES).toBe(107);
  });
});

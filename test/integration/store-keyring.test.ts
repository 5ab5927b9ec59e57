/**
 * The OS keyring as the key source (SPEC §8), for real: a Secret Service (gnome-keyring-daemon,
 * unlocked) on a private D-Bus session (dbus-run-session), the proxy started inside it. Where
 * none can run, only the refusal is tested (key file and passphrase: store-encryption.test.ts).
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { resolvePaths, startProxy } from '../../packages/core/src/index.js';
import { proxyLayout, removeTempDirs, tempDir } from '../support/temp.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
afterAll(() => removeTempDirs());

/** Start a proxy (built core) inside one D-Bus session with an unlocked keyring, run `steps`, print JSON lines. */
const CHILD = `
import { resolvePaths, startProxy, ProxyClient } from '@credproxy/core';
const [dataDir, configFile, socketPath, access] = process.argv.slice(1);
const env = { CREDPROXY_DATA_DIR: dataDir, CREDPROXY_CONFIG: configFile };
const paths = resolvePaths({ env, socketPath });
const out = (o) => process.stdout.write(JSON.stringify(o) + '\\n');
for (const round of [1, 2]) {
  const proxy = await startProxy({ paths, env: { ...process.env, ...env } });
  const c = await ProxyClient.connect({ socketPath });
  if (round === 1) await c.call('save_token', { provider: 'gh', token: { access_token: access, refresh_token: 'rt-' + access, expiry: Math.floor(Date.now() / 1000) + 3600 } });
  out({ round, status: await c.call('store_status', {}), token: await c.call('get_token', { provider: 'gh' }) });
  c.close();
  await proxy.stop();
}
`;

function inKeyringSession(args: string[], home: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const script = `echo -n credproxy-test | gnome-keyring-daemon --unlock --components=secrets >/dev/null && exec node --input-type=module -e "$CHILD" -- "$@"`;
  return new Promise((resolve) => {
    const child = spawn('dbus-run-session', ['--', 'sh', '-c', script, 'sh', ...args], {
      cwd: root,
      env: { PATH: process.env.PATH, HOME: home, CHILD, XDG_DATA_HOME: path.join(home, '.local', 'share') },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('exit', (code) => resolve({ code: code ?? 1, stdout, stderr }));
  });
}

describe('OS keyring key source', () => {
  // gnome-keyring and dbus are test prerequisites (README; .ci/run installs them): no skip.
  it('a Secret Service keyring wraps the data key: no key file is made, the store opens again from the keyring', async () => {
    const dir = await tempDir();
    const home = await tempDir('cph-');
    const layout = proxyLayout(dir);
    const access = `at-${randomBytes(12).toString('hex')}`;
    const run = await inKeyringSession([layout.dataDir, layout.configFile, path.join(dir, 'k.sock'), access], home);
    expect(run.code, run.stderr).toBe(0);
    const lines = run.stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(lines).toHaveLength(2);
    for (const line of lines) {
      expect(line.status).toMatchObject({ backend: 'file', key_source: 'keyring', encrypted: true });
      expect(line.status.key_location).toMatch(/^credproxy\/store-key:/);
      expect(line.token.access_token).toBe(access);
    }
    // No key file anywhere near the store; the wrapped key says what wraps it.
    await expect(fs.stat(path.join(dir, 'store.key'))).rejects.toThrow();
    expect(JSON.parse(await fs.readFile(path.join(layout.dataDir, 'store-key.json'), 'utf8')).key_source).toBe('keyring');
    const files = (await fs.readdir(layout.dataDir, { recursive: true, withFileTypes: true })).filter((e) => e.isFile());
    for (const f of files) expect((await fs.readFile(path.join(f.parentPath, f.name))).includes(Buffer.from(access))).toBe(false);

    // Without that keyring (no D-Bus session here), the store is refused, naming the fix — not
    // silently re-keyed with a new key file.
    await expect(
      startProxy({ paths: resolvePaths({ env: layout.env, socketPath: path.join(dir, 'n.sock') }), env: { ...layout.env, DBUS_SESSION_BUS_ADDRESS: 'unix:path=/nonexistent' } }),
    ).rejects.toThrow(/wrapped by the OS keyring, which does not answer/);
    await expect(fs.stat(path.join(dir, 'store.key'))).rejects.toThrow();

    // Another keyring (a fresh one) does not hold this store's key: refused too.
    const other = await inKeyringSession([layout.dataDir, layout.configFile, path.join(dir, 'o.sock'), access], await tempDir('cph-'));
    expect(other.code).not.toBe(0);
    expect(other.stderr).toMatch(/does not unwrap this store's data key/);
  }, 60_000);

  it('no keyring answers: a store the keyring wrapped is refused, naming the fix', async () => {
    const dir = await tempDir();
    const layout = proxyLayout(dir);
    await fs.mkdir(layout.dataDir, { mode: 0o700 });
    await fs.writeFile(path.join(layout.dataDir, 'store-key.json'), JSON.stringify({ format: 'credproxy-store-key', version: 1, key_source: 'keyring', current: 'aaaaaaaaaaaaaaaa', keys: [{ id: 'aaaaaaaaaaaaaaaa', wrapped: 'AAAA' }] }), { mode: 0o600 });
    await expect(
      startProxy({ paths: resolvePaths({ env: layout.env, socketPath: path.join(dir, 'n.sock') }), env: { ...layout.env, CREDPROXY_NO_KEYRING: '1' } }),
    ).rejects.toThrow(/wrapped by the OS keyring, which does not answer — unlock it/);
  });
});

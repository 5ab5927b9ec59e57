/**
 * Encryption at rest (SPEC §8) on the file store: the key sources (auto key file, key file,
 * passphrase), store status, migration of a plaintext data dir, rekey, records bound to their
 * names, and no secret byte in any file of the data dir.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { resolvePaths, startProxy, type Logger, type RunningProxy } from '../../packages/core/src/index.js';
import { RawClient } from '../support/raw-client.js';
import { proxyLayout, removeTempDirs, tempDir, type ProxyLayout } from '../support/temp.js';

const running: RunningProxy[] = [];
const clients: RawClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await Promise.all(running.splice(0).map((p) => p.stop()));
  await removeTempDirs();
});

interface Started {
  proxy: RunningProxy;
  c: RawClient;
  logs: string[];
}

async function start(layout: ProxyLayout, env: Record<string, string> = {}): Promise<Started> {
  const logs: string[] = [];
  const logger: Logger = { log: (level, message, fields) => logs.push(`${level} ${message} ${JSON.stringify(fields ?? {})}`) };
  const proxy = await startProxy({ paths: resolvePaths({ env: layout.env, socketPath: layout.socketPath }), logger, env: { ...layout.env, CREDPROXY_NO_KEYRING: '1', ...env } });
  running.push(proxy);
  const c = await RawClient.open(layout.socketPath);
  clients.push(c);
  return { proxy, c, logs };
}

async function stop(s: Started): Promise<void> {
  s.c.close();
  await s.proxy.stop();
  running.splice(running.indexOf(s.proxy), 1);
}

async function ok(c: RawClient, op: string, payload: Record<string, unknown> = {}): Promise<any> {
  const answer = await c.request(op, payload);
  expect(answer.value, `${op}: ${answer.body.toString()}`).toMatchObject({ ok: true });
  return answer.value.data;
}

const SECRETS = {
  access: `at-${randomBytes(12).toString('hex')}`,
  refresh: `rt-${randomBytes(12).toString('hex')}`,
  apiKey: `sk-${randomBytes(12).toString('hex')}`,
};

/** Stores a token, an API key and a client; returns the client's capability token. */
async function fill(c: RawClient): Promise<string> {
  await ok(c, 'save_token', { provider: 'gh', token: { access_token: SECRETS.access, refresh_token: SECRETS.refresh, expiry: Math.floor(Date.now() / 1000) + 3600 } });
  await ok(c, 'set_api_key', { name: 'openai', key: SECRETS.apiKey });
  const added = await ok(c, 'client_add', { name: 'box', scopes: [{ provider: 'gh' }], api_keys: ['openai'] });
  return added.capability_token as string;
}

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await fs.readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) out.push(path.join(entry.parentPath, entry.name));
  }
  return out;
}

/** Every secret, raw and in the encodings a careless store might use, in no file of `dir`. */
async function expectNoSecretIn(dir: string, secrets: string[]): Promise<number> {
  const files = await filesUnder(dir);
  for (const file of files) {
    const bytes = await fs.readFile(file);
    for (const s of secrets) {
      for (const form of [s, Buffer.from(s).toString('base64'), Buffer.from(s).toString('hex')]) {
        expect(bytes.includes(Buffer.from(form)), `${form} found in ${file}`).toBe(false);
      }
    }
  }
  return files.length;
}

describe('no key source configured', () => {
  it('creates a key file in the config dir once, says so loudly, and encrypts every record', async () => {
    const layout = proxyLayout(await tempDir());
    const s = await start(layout);
    const keyFile = path.join(layout.dir, 'store.key');
    expect((await fs.stat(keyFile)).mode & 0o777).toBe(0o600);
    expect(s.logs.filter((l) => l.includes('created the key file'))).toHaveLength(1);
    expect(s.logs.join('\n')).toContain('CREDPROXY_KEY_FILE');
    const capability = await fill(s.c);

    const status = await ok(s.c, 'store_status');
    expect(status).toMatchObject({ backend: 'file', key_source: 'auto_key_file', encrypted: true, key_location: keyFile, records: { tokens: 1, api_keys: 1, clients: 1 } });
    expect(status.warnings.join(' ')).toContain('CREDPROXY_KEY_FILE');

    const keyBytes = (await fs.readFile(keyFile, 'utf8')).trim();
    const scanned = await expectNoSecretIn(layout.dataDir, [SECRETS.access, SECRETS.refresh, SECRETS.apiKey, capability, keyBytes]);
    expect(scanned).toBeGreaterThanOrEqual(4); // token, key, clients.json, store-key.json
    expect(JSON.stringify(status)).not.toContain(keyBytes);

    // The second start finds its key and says nothing about creating one.
    await stop(s);
    const again = await start(layout);
    expect(again.logs.join('\n')).not.toContain('created the key file');
    expect(await ok(again.c, 'get_token', { provider: 'gh' })).toMatchObject({ access_token: SECRETS.access });
    expect(await ok(again.c, 'get_api_key', { name: 'openai' })).toEqual({ key: SECRETS.apiKey });
    expect((await ok(again.c, 'client_list')).clients.map((x: { name: string }) => x.name)).toEqual(['box']);
  });

  it('a record copied under another name does not decrypt, and a changed byte is refused', async () => {
    const layout = proxyLayout(await tempDir());
    const s = await start(layout);
    await fill(s.c);
    await stop(s);
    const tokens = path.join(layout.dataDir, 'tokens', 'gh');
    await fs.copyFile(path.join(tokens, 'default.json'), path.join(tokens, 'copied.json'));
    await fs.copyFile(path.join(layout.dataDir, 'keys', 'openai.key'), path.join(layout.dataDir, 'keys', 'other.key'));
    const again = await start(layout);
    const copied = await again.c.request('get_token', { provider: 'gh', bucket: 'copied' });
    expect(copied.value.ok).toBe(false);
    expect(copied.body.toString()).not.toContain(SECRETS.access);
    const otherKey = await again.c.request('get_api_key', { name: 'other' });
    expect(otherKey.value.ok).toBe(false);
    expect(otherKey.body.toString()).not.toContain(SECRETS.apiKey);
    // The original still opens.
    expect(await ok(again.c, 'get_api_key', { name: 'openai' })).toEqual({ key: SECRETS.apiKey });
  });
});

describe('explicit key sources', () => {
  it('CREDPROXY_KEY_FILE (hex) wraps the data key; another key file is refused at start, naming the problem', async () => {
    const dir = await tempDir();
    const layout = proxyLayout(dir);
    const keyFile = path.join(dir, 'k.hex');
    await fs.writeFile(keyFile, randomBytes(32).toString('hex') + '\n', { mode: 0o600 });
    const s = await start(layout, { CREDPROXY_KEY_FILE: keyFile });
    expect(await ok(s.c, 'store_status')).toMatchObject({ key_source: 'key_file', key_location: keyFile, encrypted: true });
    await fill(s.c);
    await stop(s);
    await expect(fs.stat(path.join(dir, 'store.key'))).rejects.toThrow(); // no auto key file

    const wrong = path.join(dir, 'wrong.key');
    await fs.writeFile(wrong, randomBytes(32), { mode: 0o600 });
    await expect(start(layout, { CREDPROXY_KEY_FILE: wrong })).rejects.toThrow(/does not unwrap this store's data key/);
    await fs.chmod(keyFile, 0o644);
    await expect(start(layout, { CREDPROXY_KEY_FILE: keyFile })).rejects.toThrow(/chmod 600/);
    await fs.chmod(keyFile, 0o600);
    const short = path.join(dir, 'short.key');
    await fs.writeFile(short, 'not a key', { mode: 0o600 });
    await expect(start(layout, { CREDPROXY_KEY_FILE: short })).rejects.toThrow(/256-bit key/);
    const back = await start(layout, { CREDPROXY_KEY_FILE: keyFile });
    expect(await ok(back.c, 'get_token', { provider: 'gh' })).toMatchObject({ access_token: SECRETS.access });
  });

  it('a passphrase file (scrypt) wraps it; a wrong passphrase is refused; without one the start names the fix', async () => {
    const dir = await tempDir();
    const layout = proxyLayout(dir);
    const pass = path.join(dir, 'pass');
    await fs.writeFile(pass, 'correct horse battery staple\n', { mode: 0o600 });
    const s = await start(layout, { CREDPROXY_PASSPHRASE_FILE: pass });
    expect(await ok(s.c, 'store_status')).toMatchObject({ key_source: 'passphrase', encrypted: true });
    await fill(s.c);
    await stop(s);
    const stored = JSON.parse(await fs.readFile(path.join(layout.dataDir, 'store-key.json'), 'utf8'));
    expect(stored).toMatchObject({ key_source: 'passphrase', kdf: { name: 'scrypt' } });
    await expectNoSecretIn(layout.dataDir, ['correct horse battery staple', SECRETS.refresh]);

    const wrong = path.join(dir, 'wrong');
    await fs.writeFile(wrong, 'incorrect horse battery staple\n', { mode: 0o600 });
    await expect(start(layout, { CREDPROXY_PASSPHRASE_FILE: wrong })).rejects.toThrow(/does not unwrap/);
    await expect(start(layout)).rejects.toThrow(/CREDPROXY_PASSPHRASE_FILE/);
    const back = await start(layout, { CREDPROXY_PASSPHRASE_FILE: pass });
    expect(await ok(back.c, 'get_api_key', { name: 'openai' })).toEqual({ key: SECRETS.apiKey });
  });
});

describe('plaintext, migration and rekey', () => {
  it('"encryption": "none" stores plaintext and warns at every start', async () => {
    const layout = proxyLayout(await tempDir());
    await fs.writeFile(layout.configFile, JSON.stringify({ encryption: 'none' }));
    const s = await start(layout);
    expect(s.logs.filter((l) => l.startsWith('warn WARNING: encryption is off'))).toHaveLength(1);
    expect(await ok(s.c, 'store_status')).toMatchObject({ key_source: 'none', encrypted: false });
    await fill(s.c);
    expect(await fs.readFile(path.join(layout.dataDir, 'keys', 'openai.key'), 'utf8')).toBe(SECRETS.apiKey);
    await stop(s);
    const again = await start(layout);
    expect(again.logs.filter((l) => l.startsWith('warn WARNING: encryption is off'))).toHaveLength(1);
  });

  it('a plaintext data dir is encrypted on the first start with a key, and every record still works', async () => {
    const layout = proxyLayout(await tempDir());
    await fs.writeFile(layout.configFile, JSON.stringify({ encryption: 'none' }));
    const plain = await start(layout);
    const capability = await fill(plain.c);
    await stop(plain);
    await fs.writeFile(layout.configFile, JSON.stringify({}));

    const s = await start(layout);
    expect(s.logs.join('\n')).toMatch(/encrypted 3 stored records/);
    await expectNoSecretIn(layout.dataDir, [SECRETS.access, SECRETS.refresh, SECRETS.apiKey, capability]);
    expect(await ok(s.c, 'get_token', { provider: 'gh' })).toMatchObject({ access_token: SECRETS.access });
    expect(await ok(s.c, 'get_api_key', { name: 'openai' })).toEqual({ key: SECRETS.apiKey });
    // The client's capability token still opens its scope.
    const box = await RawClient.open(layout.socketPath, capability);
    clients.push(box);
    expect((await box.request('get_api_key', { name: 'openai' })).value).toMatchObject({ ok: true, data: { key: SECRETS.apiKey } });
    await stop(s);
    // Nothing left to migrate on the next start.
    const again = await start(layout);
    expect(again.logs.join('\n')).not.toMatch(/encrypted \d+ stored records/);
  });

  it('a plaintext record planted in an encrypted store is refused, not served', async () => {
    const layout = proxyLayout(await tempDir());
    const s = await start(layout);
    await fill(s.c);
    await fs.writeFile(path.join(layout.dataDir, 'keys', 'planted.key'), 'sk-planted', { mode: 0o600 });
    const planted = await s.c.request('get_api_key', { name: 'planted' });
    expect(planted.value).toMatchObject({ ok: false });
    expect(planted.body.toString()).not.toContain('sk-planted');
  });

  it('rekey replaces the data key: every record re-sealed, readable now and after a restart', async () => {
    const layout = proxyLayout(await tempDir());
    const s = await start(layout);
    await fill(s.c);
    const before = await ok(s.c, 'store_status');
    const tokenFile = path.join(layout.dataDir, 'tokens', 'gh', 'default.json');
    const sealedBefore = await fs.readFile(tokenFile, 'utf8');
    const result = await ok(s.c, 'store_rekey');
    expect(result).toMatchObject({ rekeyed: { tokens: 1, api_keys: 1, clients: 1 }, key_source: 'auto_key_file' });
    expect(result.data_key_id).not.toBe(before.data_key_id);
    expect((await ok(s.c, 'store_status')).data_key_id).toBe(result.data_key_id);
    const sealedAfter = await fs.readFile(tokenFile, 'utf8');
    expect(sealedAfter).not.toBe(sealedBefore);
    expect(sealedAfter).toContain(result.data_key_id);
    const keyRecord = JSON.parse(await fs.readFile(path.join(layout.dataDir, 'store-key.json'), 'utf8'));
    expect(keyRecord.keys.map((k: { id: string }) => k.id)).toEqual([result.data_key_id]);
    expect(await ok(s.c, 'get_api_key', { name: 'openai' })).toEqual({ key: SECRETS.apiKey });
    await stop(s);
    const again = await start(layout);
    expect(await ok(again.c, 'get_token', { provider: 'gh' })).toMatchObject({ access_token: SECRETS.access });
    expect(await ok(again.c, 'get_api_key', { name: 'openai' })).toEqual({ key: SECRETS.apiKey });
  });

  it('a Redis store without a key file or passphrase refuses to start', async () => {
    const layout = proxyLayout(await tempDir());
    await fs.writeFile(layout.configFile, JSON.stringify({ store: { type: 'redis', url: 'redis://127.0.0.1:1' } }));
    await expect(start(layout)).rejects.toThrow(/needs an explicit key: set CREDPROXY_KEY_FILE/);
    await fs.writeFile(layout.configFile, JSON.stringify({ store: { type: 'redis', url: 'redis://127.0.0.1:1' }, encryption: 'none' }));
    await expect(start(layout)).rejects.toThrow(/cannot be "none" with a Redis store/);
  });
});

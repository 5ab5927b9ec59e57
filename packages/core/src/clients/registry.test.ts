import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ErrorCode } from '../protocol/errors.js';
import { FileClientStore } from '../store/backends/file-clients.js';
import { CAPABILITY_TOKEN_PATTERN, ClientRegistry, toClientInfo } from './registry.js';

let dir: string;
let file: string;
let now = 1_700_000_000_000;
const clock = { now: () => now };

beforeEach(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'cp-reg-'));
  file = path.join(dir, 'data', 'clients.json');
  now = 1_700_000_000_000;
});
afterEach(() => fs.rm(dir, { recursive: true, force: true }));

async function registry(): Promise<ClientRegistry> {
  const r = new ClientRegistry(new FileClientStore(file), clock);
  await r.load();
  return r;
}

describe('ClientRegistry', () => {
  it('issues a 64-lowercase-hex token that authenticates its client', async () => {
    const r = await registry();
    const { record, token } = await r.add({ name: 'box', scopes: [{ provider: 'gh' }] });
    expect(token).toMatch(/^[0-9a-f]{64}$/);
    expect(CAPABILITY_TOKEN_PATTERN.test(token)).toBe(true);
    expect(r.authenticate(token)).toEqual(record);
  });

  it('issues a different token each time', async () => {
    const r = await registry();
    const tokens = new Set<string>();
    for (let i = 0; i < 20; i++) tokens.add((await r.add({ name: `c${i}`, scopes: [] })).token);
    expect(tokens.size).toBe(20);
  });

  it('stores only a hash: the file is 0600 and holds no token', async () => {
    const r = await registry();
    const { token } = await r.add({ name: 'box', scopes: [] });
    const text = await fs.readFile(file, 'utf8');
    expect(text).not.toContain(token);
    expect(text).not.toContain(token.toUpperCase());
    expect(text).not.toContain(Buffer.from(token, 'hex').toString('base64'));
    expect((await fs.stat(file)).mode & 0o777).toBe(0o600);
  });

  it('survives a reload', async () => {
    const r = await registry();
    const { token } = await r.add({ name: 'box', scopes: [{ provider: 'gh', bucket: 'work' }], api_keys: ['k', 'k'], allow_refresh: true });
    const again = await registry();
    expect(again.authenticate(token)?.name).toBe('box');
    expect(again.get('box')).toMatchObject({ scopes: [{ provider: 'gh', bucket: 'work' }], api_keys: ['k'], allow_login: false, allow_refresh: true });
  });

  it('rejects wrong, malformed and uppercase tokens', async () => {
    const r = await registry();
    const { token } = await r.add({ name: 'box', scopes: [] });
    const flipped = (token[0] === 'a' ? 'b' : 'a') + token.slice(1);
    for (const t of [flipped, token.toUpperCase(), token.slice(1), `${token}0`, '', ' '.repeat(64), 'g'.repeat(64)]) {
      expect(r.authenticate(t)).toBeUndefined();
    }
  });

  it('refuses a duplicate name with a message naming the fix', async () => {
    const r = await registry();
    await r.add({ name: 'box', scopes: [] });
    await expect(r.add({ name: 'box', scopes: [] })).rejects.toMatchObject({ code: ErrorCode.INVALID_REQUEST, message: expect.stringContaining('client remove box') });
  });

  it('expires a client after ttl_seconds', async () => {
    const r = await registry();
    const { token, record } = await r.add({ name: 'box', scopes: [], ttl_seconds: 60 });
    expect(record.expires_at).toBe(Math.floor(now / 1000) + 60);
    expect(r.authenticate(token)).toBeDefined();
    now += 59_000;
    expect(r.authenticate(token)).toBeDefined();
    now += 1_000;
    expect(r.authenticate(token)).toBeUndefined();
    expect(r.isExpired(record)).toBe(true);
  });

  it('removes a client and its token stops working', async () => {
    const r = await registry();
    const { token } = await r.add({ name: 'box', scopes: [] });
    expect(await r.remove('box')).toMatchObject({ name: 'box' });
    expect(r.authenticate(token)).toBeUndefined();
    expect(await r.remove('box')).toBeUndefined();
    expect((await registry()).list()).toEqual([]);
  });

  it('lists sorted by name, and the info view never carries the hash', async () => {
    const r = await registry();
    await r.add({ name: 'b', scopes: [], socket: '/tmp/b.sock' });
    await r.add({ name: 'a', scopes: [] });
    expect(r.list().map((c) => c.name)).toEqual(['a', 'b']);
    const info = r.list().map(toClientInfo);
    expect(JSON.stringify(info)).not.toContain('token');
    expect(info[1]).toEqual({ name: 'b', scopes: [], api_keys: [], allow_login: false, allow_refresh: false, socket: '/tmp/b.sock' });
  });

  it('refuses a registry file of the wrong shape', async () => {
    await fs.mkdir(path.dirname(file), { recursive: true });
    await fs.writeFile(file, '{"clients": {}}');
    await expect(registry()).rejects.toThrow(/not a credproxy client registry/);
  });

  it('refuses a registry file replaced by a symlink (issue 9, item 10)', async () => {
    await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
    const target = path.join(path.dirname(file), 'elsewhere.json');
    await fs.writeFile(target, '{"clients": []}');
    await fs.symlink(target, file);
    await expect(registry()).rejects.toThrow(/symbolic link/);
  });
});

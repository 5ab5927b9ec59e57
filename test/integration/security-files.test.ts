/**
 * Issue 9, item 10: the proxy's files on disk. A data dir that someone else owns or can write to
 * is refused at start; a key or token file that was replaced by a symlink is refused, never
 * read through, so a sandbox cannot get the bytes of a file the owner can read.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
// The sources, as test/support/temp.ts uses: the checks under test live in core.
import { ProxyClient, resolvePaths, startProxy } from '../../packages/core/src/index.js';
import { afterEach, describe, expect, it } from 'vitest';
import { RawClient } from '../support/raw-client.js';
import { cleanupTestEnv, proxyLayout, startTestProxy, tempDir } from '../support/temp.js';

const OWNER_FILE_BYTES = 'OWNER-PRIVATE-FILE-CONTENT-93f1';
const opened: RawClient[] = [];
afterEach(async () => {
  for (const c of opened.splice(0)) c.close();
  await cleanupTestEnv();
});

async function answers(socketPath: string): Promise<boolean> {
  const c = await ProxyClient.connect({ socketPath, timeoutMs: 500 }).catch(() => undefined);
  c?.close();
  return c !== undefined;
}

/** A started proxy with a sandbox client allowed the key `openai` and provider `gh`. */
async function proxyWithSandbox() {
  const { proxy, layout } = await startTestProxy();
  const owner = await ProxyClient.connect({ socketPath: proxy.socketPath });
  await owner.call('set_api_key', { name: 'openai', key: 'sk-real-key' });
  await owner.call('save_token', { provider: 'gh', token: { access_token: 'gh-access', expiry: Math.floor(Date.now() / 1000) + 3600 } });
  const { capability_token } = await owner.call('client_add', { name: 'box', scopes: [{ provider: 'gh' }], api_keys: ['openai'] });
  owner.close();
  const sandbox = await RawClient.open(proxy.socketPath, capability_token);
  opened.push(sandbox);
  // A file only the owner should read, e.g. ~/.ssh/id_ed25519.
  const ownerFile = path.join(layout.dir, 'owner-private');
  await fs.writeFile(ownerFile, OWNER_FILE_BYTES, { mode: 0o600 });
  return { proxy, layout, sandbox, ownerFile };
}

describe('secret files are not read through symlinks', () => {
  it('get_api_key on a key file replaced by a symlink is refused, and no byte of the target reaches the sandbox', async () => {
    const { layout, sandbox, ownerFile } = await proxyWithSandbox();
    expect((await sandbox.request('get_api_key', { name: 'openai' })).value).toMatchObject({ ok: true, data: { key: 'sk-real-key' } });

    const keyFile = path.join(layout.dataDir, 'keys', 'openai.key');
    await fs.rm(keyFile);
    await fs.symlink(ownerFile, keyFile);
    const answer = await sandbox.request('get_api_key', { name: 'openai' });
    expect(answer.value).toMatchObject({ ok: false, code: 'FORBIDDEN' });
    expect(sandbox.received.toString('utf8')).not.toContain(OWNER_FILE_BYTES.slice(0, 12));
  });

  it('get_token on a token file replaced by a symlink is refused', async () => {
    const { layout, sandbox, ownerFile } = await proxyWithSandbox();
    // A bucket the proxy has not read yet, so the file is read now and not served from memory.
    const tokenFile = path.join(layout.dataDir, 'tokens', 'gh', 'planted.json');
    await fs.writeFile(ownerFile, JSON.stringify({ provider: 'gh', bucket: 'planted', token: { access_token: OWNER_FILE_BYTES } }));
    await fs.symlink(ownerFile, tokenFile);
    const answer = await sandbox.request('get_token', { provider: 'gh', bucket: 'planted' });
    expect(answer.value.ok).toBe(false);
    expect(sandbox.received.toString('utf8')).not.toContain(OWNER_FILE_BYTES.slice(0, 12));
  });

  it('get_api_key from a keys/ directory that others can write to is refused, naming chmod 700', async () => {
    const { layout, sandbox } = await proxyWithSandbox();
    const keysDir = path.join(layout.dataDir, 'keys');
    await fs.chmod(keysDir, 0o777);
    const answer = await sandbox.request('get_api_key', { name: 'openai' });
    expect(answer.value).toMatchObject({ ok: false, code: 'FORBIDDEN' });
    expect(answer.value.error).toContain(`chmod 700 ${keysDir}`);
  });
});

describe('the data dir is checked at start', () => {
  it('a data dir with mode 0777 is refused at start, naming chmod 700, and nothing is left listening', async () => {
    const layout = proxyLayout(await tempDir());
    await fs.mkdir(layout.dataDir);
    await fs.chmod(layout.dataDir, 0o777);
    const err = await startProxy({ paths: resolvePaths({ env: layout.env, socketPath: layout.socketPath }) }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'FORBIDDEN' });
    expect((err as Error).message).toContain(`chmod 700 ${layout.dataDir}`);
    expect(await answers(layout.socketPath)).toBe(false);
    // After the fix the same layout starts.
    await fs.chmod(layout.dataDir, 0o700);
    const { proxy } = await startTestProxy({}, layout.dir);
    expect(await answers(proxy.socketPath)).toBe(true);
  });

  it.runIf(process.getuid?.() === 0)('a data dir that belongs to another uid is refused at start, naming chown', async () => {
    const layout = proxyLayout(await tempDir());
    await fs.mkdir(layout.dataDir, { mode: 0o700 });
    await fs.chown(layout.dataDir, 4242, 4242);
    const err = await startProxy({ paths: resolvePaths({ env: layout.env, socketPath: layout.socketPath }) }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'FORBIDDEN' });
    expect((err as Error).message).toMatch(/belongs to uid 4242/);
    expect((err as Error).message).toContain('chown');
    expect(await answers(layout.socketPath)).toBe(false);
  });

  it('a fresh setup (no data dir yet) starts, and creates it 0700', async () => {
    const { layout } = await startTestProxy();
    expect((await fs.stat(layout.dataDir)).mode & 0o777).toBe(0o700);
  });
});

import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ApiKeyStore } from './api-key-store.js';

let dir: string;
let keysDir: string;
beforeEach(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'cp-keys-'));
  keysDir = path.join(dir, 'keys');
});
afterEach(() => fs.rm(dir, { recursive: true, force: true }));

describe('ApiKeyStore', () => {
  it('stores a key verbatim in a 0600 file inside a 0700 directory', async () => {
    const store = new ApiKeyStore(keysDir);
    await store.set('openai', 'sk-abc\n with spaces ');
    expect(await store.get('openai')).toBe('sk-abc\n with spaces ');
    const st = await fs.stat(path.join(keysDir, 'openai.key'));
    expect(st.mode & 0o777).toBe(0o600);
    expect((await fs.stat(keysDir)).mode & 0o777).toBe(0o700);
  });

  it('answers undefined and [] before anything is stored', async () => {
    const store = new ApiKeyStore(keysDir);
    expect(await store.get('nope')).toBeUndefined();
    expect(await store.list()).toEqual([]);
    expect(await store.remove('nope')).toBe(false);
  });

  it('overwrites, lists sorted names only, and removes', async () => {
    const store = new ApiKeyStore(keysDir);
    await store.set('b', '1');
    await store.set('a', '2');
    await store.set('b', '3');
    expect(await store.get('b')).toBe('3');
    expect(await store.list()).toEqual(['a', 'b']);
    expect(await store.remove('a')).toBe(true);
    expect(await store.list()).toEqual(['b']);
  });

  it('lists a valid name that starts with a dot', async () => {
    const store = new ApiKeyStore(keysDir);
    await store.set('.env', 'x');
    await store.set('...', 'y');
    expect(await store.list()).toEqual(['...', '.env']);
  });

  it('ignores temp files and files that are not valid key names', async () => {
    const store = new ApiKeyStore(keysDir);
    await store.set('real', 'x');
    await fs.writeFile(path.join(keysDir, '.real.key.123.abcdef.tmp'), 'partial');
    await fs.writeFile(path.join(keysDir, 'has space.key'), 'x');
    await fs.writeFile(path.join(keysDir, 'notes.txt'), 'x');
    await fs.writeFile(path.join(keysDir, '.key'), 'x');
    expect(await store.list()).toEqual(['real']);
  });
});

describe('ApiKeyStore reads only its own files (issue 9, item 10)', () => {
  it('refuses a key file replaced by a symlink, never returning the target', async () => {
    const store = new ApiKeyStore(keysDir);
    await store.set('openai', 'sk-real');
    const target = path.join(dir, 'owners-ssh-key');
    await fs.writeFile(target, 'OWNER-PRIVATE-BYTES');
    await fs.rm(path.join(keysDir, 'openai.key'));
    await fs.symlink(target, path.join(keysDir, 'openai.key'));
    const err = await store.get('openai').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toContain('symbolic link');
    expect((err as Error).message).not.toContain('OWNER-PRIVATE');
  });

  it('refuses to read from a keys directory others can write to, where a key could be swapped', async () => {
    const store = new ApiKeyStore(keysDir);
    await store.set('openai', 'sk-real');
    await fs.chmod(keysDir, 0o777);
    await expect(store.get('openai')).rejects.toThrow(`chmod 700 ${keysDir}`);
    await expect(store.set('openai', 'sk-new')).rejects.toThrow(`chmod 700 ${keysDir}`);
  });
});

import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FileApiKeyStore } from './file-keys.js';

let dir: string;
let keysDir: string;
beforeEach(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'cp-keys-'));
  keysDir = path.join(dir, 'keys');
});
afterEach(() => fs.rm(dir, { recursive: true, force: true }));

describe('FileApiKeyStore', () => {
  it('stores a key verbatim in a 0600 file inside a 0700 directory', async () => {
    const store = new FileApiKeyStore(keysDir);
    await store.put({ name: 'openai', key: 'sk-abc\n with spaces ' });
    expect((await store.get('openai'))?.key).toBe('sk-abc\n with spaces ');
    const st = await fs.stat(path.join(keysDir, 'openai.key'));
    expect(st.mode & 0o777).toBe(0o600);
    expect((await fs.stat(keysDir)).mode & 0o777).toBe(0o700);
  });

  it('answers undefined and [] before anything is stored', async () => {
    const store = new FileApiKeyStore(keysDir);
    expect(await store.get('nope')).toBeUndefined();
    expect(await store.list()).toEqual([]);
    expect(await store.delete('nope')).toBe(false);
  });

  it('overwrites, lists sorted names only, and removes', async () => {
    const store = new FileApiKeyStore(keysDir);
    await store.put({ name: 'b', key: '1' });
    await store.put({ name: 'a', key: '2' });
    await store.put({ name: 'b', key: '3' });
    expect((await store.get('b'))?.key).toBe('3');
    expect(await store.list()).toEqual(['a', 'b']);
    expect(await store.delete('a')).toBe(true);
    expect(await store.list()).toEqual(['b']);
  });

  it('lists a valid name that starts with a dot', async () => {
    const store = new FileApiKeyStore(keysDir);
    await store.put({ name: '.env', key: 'x' });
    await store.put({ name: '...', key: 'y' });
    expect(await store.list()).toEqual(['...', '.env']);
  });

  it('ignores temp files and files that are not valid key names', async () => {
    const store = new FileApiKeyStore(keysDir);
    await store.put({ name: 'real', key: 'x' });
    await fs.writeFile(path.join(keysDir, '.real.key.123.abcdef.tmp'), 'partial');
    await fs.writeFile(path.join(keysDir, 'has space.key'), 'x');
    await fs.writeFile(path.join(keysDir, 'notes.txt'), 'x');
    await fs.writeFile(path.join(keysDir, '.key'), 'x');
    expect(await store.list()).toEqual(['real']);
  });
});

describe('FileApiKeyStore reads only its own files (issue 9, item 10)', () => {
  it('refuses a key file replaced by a symlink, never returning the target', async () => {
    const store = new FileApiKeyStore(keysDir);
    await store.put({ name: 'openai', key: 'sk-real' });
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
    const store = new FileApiKeyStore(keysDir);
    await store.put({ name: 'openai', key: 'sk-real' });
    await fs.chmod(keysDir, 0o777);
    await expect(store.get('openai')).rejects.toThrow(`chmod 700 ${keysDir}`);
    await expect(store.put({ name: 'openai', key: 'sk-new' })).rejects.toThrow(`chmod 700 ${keysDir}`);
  });
});

describe('FileApiKeyStore change feed (fs.watch on keys/)', () => {
  /** Names reported so far; `null` stands for "every name". */
  function collect(store: FileApiKeyStore, options?: ConstructorParameters<typeof FileApiKeyStore>[1]) {
    const seen: Array<string | null> = [];
    const watch = (options ? new FileApiKeyStore(keysDir, options) : store).watch((name) => seen.push(name ?? null));
    return { seen, watch };
  }

  async function until(check: () => boolean, ms = 2_000): Promise<void> {
    const end = Date.now() + ms;
    while (!check()) {
      if (Date.now() > end) throw new Error(`not reported within ${ms} ms`);
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  it('reports by name a key written in place, replaced by a rename, removed; temp files are not reported', async () => {
    const store = new FileApiKeyStore(keysDir);
    await store.put({ name: 'openai', key: 'sk-1' });
    const { seen, watch } = collect(store);
    try {
      expect(watch.live).toBe(true);
      seen.length = 0;
      await fs.writeFile(path.join(keysDir, 'openai.key'), 'sk-2');
      await until(() => seen.includes('openai'));
      seen.length = 0;
      await store.put({ name: 'anthropic', key: 'sk-a' }); // temp file + rename
      await until(() => seen.includes('anthropic'));
      expect(seen.every((n) => n === 'anthropic')).toBe(true);
      seen.length = 0;
      await store.delete('openai');
      await until(() => seen.includes('openai'));
    } finally {
      watch.close();
    }
  });

  it('reports every name when keys/ itself changes (chmod), so the next read checks the directory again', async () => {
    const store = new FileApiKeyStore(keysDir);
    await store.put({ name: 'openai', key: 'sk-1' });
    const { seen, watch } = collect(store);
    try {
      seen.length = 0;
      await fs.chmod(keysDir, 0o777);
      await until(() => seen.includes(null));
    } finally {
      watch.close();
    }
  });

  it('is not live while keys/ does not exist, and goes live (reporting every name) once it does', async () => {
    let clock = 0;
    const store = new FileApiKeyStore(keysDir);
    const { seen, watch } = collect(store, { watch: { retryMs: 100, now: () => clock } });
    try {
      expect(watch.live).toBe(false);
      await store.put({ name: 'openai', key: 'sk-1' });
      expect(watch.live).toBe(false); // the next attempt is not due yet
      clock += 100;
      expect(watch.live).toBe(true);
      expect(seen).toContain(null);
    } finally {
      watch.close();
    }
  });

  it('is not live when fs.watch is unavailable (the inotify limit), and says so on every read', async () => {
    await new FileApiKeyStore(keysDir).put({ name: 'openai', key: 'sk-1' });
    let attempts = 0;
    let clock = 0;
    const unavailable = (): never => {
      attempts += 1;
      throw Object.assign(new Error('ENOSPC'), { code: 'ENOSPC' });
    };
    const { watch } = collect(new FileApiKeyStore(keysDir), { watch: { watch: unavailable, retryMs: 100, now: () => clock } });
    for (let i = 0; i < 1_000; i++) expect(watch.live).toBe(false);
    expect(attempts).toBe(1); // retried at most once per retryMs, not per read
    clock += 100;
    expect(watch.live).toBe(false);
    expect(attempts).toBe(2);
    watch.close();
  });

  it('notices keys/ replaced by another directory, reports every name, and watches the new one', async () => {
    const store = new FileApiKeyStore(keysDir);
    await store.put({ name: 'openai', key: 'sk-1' });
    const { seen, watch } = collect(store, { watch: { retryMs: 0 } });
    try {
      expect(watch.live).toBe(true);
      seen.length = 0;
      await fs.rename(keysDir, `${keysDir}.old`);
      await fs.mkdir(keysDir, { mode: 0o700 });
      await until(() => seen.includes(null));
      expect(watch.live).toBe(true); // re-armed on the new directory
      seen.length = 0;
      await fs.writeFile(path.join(keysDir, 'openai.key'), 'sk-new', { mode: 0o600 });
      await until(() => seen.includes('openai'));
    } finally {
      watch.close();
    }
  });
});

import fsCallback, { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { LogFields, LogLevel, Logger } from '../../util/logger.js';
import { FileTokenStore, type LockFs } from './file-tokens.js';
import type { AccountRecord } from '../token-store.js';

let dir: string;
let tokens: string;
beforeEach(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'cp-tok-'));
  tokens = path.join(dir, 'tokens');
});
afterEach(() => fs.rm(dir, { recursive: true, force: true }));

function record(provider: string, bucket: string, extra: Partial<AccountRecord> = {}): AccountRecord {
  return {
    provider,
    bucket,
    token: { access_token: `at-${provider}-${bucket}`, token_type: 'Bearer', refresh_token: 'rt', expiry: 2_000_000_000, account_id: 'acct' },
    updated_at: 1_700_000_000_000,
    ...extra,
  };
}

describe('FileTokenStore', () => {
  it('round-trips a record, provider fields included', async () => {
    const store = new FileTokenStore(tokens);
    const r = record('gh', 'default', { needs_login: true });
    await store.put(r);
    expect(await store.get({ provider: 'gh', bucket: 'default' })).toEqual(r);
  });

  it('writes <provider>/<bucket>.json as 0600 in 0700 directories', async () => {
    const store = new FileTokenStore(tokens);
    await store.put(record('gh', 'work'));
    const file = path.join(tokens, 'gh', 'work.json');
    expect((await fs.stat(file)).mode & 0o777).toBe(0o600);
    expect((await fs.stat(path.join(tokens, 'gh'))).mode & 0o777).toBe(0o700);
    expect((await fs.stat(tokens)).mode & 0o777).toBe(0o700);
  });

  it('answers undefined, false and [] for what is not there', async () => {
    const store = new FileTokenStore(tokens);
    expect(await store.get({ provider: 'gh', bucket: 'default' })).toBeUndefined();
    expect(await store.delete({ provider: 'gh', bucket: 'default' })).toBe(false);
    expect(await store.list()).toEqual([]);
  });

  it('lists every account sorted, including a bucket that starts with a dot', async () => {
    const store = new FileTokenStore(tokens);
    await store.put(record('zz', 'default'));
    await store.put(record('gh', 'b'));
    await store.put(record('gh', 'a'));
    await store.put(record('gh', '.hidden'));
    expect(await store.list()).toEqual([
      { provider: 'gh', bucket: '.hidden' },
      { provider: 'gh', bucket: 'a' },
      { provider: 'gh', bucket: 'b' },
      { provider: 'zz', bucket: 'default' },
    ]);
  });

  it('ignores temp files, locks, stray files and invalid names', async () => {
    const store = new FileTokenStore(tokens);
    await store.put(record('gh', 'default'));
    const unlock = await store.lock({ provider: 'gh', bucket: 'default' });
    await fs.writeFile(path.join(tokens, 'gh', '.default.json.1.abc.tmp'), '{');
    await fs.writeFile(path.join(tokens, 'gh', 'bad name.json'), '{}');
    await fs.writeFile(path.join(tokens, 'README'), 'x');
    await fs.mkdir(path.join(tokens, 'bad dir'));
    await fs.writeFile(path.join(tokens, 'bad dir', 'x.json'), '{}');
    expect(await store.list()).toEqual([{ provider: 'gh', bucket: 'default' }]);
    await unlock();
  });

  it('deletes', async () => {
    const store = new FileTokenStore(tokens);
    await store.put(record('gh', 'default'));
    expect(await store.delete({ provider: 'gh', bucket: 'default' })).toBe(true);
    expect(await store.get({ provider: 'gh', bucket: 'default' })).toBeUndefined();
  });

  it('refuses a file that is not an account record', async () => {
    const store = new FileTokenStore(tokens);
    await fs.mkdir(path.join(tokens, 'gh'), { recursive: true });
    await fs.writeFile(path.join(tokens, 'gh', 'default.json'), '{"token":{}}');
    await expect(store.get({ provider: 'gh', bucket: 'default' })).rejects.toThrow(/not a credproxy account record/);
  });

  it('lock is exclusive per account and released by the unlock function', async () => {
    const store = new FileTokenStore(tokens);
    const key = { provider: 'gh', bucket: 'default' };
    const events: string[] = [];
    const unlockA = await store.lock(key);
    const b = store.lock(key).then((unlock) => {
      events.push('b locked');
      return unlock;
    });
    // Another account is not blocked.
    const other = await store.lock({ provider: 'gh', bucket: 'other' });
    await other();
    await new Promise((r) => setTimeout(r, 50));
    expect(events).toEqual([]);
    events.push('a unlocks');
    await unlockA();
    const unlockB = await b;
    expect(events).toEqual(['a unlocks', 'b locked']);
    await unlockB();
  });

  it('an unlock whose release fails is retried with backoff until the lock is gone, and logged', async () => {
    const lines: Array<{ level: LogLevel; message: string; fields?: LogFields }> = [];
    const logger: Logger = { log: (level, message, fields) => lines.push({ level, message, ...(fields ? { fields } : {}) }) };
    // The first removal of the lock directory fails as it does when descriptors are exhausted.
    let failures = 1;
    const lockFs: LockFs = {
      ...fsCallback,
      rmdir: ((dir: string, callback: (err: NodeJS.ErrnoException | null) => void) => {
        if (failures > 0) {
          failures -= 1;
          process.nextTick(() => callback(Object.assign(new Error('EMFILE: too many open files'), { code: 'EMFILE' })));
          return;
        }
        fsCallback.rm(dir, { recursive: true, force: true }, callback);
      }) as LockFs['rmdir'],
    };
    const store = new FileTokenStore(tokens, { logger, lockFs });
    const key = { provider: 'gh', bucket: 'default' };
    const lockDir = path.join(tokens, 'gh', 'default.json.lock');
    const unlock = await store.lock(key);
    await unlock(); // does not reject, does not block the caller on the retries
    expect(lines).toContainEqual(expect.objectContaining({ level: 'warn', message: expect.stringMatching(/could not release a token lock/), fields: expect.objectContaining({ error: 'EMFILE' }) }));
    const released = Date.now();
    // The next lock on the account waits for the retried release, not for staleness (15 s).
    const again = await store.lock(key);
    expect(Date.now() - released).toBeLessThan(2_000);
    expect(lines).toContainEqual(expect.objectContaining({ level: 'info', message: 'token lock released' }));
    await again();
    await expect(fs.stat(lockDir)).rejects.toMatchObject({ code: 'ENOENT' });
    expect(failures).toBe(0);
  });

  it('the retried release leaves alone a lock another process took over meanwhile', async () => {
    let failing = true;
    const lockFs: LockFs = {
      ...fsCallback,
      rmdir: ((dir: string, callback: (err: NodeJS.ErrnoException | null) => void) => {
        if (failing) {
          process.nextTick(() => callback(Object.assign(new Error('EIO'), { code: 'EIO' })));
          return;
        }
        fsCallback.rm(dir, { recursive: true, force: true }, callback);
      }) as LockFs['rmdir'],
    };
    const lines: string[] = [];
    const store = new FileTokenStore(tokens, { lockFs, logger: { log: (_l, message) => lines.push(message) } });
    const lockDir = path.join(tokens, 'gh', 'default.json.lock');
    await (await store.lock({ provider: 'gh', bucket: 'default' }))();
    // Another process takes the (stale) lock over: a new directory with its own stamp.
    await fs.rm(lockDir, { recursive: true });
    await fs.mkdir(lockDir);
    await fs.symlink('999999.other', path.join(lockDir, 'owner'));
    failing = false;
    await waitFor(() => lines.some((m) => /taken over by another process/.test(m)));
    expect(await fs.readlink(path.join(lockDir, 'owner'))).toBe('999999.other');
  });
});

async function waitFor(check: () => boolean, ms = 3_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
}

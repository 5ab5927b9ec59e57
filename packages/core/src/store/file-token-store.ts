import fsCallback, { promises as fs } from 'node:fs';
import path from 'node:path';
import lockfile from 'proper-lockfile';
import { isName, isPlainObject } from '../protocol/validate.js';
import { ensureDataDir, readFileIfExists, removeFile, writeFileAtomic } from '../util/fs-secure.js';
import type { AccountKey, AccountRecord, TokenStore, Unlock } from './token-store.js';
import { ErrorCode, ProxyError } from '../protocol/errors.js';
import { isRunning } from '../util/process.js';

/**
 * The lock directory holds an `owner` file, so removing it (release, or proper-lockfile's own
 * stale takeover) must be recursive.
 */
const lockFs = {
  ...fsCallback,
  rmdir: (dir: string, callback: (err: NodeJS.ErrnoException | null) => void) => fsCallback.rm(dir, { recursive: true, force: true }, callback),
};

/** How long to wait for another process's refresh of the same account. */
const LOCK_WAIT_MS = 30_000;


/**
 * Remove a lock whose holder is dead. The rename to a tombstone is atomic, so of several waiters
 * only one takes it; if the tombstone turns out not to be the dead holder's lock (another waiter
 * took over first and locked again), it is put back.
 */
async function readOwner(lockDir: string): Promise<number | undefined> {
  const text = await readFileIfExists(path.join(lockDir, 'owner')).catch(() => undefined);
  const pid = Number.parseInt(text ?? '', 10);
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

/** A holder writes its pid right after taking the lock; an ownerless lock older than this is a corpse. */
const OWNERLESS_GRACE_MS = 1_000;

async function takeOverDeadLock(lockDir: string): Promise<boolean> {
  const owner = await readOwner(lockDir);
  if (owner === undefined) {
    const st = await fs.stat(lockDir).catch(() => undefined);
    if (!st) return true; // released meanwhile: try to lock again
    if (Date.now() - st.mtimeMs < OWNERLESS_GRACE_MS) return false;
  } else if (owner === process.pid || isRunning(owner)) {
    return false;
  }
  const tomb = `${lockDir}.dead.${process.pid}.${Date.now()}`;
  try {
    await fs.rename(lockDir, tomb);
  } catch {
    return true; // someone else moved it first: try to lock again
  }
  if ((await readOwner(tomb)) !== owner) {
    await fs.rename(tomb, lockDir).catch(() => undefined);
    return false;
  }
  await fs.rm(tomb, { recursive: true, force: true });
  return true;
}

/**
 * One JSON file per account: `<dir>/<provider>/<bucket>.json`, 0600, written atomically.
 * Names are validated (SPEC §3) before they get here, so they are safe as file names.
 */
export class FileTokenStore implements TokenStore {
  readonly #dir: string;

  constructor(dir: string) {
    this.#dir = dir;
  }

  #file(key: AccountKey): string {
    return path.join(this.#dir, key.provider, `${key.bucket}.json`);
  }

  async get(key: AccountKey): Promise<AccountRecord | undefined> {
    const text = await readFileIfExists(this.#file(key));
    if (text === undefined) return undefined;
    const parsed: unknown = JSON.parse(text);
    if (!isPlainObject(parsed) || !isPlainObject(parsed.token) || typeof parsed.token.access_token !== 'string') {
      throw new Error(`token file ${this.#file(key)} is not a credproxy account record`);
    }
    return parsed as unknown as AccountRecord;
  }

  async put(record: AccountRecord): Promise<void> {
    const file = this.#file(record);
    await ensureDataDir(path.dirname(file));
    await writeFileAtomic(file, JSON.stringify(record, null, 2) + '\n');
  }

  async delete(key: AccountKey): Promise<boolean> {
    return removeFile(this.#file(key));
  }

  async list(): Promise<AccountKey[]> {
    const out: AccountKey[] = [];
    let providers: string[];
    try {
      providers = await fs.readdir(this.#dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return out;
      throw err;
    }
    for (const provider of providers.sort()) {
      if (!isName(provider)) continue;
      let files: string[];
      try {
        files = await fs.readdir(path.join(this.#dir, provider));
      } catch {
        continue;
      }
      // Temp files end in .tmp and locks in .lock; a valid bucket may start with a dot.
      for (const file of files.sort()) {
        const bucket = file.slice(0, -'.json'.length);
        if (file.endsWith('.json') && isName(bucket)) out.push({ provider, bucket });
      }
    }
    return out;
  }

  /**
   * proper-lockfile's lock on the account file, held for at most one refresh. The holder writes
   * its pid into the lock directory; a waiter that finds that process dead (kill -9 mid-refresh)
   * takes the lock over at once instead of waiting out the staleness timeout.
   */
  async lock(key: AccountKey): Promise<Unlock> {
    const file = this.#file(key);
    await ensureDataDir(path.dirname(file));
    const lockDir = `${file}.lock`;
    const deadline = Date.now() + LOCK_WAIT_MS;
    let wait = 5;
    for (;;) {
      try {
        const release = await lockfile.lock(file, {
          realpath: false,
          stale: 15_000,
          update: 5_000,
          retries: 0,
          fs: lockFs,
          onCompromised: () => {
            // The lock's mtime could not be kept fresh (e.g. the machine slept); the refresh that
            // holds it finishes anyway and the re-read under the next lock stays correct.
          },
        });
        await fs.writeFile(path.join(lockDir, 'owner'), String(process.pid)).catch(() => undefined);
        return async () => {
          await release().catch(() => undefined);
        };
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ELOCKED') throw err;
      }
      if (await takeOverDeadLock(lockDir)) continue;
      if (Date.now() > deadline) {
        throw new ProxyError(ErrorCode.UPSTREAM_UNAVAILABLE, `${key.provider}/${key.bucket} is locked by another credproxy process that has not finished a refresh in ${LOCK_WAIT_MS / 1000} s — try again`);
      }
      await new Promise((r) => setTimeout(r, wait + Math.random() * wait));
      wait = Math.min(wait * 1.5, 100);
    }
  }
}

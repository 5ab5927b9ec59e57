import { createHash, randomBytes } from 'node:crypto';
import fsCallback, { promises as fs } from 'node:fs';
import path from 'node:path';
import { isName, isPlainObject } from '../../protocol/validate.js';
import { ensureDataDir, readFileIfExists, removeFile, writeFileAtomic } from '../../util/fs-secure.js';
import type { AccountKey, AccountRecord, TokenStore, Unlock } from '../token-store.js';
import { type PutOptions, type Versioned, VersionConflictError } from '../../util/record-store.js';
import { RecordCipher } from '../crypto.js';
import { ErrorCode, ProxyError } from '../../protocol/errors.js';
import { silentLogger, type Logger } from '../../util/logger.js';
import { isRunning } from '../../util/process.js';

/** The lock directory holds one entry, `owner`: a symbolic link whose target is `<pid>.<nonce>`. */
const OWNER = 'owner';

/**
 * Remove a lock directory without opening a descriptor (unlink + rmdir), so a release still works
 * when the process is out of file descriptors (EMFILE). Anything else inside: removed recursively.
 */
function removeLockDir(dir: string, callback: (err: NodeJS.ErrnoException | null) => void): void {
  fsCallback.unlink(path.join(dir, OWNER), () => {
    fsCallback.rmdir(dir, (err) => {
      if (err?.code === 'ENOTEMPTY' || err?.code === 'EEXIST') {
        fsCallback.rm(dir, { recursive: true, force: true }, callback);
        return;
      }
      callback(err);
    });
  });
}

function removeLockDirSync(dir: string): void {
  try {
    fsCallback.unlinkSync(path.join(dir, OWNER));
  } catch {
    // no owner entry: rmdir decides
  }
  fsCallback.rmSync(dir, { recursive: true, force: true });
}

/** The fs proper-lockfile uses: its lock directory holds our `owner` entry, so removal goes through removeLockDir. */
export type LockFs = typeof fsCallback;

const defaultLockFs: LockFs = { ...fsCallback, rmdir: removeLockDir as LockFs['rmdir'], rmdirSync: removeLockDirSync as LockFs['rmdirSync'] };

/** How long to wait for another process's refresh of the same account. */
const LOCK_WAIT_MS = 30_000;

/** Backoff of the retries of a lock release that failed. */
const RELEASE_RETRY_BASE_MS = 50;
const RELEASE_RETRY_MAX_MS = 5_000;

/**
 * The holder's stamp. A symbolic link, not a file: creating and reading one needs no file
 * descriptor, so a holder that is out of descriptors still marks its lock as live (an ownerless
 * lock is taken over after a second). A regular `owner` file (older versions) is still read.
 */
async function readOwnerStamp(lockDir: string): Promise<string | undefined> {
  const entry = path.join(lockDir, OWNER);
  try {
    return await fs.readlink(entry);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EINVAL') return undefined;
  }
  return readFileIfExists(entry).catch(() => undefined);
}

async function readOwner(lockDir: string): Promise<number | undefined> {
  const pid = Number.parseInt(await readOwnerStamp(lockDir) ?? '', 10);
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

async function writeOwnerStamp(lockDir: string, stamp: string): Promise<boolean> {
  try {
    await fs.symlink(stamp, path.join(lockDir, OWNER));
    return true;
  } catch {
    return fs.writeFile(path.join(lockDir, OWNER), stamp).then(() => true, () => false);
  }
}

/** A holder writes its pid right after taking the lock; an ownerless lock older than this is a corpse. */
const OWNERLESS_GRACE_MS = 1_000;

/**
 * Remove a lock whose holder is dead. The rename to a tombstone is atomic, so of several waiters
 * only one takes it; if the tombstone turns out not to be the dead holder's lock (another waiter
 * took over first and locked again), it is put back.
 */
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

export interface FileTokenStoreOptions {
  /** Where a lock release that failed (and its retries) is reported. */
  logger?: Logger;
  /** The fs proper-lockfile and the release use (fault injection in tests). */
  lockFs?: LockFs;
  /** Seals each file (encryption at rest); plaintext by default. */
  cipher?: RecordCipher;
}

/** The record name an account's value is bound to (AES-GCM associated data). */
export function tokenRecordName(key: AccountKey): string {
  return `tokens/${key.provider}/${key.bucket}`;
}

/** Version of a stored value: a hash of its bytes (equal bytes, equal version). */
function versionOf(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 24);
}

/** A sealed account file: `{"sealed": "credproxy-sealed:v1:..."}`. */
function decodeAccount(text: string, name: string, file: string, cipher: RecordCipher): AccountRecord {
  const outer: unknown = JSON.parse(text);
  const parsed: unknown = isPlainObject(outer) && typeof outer.sealed === 'string' ? JSON.parse(cipher.open(name, outer.sealed)) : (cipher.open(name, text), outer);
  if (!isPlainObject(parsed) || !isPlainObject(parsed.token) || typeof parsed.token.access_token !== 'string') {
    throw new Error(`token file ${file} is not a credproxy account record`);
  }
  return parsed as unknown as AccountRecord;
}

/** Which lock directory is ours: its inode, and the stamp we wrote into it (when we could). */
interface HeldLock {
  dir: string;
  ino: number;
  stamp: string | undefined;
}

/**
 * One JSON file per account: `<dir>/<provider>/<bucket>.json`, 0600, written atomically.
 * Names are validated (SPEC §3) before they get here, so they are safe as file names.
 */
export class FileTokenStore implements TokenStore {
  readonly #dir: string;
  readonly #logger: Logger;
  readonly #lockFs: LockFs;
  readonly #cipher: RecordCipher;

  constructor(dir: string, options: FileTokenStoreOptions = {}) {
    this.#dir = dir;
    this.#cipher = options.cipher ?? RecordCipher.plaintext();
    this.#logger = options.logger ?? silentLogger;
    this.#lockFs = options.lockFs ?? defaultLockFs;
  }

  #file(key: AccountKey): string {
    return path.join(this.#dir, key.provider, `${key.bucket}.json`);
  }

  async get(key: AccountKey): Promise<AccountRecord | undefined> {
    return (await this.read(key))?.record;
  }

  async read(key: AccountKey): Promise<Versioned<AccountRecord> | undefined> {
    const text = await readFileIfExists(this.#file(key));
    if (text === undefined) return undefined;
    return { record: decodeAccount(text, tokenRecordName(key), this.#file(key), this.#cipher), version: versionOf(text) };
  }

  /**
   * `ifVersion` is checked by re-reading the file first: not atomic against another process, but
   * every token write is made holding the account's lock, which is what excludes other writers.
   */
  async put(record: AccountRecord, options: PutOptions = {}): Promise<void> {
    const file = this.#file(record);
    await ensureDataDir(path.dirname(file));
    if (options.ifVersion !== undefined) {
      const text = await readFileIfExists(file);
      const current = text === undefined ? null : versionOf(text);
      if (current !== options.ifVersion) throw new VersionConflictError(tokenRecordName(record));
    }
    const json = JSON.stringify(record, null, 2);
    await writeFileAtomic(file, this.#cipher.encrypting ? JSON.stringify({ sealed: this.#cipher.seal(tokenRecordName(record), json) }) + '\n' : json + '\n');
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
   * proper-lockfile's lock on the account file, held for at most one refresh. The holder stamps
   * the lock directory with its pid; a waiter that finds that process dead (kill -9 mid-refresh)
   * takes the lock over at once instead of waiting out the staleness timeout. The unlock never
   * leaves a stale lock behind: a release that fails is retried in the background with backoff
   * until the directory is gone (or is no longer ours), and logged.
   */
  async lock(key: AccountKey): Promise<Unlock> {
    const file = this.#file(key);
    await ensureDataDir(path.dirname(file));
    const lockDir = `${file}.lock`;
    // Loaded at the first lock (a refresh): with graceful-fs it is megabytes an idle proxy does not need.
    const { default: lockfile } = await import('proper-lockfile');
    const deadline = Date.now() + LOCK_WAIT_MS;
    let wait = 5;
    for (;;) {
      try {
        const release = await lockfile.lock(file, {
          realpath: false,
          stale: 15_000,
          update: 5_000,
          retries: 0,
          fs: this.#lockFs,
          onCompromised: () => {
            // The lock's mtime could not be kept fresh (e.g. the machine slept); the refresh that
            // holds it finishes anyway and the re-read under the next lock stays correct.
          },
        });
        const stamp = `${process.pid}.${randomBytes(8).toString('hex')}`;
        const held: HeldLock = {
          dir: lockDir,
          ino: (await fs.stat(lockDir).catch(() => undefined))?.ino ?? -1,
          stamp: (await writeOwnerStamp(lockDir, stamp)) ? stamp : undefined,
        };
        let released = false;
        return async () => {
          if (released) return;
          released = true;
          try {
            await release();
          } catch (err) {
            this.#logger.log('warn', 'could not release a token lock; retrying in the background', { provider: key.provider, bucket: key.bucket, error: errnoCode(err) });
            void this.#retryRelease(key, held, Date.now());
          }
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

  /**
   * Remove our lock directory after a failed release. proper-lockfile has already forgotten the
   * lock (and stopped refreshing its mtime), so after 15 s another process may take it over as
   * stale: a directory that is not ours any more (another inode, another stamp, or touched after
   * our release failed) is left alone.
   */
  async #retryRelease(key: AccountKey, held: HeldLock, failedAt: number): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      const delay = Math.min(RELEASE_RETRY_MAX_MS, RELEASE_RETRY_BASE_MS * 2 ** Math.min(attempt - 1, 16));
      await new Promise((r) => setTimeout(r, delay + Math.random() * delay * 0.5).unref());
      const fields = { provider: key.provider, bucket: key.bucket, attempts: attempt };
      try {
        const st = await fs.stat(held.dir).catch((err: NodeJS.ErrnoException) => {
          if (err.code === 'ENOENT') return undefined;
          throw err;
        });
        if (st) {
          const stamp = await readOwnerStamp(held.dir);
          // Our release may have unlinked the stamp before rmdir failed: then the mtime tells.
          const ours = (held.ino === -1 || st.ino === held.ino) && (stamp === undefined ? st.mtimeMs <= failedAt + 1_000 : stamp === held.stamp);
          if (!ours) {
            this.#logger.log('info', 'a token lock was taken over by another process meanwhile; nothing left to release', fields);
            return;
          }
          await new Promise<void>((resolve, reject) =>
            this.#lockFs.rmdir(held.dir, (err: NodeJS.ErrnoException | null) => (err && err.code !== 'ENOENT' ? reject(err) : resolve())),
          );
        }
        this.#logger.log('info', 'token lock released', fields);
        return;
      } catch (err) {
        if (attempt <= 3 || attempt % 20 === 0) {
          this.#logger.log('warn', 'releasing a token lock failed again; retrying', { ...fields, error: errnoCode(err) });
        }
      }
    }
  }
}

function errnoCode(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : err instanceof Error ? err.name : 'unknown';
}

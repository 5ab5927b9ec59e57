/**
 * A lock held for a process's lifetime: the directory `<file>.lock`, made with mkdir (atomic on
 * every local filesystem), its mtime kept fresh while held and taken over once it is older than
 * `staleMs` (a holder that died without releasing). It has the on-disk shape proper-lockfile
 * gives a lock, so a proxy of an earlier version and this one exclude each other.
 *
 * The proxy's socket lock uses it rather than proper-lockfile, whose graceful-fs and
 * signal-exit are ~4 MB of an idle proxy's memory (project-plans/16-bench-hardening.md);
 * the token store's short locks still use proper-lockfile, loaded at the first refresh.
 */
import { promises as fs } from 'node:fs';

export interface DirLockOptions {
  /** A lock whose mtime is older than this is taken over. */
  staleMs: number;
  /** How often the holder refreshes the mtime (well under staleMs). */
  updateMs: number;
  /** The lock could not be kept fresh (its directory removed or unwritable): it may be taken over. */
  onCompromised(err: Error): void;
  now?: () => number;
}

/** The lock is held by someone else (fresh): `code` is ELOCKED, as proper-lockfile says it. */
export class LockedError extends Error {
  readonly code = 'ELOCKED';

  constructor(file: string) {
    super(`${file} is locked by another process`);
    this.name = 'LockedError';
  }
}

function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | null)?.code;
}

/** Take the lock on `file`; resolves to its release. Throws LockedError when it is held. */
export async function lockDir(file: string, options: DirLockOptions): Promise<() => Promise<void>> {
  const dir = `${file}.lock`;
  const now = options.now ?? Date.now;
  for (let attempt = 0; ; attempt++) {
    try {
      await fs.mkdir(dir);
      break;
    } catch (err) {
      if (errno(err) !== 'EEXIST' || attempt >= 2) {
        throw errno(err) === 'EEXIST' ? new LockedError(file) : err;
      }
    }
    let mtimeMs: number;
    try {
      mtimeMs = (await fs.stat(dir)).mtimeMs;
    } catch (err) {
      if (errno(err) === 'ENOENT') continue; // released meanwhile: try again
      throw err;
    }
    if (now() - mtimeMs <= options.staleMs) throw new LockedError(file);
    // Stale: its holder stopped refreshing it. Another process may take it over at the same
    // moment; mkdir decides, and the loser sees a fresh lock.
    await fs.rm(dir, { recursive: true, force: true });
  }

  let released = false;
  let compromised = false;
  const timer = setInterval(() => {
    const t = new Date(now());
    fs.utimes(dir, t, t).catch((err: unknown) => {
      if (released || compromised) return;
      compromised = true;
      clearInterval(timer);
      options.onCompromised(err instanceof Error ? err : new Error(String(err)));
    });
  }, options.updateMs);
  timer.unref();
  return async () => {
    if (released) return;
    released = true;
    clearInterval(timer);
    await fs.rm(dir, { recursive: true, force: true });
  };
}

/**
 * A change feed for one data directory (util/record-store.ts StoreWatch): fs.watch (inotify on
 * Linux, FSEvents/kqueue on macOS) reports every entry created, written, renamed, removed or
 * chmod-ed in it — by this process or any other sharing the data dir.
 *
 * Watching can be unavailable (the directory does not exist yet, the inotify watch limit is
 * reached: ENOSPC, a filesystem without notifications) or break (the directory is removed or
 * replaced, the watcher errors). Then `live` is false — callers re-read after a short time — and
 * watching is tried again, at most once per `retryMs`, when `live` is next read. Every (re)start
 * reports "everything may have changed", since nothing was reported meanwhile.
 */
import fs from 'node:fs';

export type WatchFn = (dir: string, options: { persistent: boolean }, listener: (event: string, filename: string | null) => void) => fs.FSWatcher;

export interface DirWatchOptions {
  /** Least time between two attempts to (re)start watching. Default 250 ms. */
  retryMs?: number;
  /** fs.watch (fault injection in tests). */
  watch?: WatchFn;
  now?: () => number;
}

const defaultWatch: WatchFn = (dir, options, listener) => fs.watch(dir, options, listener);

export class DirWatch {
  readonly #dir: string;
  /** An entry of the directory changed (its name), or anything may have (null). */
  readonly #onEvent: (filename: string | null) => void;
  readonly #retryMs: number;
  readonly #watch: WatchFn;
  readonly #now: () => number;
  #watcher: fs.FSWatcher | undefined;
  #ino = -1;
  #nextAttempt = 0;
  #closed = false;

  constructor(dir: string, onEvent: (filename: string | null) => void, options: DirWatchOptions = {}) {
    this.#dir = dir;
    this.#onEvent = onEvent;
    this.#retryMs = options.retryMs ?? 250;
    this.#watch = options.watch ?? defaultWatch;
    this.#now = options.now ?? Date.now;
    this.#start();
  }

  /** Whether changes are being reported; when not, tries to start watching (throttled). */
  get live(): boolean {
    if (this.#watcher !== undefined) return true;
    if (this.#closed || this.#now() < this.#nextAttempt) return false;
    this.#start();
    return this.#watcher !== undefined;
  }

  close(): void {
    this.#closed = true;
    this.#stop();
  }

  #start(): void {
    this.#nextAttempt = this.#now() + this.#retryMs;
    let watcher: fs.FSWatcher | undefined;
    try {
      const before = fs.statSync(this.#dir);
      if (!before.isDirectory()) return;
      watcher = this.#watch(this.#dir, { persistent: false }, (event, filename) => this.#event(event, filename));
      // The directory replaced between the stat and the watch: try again later.
      if (fs.statSync(this.#dir).ino !== before.ino) {
        watcher.close();
        return;
      }
      watcher.on('error', () => this.#broken());
      this.#watcher = watcher;
      this.#ino = before.ino;
    } catch {
      // ENOENT, ENOSPC (inotify limit), EPERM, ...: not live; tried again after retryMs.
      watcher?.close();
      return;
    }
    this.#onEvent(null);
  }

  #event(event: string, filename: string | null): void {
    if (this.#watcher === undefined) return;
    // The directory itself removed, renamed or replaced: its watch reports nothing more.
    if (event === 'rename' && !this.#sameDir()) {
      this.#broken();
      return;
    }
    this.#onEvent(filename);
  }

  #sameDir(): boolean {
    try {
      return fs.statSync(this.#dir).ino === this.#ino;
    } catch {
      return false;
    }
  }

  #broken(): void {
    this.#stop();
    this.#onEvent(null);
  }

  #stop(): void {
    const watcher = this.#watcher;
    this.#watcher = undefined;
    try {
      watcher?.close();
    } catch {
      // already closed
    }
  }
}

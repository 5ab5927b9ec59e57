/**
 * In-memory stores, FOR TESTS ONLY. They keep nothing: every record is gone when the process
 * exits, and no other process sees them. They implement the same contract as the file stores
 * (util/record-store.ts) — copies in and out, absence is not an error, sorted lists, a live
 * change feed, and for tokens an exclusive per-account lock (within this process) — so a test of
 * the account service, the API-key cache or the client registry can run without a data dir.
 */
import { type LockingRecordStore, type PutOptions, type RecordStore, type StoreWatch, type Unlock, type Versioned, VersionConflictError } from '../../util/record-store.js';
import type { AccountKey, AccountRecord } from '../token-store.js';

/** A string key as it is; an object key (AccountKey) as its fields in name order. */
function defaultId(key: unknown): string {
  if (typeof key === 'string') return key;
  const o = key as Record<string, unknown>;
  return Object.keys(o)
    .sort()
    .map((k) => `${k}\u0000${String(o[k])}`)
    .join('\u0000');
}

/** A record store in a Map, for tests: keeps nothing across processes or restarts. */
export class MemoryRecordStore<K, R> implements RecordStore<K, R> {
  readonly #records = new Map<string, { key: K; record: R; version: string }>();
  #writes = 0;
  readonly #listeners = new Set<(key?: K) => void>();
  readonly #keyOf: (record: R) => K;
  readonly #id: (key: K) => string;

  /**
   * @param keyOf the key a record is stored under (its name, its provider and bucket).
   * @param id the identity of a key as a string; by default a string key itself, or an object
   *   key's fields in name order.
   */
  constructor(keyOf: (record: R) => K, id: (key: K) => string = defaultId) {
    this.#keyOf = keyOf;
    this.#id = id;
  }

  async get(key: K): Promise<R | undefined> {
    const entry = this.#records.get(this.#id(key));
    return entry === undefined ? undefined : structuredClone(entry.record);
  }

  async read(key: K): Promise<Versioned<R> | undefined> {
    const entry = this.#records.get(this.#id(key));
    return entry === undefined ? undefined : { record: structuredClone(entry.record), version: entry.version };
  }

  async put(record: R, options: PutOptions = {}): Promise<void> {
    const key = structuredClone(this.#keyOf(record));
    const id = this.#id(key);
    if (options.ifVersion !== undefined && (this.#records.get(id)?.version ?? null) !== options.ifVersion) throw new VersionConflictError(id);
    this.#records.set(id, { key, record: structuredClone(record), version: `m${++this.#writes}` });
    this.#notify(key);
  }

  async delete(key: K): Promise<boolean> {
    const existed = this.#records.delete(this.#id(key));
    if (existed) this.#notify(key);
    return existed;
  }

  async list(): Promise<K[]> {
    return [...this.#records.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([, entry]) => structuredClone(entry.key));
  }

  /** Always live: every put and delete is reported, whoever made it. */
  watch(onChange: (key?: K) => void): StoreWatch {
    this.#listeners.add(onChange);
    return {
      live: true,
      close: () => {
        this.#listeners.delete(onChange);
      },
    };
  }

  #notify(key: K): void {
    for (const listener of this.#listeners) listener(key);
  }
}

/** A token store in memory, for tests: keeps nothing; its locks are exclusive within this process. */
export class MemoryTokenStore extends MemoryRecordStore<AccountKey, AccountRecord> implements LockingRecordStore<AccountKey, AccountRecord> {
  /** Per account: the tail of the queue of lock holders. */
  readonly #locks = new Map<string, Promise<void>>();

  constructor() {
    super(
      (record) => ({ provider: record.provider, bucket: record.bucket }),
      (key) => `${key.provider}\u0000${key.bucket}`,
    );
  }

  async lock(key: AccountKey): Promise<Unlock> {
    const id = `${key.provider}\u0000${key.bucket}`;
    const previous = this.#locks.get(id) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((resolve) => (release = resolve));
    const tail = previous.then(() => mine);
    this.#locks.set(id, tail);
    await previous;
    let released = false;
    return async () => {
      if (released) return;
      released = true;
      release();
      if (this.#locks.get(id) === tail) this.#locks.delete(id);
    };
  }
}

/**
 * API keys: the one reader and writer of the API-key store for the proxy, with the keys held in
 * memory so get_api_key is answered like a cached get_token — synchronously, with no disk I/O.
 *
 * Memory stays consistent with the store: this service's own writes update it, and the store's
 * change feed (for files: fs.watch on keys/) drops what another process changed — `credproxy key
 * set` against another proxy on the same data dir, or a file written by hand. Where the feed is
 * not live (no watch support, the inotify limit, keys/ replaced), a key is read again once it has
 * been in memory for `recheckMs`; with a live feed, after `maxAgeMs` anyway, so even a lost event
 * costs a bounded staleness. A store without a feed gets the `recheckMs` bound.
 */
import { deepFreeze } from '../protocol/codec.js';
import { ErrorCode, ProxyError } from '../protocol/errors.js';
import { type Clock, systemClock } from '../util/clock.js';
import type { RecordStore, StoreWatch } from '../util/record-store.js';

/** One stored API key. The key is kept verbatim. */
export interface ApiKeyRecord {
  name: string;
  key: string;
}

/** The API-key store contract (util/record-store.ts), keyed by name. */
export type ApiKeyStore = RecordStore<string, ApiKeyRecord>;

/** get_api_key's answer. Frozen, so the connection serializes it once for every caller. */
export type KeyAnswer = Readonly<{ key: string }>;

/** Without a live change feed, a key in memory is read again after this long. */
export const KEY_RECHECK_MS = 250;
/** With a live change feed, a key in memory is read again after this long all the same. */
export const KEY_MAX_AGE_MS = 60_000;
/** Names remembered at most (answers "no such key" included); past it, memory starts over. */
const MAX_ENTRIES = 4_096;

export interface ApiKeyServiceOptions {
  store: ApiKeyStore;
  clock?: Clock;
  recheckMs?: number;
  maxAgeMs?: number;
}

interface Entry {
  /** null: the store has no such key. */
  answer: KeyAnswer | null;
  /** When the read that produced it started (or the write that set it ended), ms. */
  at: number;
}

interface Loading {
  generation: number;
  promise: Promise<KeyAnswer | null>;
}

export class ApiKeyService {
  readonly #store: ApiKeyStore;
  readonly #clock: Clock;
  readonly #recheckMs: number;
  readonly #maxAgeMs: number;
  readonly #entries = new Map<string, Entry>();
  /** One read per name at a time. */
  readonly #loading = new Map<string, Loading>();
  /** Bumped by every change: a read that started before one is not remembered. */
  #generation = 0;
  #feed: StoreWatch | undefined;
  #feedOpened = false;

  constructor(options: ApiKeyServiceOptions) {
    this.#store = options.store;
    this.#clock = options.clock ?? systemClock;
    this.#recheckMs = options.recheckMs ?? KEY_RECHECK_MS;
    this.#maxAgeMs = options.maxAgeMs ?? KEY_MAX_AGE_MS;
  }

  /**
   * The hot path: get_api_key's answer from memory, synchronously — the key, `null` when the
   * store has no such key, or `undefined` when memory cannot say (call load()).
   */
  cached(name: string): KeyAnswer | null | undefined {
    // Read `live` first: restarting a broken feed forgets everything.
    const live = this.#feed?.live === true;
    const entry = this.#entries.get(name);
    if (entry === undefined) return undefined;
    if (this.#clock.now() - entry.at >= (live ? this.#maxAgeMs : this.#recheckMs)) return undefined;
    return entry.answer;
  }

  /** The key's answer, from memory when it can, else from the store (then remembered). */
  load(name: string): Promise<KeyAnswer | null> {
    const hit = this.cached(name);
    if (hit !== undefined) return Promise.resolve(hit);
    this.#openFeed();
    const generation = this.#generation;
    const loading = this.#loading.get(name);
    if (loading !== undefined && loading.generation === generation) return loading.promise;
    const at = this.#clock.now();
    const promise = this.#store.get(name).then(
      (record) => {
        const answer = record === undefined ? null : deepFreeze({ key: record.key });
        if (generation === this.#generation) this.#remember(name, answer, at);
        return answer;
      },
      (err: unknown) => {
        // A shared store that cannot be reached (Redis down): the last answer it gave stands,
        // as a still-valid token does, until it can be asked again.
        const last = this.#entries.get(name);
        if (last !== undefined && err instanceof ProxyError && err.code === ErrorCode.UPSTREAM_UNAVAILABLE) return last.answer;
        throw err;
      },
    ).finally(() => {
      if (this.#loading.get(name)?.promise === promise) this.#loading.delete(name);
    });
    this.#loading.set(name, { generation, promise });
    return promise;
  }

  async get(name: string): Promise<string | undefined> {
    return (await this.load(name))?.key;
  }

  /**
   * Store a key. Memory only forgets the old answer: the next read takes the new one from the
   * store, so a write by another process landing just after this one is never masked.
   */
  async set(name: string, key: string): Promise<void> {
    this.#openFeed();
    try {
      await this.#store.put({ name, key });
    } finally {
      this.#changed(name);
    }
  }

  /** Remove a key; true when it existed. */
  async remove(name: string): Promise<boolean> {
    this.#openFeed();
    try {
      return await this.#store.delete(name);
    } finally {
      this.#changed(name);
    }
  }

  /** Names of the stored keys, sorted (read from the store: list_api_keys is not a hot path). */
  list(): Promise<string[]> {
    return this.#store.list();
  }

  /** Stop watching the store (the proxy stops). Memory is then re-checked after `recheckMs`. */
  close(): void {
    this.#feedOpened = true;
    this.#feed?.close();
    this.#feed = undefined;
  }

  #openFeed(): void {
    if (this.#feedOpened) return;
    this.#feedOpened = true;
    this.#feed = this.#store.watch?.((name) => this.#changed(name));
  }

  #changed(name?: string): void {
    this.#generation += 1;
    if (name === undefined) this.#entries.clear();
    else this.#entries.delete(name);
  }

  #remember(name: string, answer: KeyAnswer | null, at: number): void {
    if (this.#entries.size >= MAX_ENTRIES && !this.#entries.has(name)) this.#entries.clear();
    this.#entries.set(name, { answer, at });
  }
}

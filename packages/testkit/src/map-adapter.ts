/**
 * An oidc-provider storage adapter backed by plain Maps.
 *
 * oidc-provider's built-in memory adapter is an LRU capped at 1000 entries, so long runs (benchmarks,
 * many refreshes) silently lose grants. This one never evicts a live entry. Expired entries are kept
 * for `retentionSeconds` past their expiry (so the provider can still answer `expired_token` for a
 * device code instead of `invalid_grant`) and are then swept lazily.
 *
 * With an `onChange` callback the store reports every write (upsert, consume, destroy, revoke,
 * sweep) synchronously, after the Maps are updated: the server uses it to persist the store to a
 * state file, so a kill -9 right after a write loses nothing. `snapshot()` / `restore()` are the
 * persisted form.
 */

type Payload = Record<string, unknown> & { grantId?: string; userCode?: string; uid?: string; jti?: string };

interface Entry {
  payload: Payload;
  /** epoch ms after which the entry is gone; Infinity when the model has no expiry */
  dropAt: number;
}

/** One entry as persisted: `[key, payload, dropAt]`, dropAt null for "never". */
export type PersistedEntry = [key: string, payload: Payload, dropAt: number | null];

/** Models whose entries are linked to a grant (revoked together by revokeByGrantId). */
const GRANTABLE = new Set([
  'AccessToken',
  'AuthorizationCode',
  'RefreshToken',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
  'PreAuthorizedCode',
]);

const SWEEP_EVERY = 512;

function modelOf(key: string): string {
  const i = key.indexOf(':');
  return i < 0 ? key : key.slice(0, i);
}

export interface MapStoreOptions {
  /** called synchronously after every change to the stored entries */
  onChange?: () => void;
}

export class MapStore {
  readonly entries = new Map<string, Entry>();
  readonly grants = new Map<string, Set<string>>();
  readonly sessionUids = new Map<string, string>();
  readonly userCodes = new Map<string, string>();
  readonly #onChange: (() => void) | undefined;
  #writes = 0;

  constructor(
    readonly retentionSeconds: number,
    options: MapStoreOptions = {},
  ) {
    this.#onChange = options.onChange;
  }

  get(key: string): Payload | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    if (entry.dropAt <= Date.now()) {
      this.delete(key);
      return undefined;
    }
    return entry.payload;
  }

  /**
   * Store `payload` under `key` (`Model:id`). Entries of grant-linked models are indexed by grantId
   * (`linkToGrant`, default: by the model named in the key); Session entries by uid; anything
   * carrying a userCode by user code.
   */
  set(key: string, payload: Payload, expiresIn: number | undefined, linkToGrant = GRANTABLE.has(modelOf(key))): void {
    const dropAt =
      typeof expiresIn === 'number' ? Date.now() + (expiresIn + this.retentionSeconds) * 1000 : Infinity;
    this.#remove(key);
    this.#insert(key, { payload, dropAt }, linkToGrant);
    if (++this.#writes % SWEEP_EVERY === 0) this.#sweep();
    this.#changed();
  }

  /** Mark the entry consumed (oidc-provider's `consume`: one-time codes and rotated refresh tokens). */
  consume(key: string): void {
    const payload = this.get(key);
    if (!payload) return;
    payload.consumed = Math.floor(Date.now() / 1000);
    this.#changed();
  }

  delete(key: string): void {
    if (this.#remove(key)) this.#changed();
  }

  /** Delete every entry linked to the grant. */
  revokeGrant(grantId: string): void {
    const members = this.grants.get(grantId);
    if (!members) return;
    for (const key of [...members]) this.#remove(key);
    this.grants.delete(grantId);
    this.#changed();
  }

  sweep(): void {
    if (this.#sweep()) this.#changed();
  }

  /** Drop everything in memory (a persisted state file is left as it is). */
  clear(): void {
    this.entries.clear();
    this.grants.clear();
    this.sessionUids.clear();
    this.userCodes.clear();
  }

  /** The live entries, in a JSON-safe form. */
  snapshot(): PersistedEntry[] {
    const now = Date.now();
    const out: PersistedEntry[] = [];
    for (const [key, { payload, dropAt }] of this.entries) {
      if (dropAt <= now) continue;
      out.push([key, payload, dropAt === Infinity ? null : dropAt]);
    }
    return out;
  }

  /** Load entries from a snapshot (indexes rebuilt; already-dropped entries skipped); no onChange. */
  restore(entries: readonly PersistedEntry[]): void {
    const now = Date.now();
    for (const [key, payload, dropAt] of entries) {
      const at = dropAt ?? Infinity;
      if (at <= now) continue;
      this.#remove(key);
      this.#insert(key, { payload, dropAt: at }, GRANTABLE.has(modelOf(key)));
    }
  }

  #insert(key: string, entry: Entry, linkToGrant: boolean): void {
    const { payload } = entry;
    this.entries.set(key, entry);
    if (linkToGrant && payload.grantId) {
      let members = this.grants.get(payload.grantId);
      if (!members) {
        members = new Set();
        this.grants.set(payload.grantId, members);
      }
      members.add(key);
    }
    if (modelOf(key) === 'Session' && typeof payload.uid === 'string') this.sessionUids.set(payload.uid, key);
    if (typeof payload.userCode === 'string') this.userCodes.set(payload.userCode, key);
  }

  #remove(key: string): boolean {
    const entry = this.entries.get(key);
    if (!entry) return false;
    this.entries.delete(key);
    const { payload } = entry;
    if (payload.grantId) {
      const members = this.grants.get(payload.grantId);
      members?.delete(key);
      if (members && members.size === 0) this.grants.delete(payload.grantId);
    }
    if (payload.uid && this.sessionUids.get(payload.uid) === key) this.sessionUids.delete(payload.uid);
    if (payload.userCode && this.userCodes.get(payload.userCode) === key) this.userCodes.delete(payload.userCode);
    return true;
  }

  #sweep(): boolean {
    const now = Date.now();
    let removed = false;
    for (const [key, entry] of this.entries) {
      if (entry.dropAt <= now) removed = this.#remove(key) || removed;
    }
    return removed;
  }

  #changed(): void {
    this.#onChange?.();
  }
}

export class MapAdapter {
  constructor(
    readonly model: string,
    readonly store: MapStore,
  ) {}

  #key(id: string): string {
    return `${this.model}:${id}`;
  }

  async upsert(id: string, payload: Payload, expiresIn?: number): Promise<void> {
    this.store.set(this.#key(id), payload, expiresIn, GRANTABLE.has(this.model));
  }

  async find(id: string): Promise<Payload | undefined> {
    return this.store.get(this.#key(id));
  }

  async findByUid(uid: string): Promise<Payload | undefined> {
    const key = this.store.sessionUids.get(uid);
    return key === undefined ? undefined : this.store.get(key);
  }

  async findByUserCode(userCode: string): Promise<Payload | undefined> {
    const key = this.store.userCodes.get(userCode);
    return key === undefined ? undefined : this.store.get(key);
  }

  async consume(id: string): Promise<void> {
    this.store.consume(this.#key(id));
  }

  async destroy(id: string): Promise<void> {
    this.store.delete(this.#key(id));
  }

  async revokeByGrantId(grantId: string): Promise<void> {
    this.store.revokeGrant(grantId);
  }
}

/** The factory form oidc-provider accepts as `adapter`: called with a model name. */
export function createMapAdapterFactory(store: MapStore): (model: string) => MapAdapter {
  const adapters = new Map<string, MapAdapter>();
  return (model: string) => {
    let adapter = adapters.get(model);
    if (!adapter) {
      adapter = new MapAdapter(model, store);
      adapters.set(model, adapter);
    }
    return adapter;
  };
}

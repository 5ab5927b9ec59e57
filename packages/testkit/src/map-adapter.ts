/**
 * An oidc-provider storage adapter backed by plain Maps.
 *
 * oidc-provider's built-in memory adapter is an LRU capped at 1000 entries, so long runs (benchmarks,
 * many refreshes) silently lose grants. This one never evicts a live entry. Expired entries are kept
 * for `retentionSeconds` past their expiry (so the provider can still answer `expired_token` for a
 * device code instead of `invalid_grant`) and are then swept lazily.
 */

type Payload = Record<string, unknown> & { grantId?: string; userCode?: string; uid?: string; jti?: string };

interface Entry {
  payload: Payload;
  /** epoch ms after which the entry is gone; Infinity when the model has no expiry */
  dropAt: number;
}

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

export class MapStore {
  readonly entries = new Map<string, Entry>();
  readonly grants = new Map<string, Set<string>>();
  readonly sessionUids = new Map<string, string>();
  readonly userCodes = new Map<string, string>();
  #writes = 0;

  constructor(readonly retentionSeconds: number) {}

  get(key: string): Payload | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    if (entry.dropAt <= Date.now()) {
      this.delete(key);
      return undefined;
    }
    return entry.payload;
  }

  set(key: string, payload: Payload, expiresIn: number | undefined, linkToGrant: boolean): void {
    const dropAt =
      typeof expiresIn === 'number' ? Date.now() + (expiresIn + this.retentionSeconds) * 1000 : Infinity;
    this.delete(key);
    this.entries.set(key, { payload, dropAt });
    if (linkToGrant && payload.grantId) {
      let members = this.grants.get(payload.grantId);
      if (!members) {
        members = new Set();
        this.grants.set(payload.grantId, members);
      }
      members.add(key);
    }
    if (++this.#writes % SWEEP_EVERY === 0) this.sweep();
  }

  delete(key: string): void {
    const entry = this.entries.get(key);
    if (!entry) return;
    this.entries.delete(key);
    const { payload } = entry;
    if (payload.grantId) {
      const members = this.grants.get(payload.grantId);
      members?.delete(key);
      if (members && members.size === 0) this.grants.delete(payload.grantId);
    }
    if (payload.uid && this.sessionUids.get(payload.uid) === key) this.sessionUids.delete(payload.uid);
    if (payload.userCode && this.userCodes.get(payload.userCode) === key) this.userCodes.delete(payload.userCode);
  }

  sweep(): void {
    const now = Date.now();
    for (const [key, entry] of this.entries) {
      if (entry.dropAt <= now) this.delete(key);
    }
  }

  clear(): void {
    this.entries.clear();
    this.grants.clear();
    this.sessionUids.clear();
    this.userCodes.clear();
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
    const key = this.#key(id);
    this.store.set(key, payload, expiresIn, GRANTABLE.has(this.model));
    if (this.model === 'Session' && payload.uid) this.store.sessionUids.set(payload.uid, key);
    if (payload.userCode) this.store.userCodes.set(payload.userCode, key);
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
    const payload = this.store.get(this.#key(id));
    if (payload) payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id: string): Promise<void> {
    this.store.delete(this.#key(id));
  }

  async revokeByGrantId(grantId: string): Promise<void> {
    const members = this.store.grants.get(grantId);
    if (!members) return;
    for (const key of [...members]) this.store.delete(key);
    this.store.grants.delete(grantId);
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

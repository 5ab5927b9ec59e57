/**
 * Registered sandbox clients (SPEC §4). A capability token is 256 random bits shown once; only
 * its SHA-256 is stored, and lookups compare hashes in constant time. The registry keeps every
 * client in memory (handshakes authenticate synchronously) and reads and writes its storage
 * through the record-store contract (util/record-store.ts): `store/backends/file-clients.ts` on
 * disk, a memory store in tests.
 */
import { hash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { ClientAddPayload, ClientInfo, ClientScope } from '../protocol/ops.js';
import { ErrorCode, ProxyError } from '../protocol/errors.js';
import type { Clock } from '../util/clock.js';
import type { RecordStore } from '../util/record-store.js';

export const CAPABILITY_TOKEN_PATTERN = /^[0-9a-f]{64}$/;

/** A client as stored: what client_list shows, plus the token's hash and the creation time. */
export interface ClientRecord extends ClientInfo {
  token_sha256: string;
  /** Unix seconds. */
  created_at: number;
}

/** SHA-256 of a token, one-shot: a Hash object per handshake cost several µs more. */
function hashToken(token: string): Buffer {
  return hash('sha256', token, 'buffer');
}

export function toClientInfo(record: ClientRecord): ClientInfo {
  const info: ClientInfo = {
    name: record.name,
    scopes: record.scopes.map((s) => ({ ...s })),
    api_keys: [...record.api_keys],
    allow_login: record.allow_login,
    allow_refresh: record.allow_refresh,
  };
  if (record.socket !== undefined) info.socket = record.socket;
  if (record.routes !== undefined && record.routes.length > 0) info.routes = [...record.routes];
  if (record.http !== undefined) info.http = record.http;
  if (record.expires_at !== undefined) info.expires_at = record.expires_at;
  return info;
}

/** Where the registry keeps its clients, by name. */
export type ClientStore = RecordStore<string, ClientRecord>;

export class ClientRegistry {
  readonly #store: ClientStore;
  readonly #clock: Clock;
  #clients = new Map<string, ClientRecord>();
  #hashes: Array<{ hash: Buffer; name: string }> = [];
  /** Names being added right now: a second add of the same name is refused, not a lost write. */
  readonly #adding = new Set<string>();

  constructor(store: ClientStore, clock: Clock) {
    this.#store = store;
    this.#clock = clock;
  }

  /** Read every client from the store (at start). */
  async load(): Promise<void> {
    const next = new Map<string, ClientRecord>();
    for (const name of await this.#store.list()) {
      const record = await this.#store.get(name);
      if (record !== undefined) next.set(name, record);
    }
    this.#set(next);
  }

  #set(clients: Map<string, ClientRecord>): void {
    this.#clients = clients;
    this.#hashes = [...clients.values()].map((c) => ({ hash: Buffer.from(c.token_sha256, 'hex'), name: c.name }));
  }

  list(): ClientRecord[] {
    return [...this.#clients.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  get(name: string): ClientRecord | undefined {
    return this.#clients.get(name);
  }

  /** Register a client; resolves to the record and the token, which is never stored. */
  async add(payload: ClientAddPayload): Promise<{ record: ClientRecord; token: string }> {
    if (this.#clients.has(payload.name) || this.#adding.has(payload.name)) {
      throw new ProxyError(
        ErrorCode.INVALID_REQUEST,
        `a client named ${payload.name} exists — remove it first with \`credproxy client remove ${payload.name}\``,
      );
    }
    const token = randomBytes(32).toString('hex');
    const now = this.#clock.now();
    const record: ClientRecord = {
      name: payload.name,
      token_sha256: hashToken(token).toString('hex'),
      scopes: payload.scopes.map((s) => (s.bucket === undefined ? { provider: s.provider } : { provider: s.provider, bucket: s.bucket })),
      api_keys: [...new Set(payload.api_keys ?? [])],
      allow_login: payload.allow_login ?? false,
      allow_refresh: payload.allow_refresh ?? false,
      created_at: now,
    };
    if (payload.socket !== undefined) record.socket = payload.socket;
    if (payload.routes !== undefined && payload.routes.length > 0) record.routes = [...new Set(payload.routes)];
    if (payload.http !== undefined) record.http = payload.http;
    // Rounded up: a client never lives shorter than it was granted.
    if (payload.ttl_seconds !== undefined) record.expires_at = Math.ceil((now + payload.ttl_seconds * 1000) / 1000);
    this.#adding.add(record.name);
    try {
      await this.#store.put(record);
    } finally {
      this.#adding.delete(record.name);
    }
    const next = new Map(this.#clients);
    next.set(record.name, record);
    this.#set(next);
    return { record, token };
  }

  /**
   * Record the HTTP listener's bound address (`127.0.0.1:0` becomes the port picked), so a
   * restart listens where the sandbox was told to connect. Same registration only.
   */
  async setHttpAddress(name: string, tokenSha256: string, address: string): Promise<void> {
    const current = this.#clients.get(name);
    if (!current || current.token_sha256 !== tokenSha256 || current.http === address) return;
    const record: ClientRecord = { ...current, http: address };
    await this.#store.put(record);
    if (this.#clients.get(name) !== current) return;
    const next = new Map(this.#clients);
    next.set(name, record);
    this.#set(next);
  }

  async remove(name: string): Promise<ClientRecord | undefined> {
    const record = this.#clients.get(name);
    if (!record) return undefined;
    await this.#store.delete(name);
    const next = new Map(this.#clients);
    next.delete(name);
    this.#set(next);
    return record;
  }

  /**
   * The client this token belongs to, if any and not expired. Every stored hash is compared, in
   * constant time, so timing says nothing about which client or how many matched bytes.
   */
  authenticate(token: string): ClientRecord | undefined {
    if (!CAPABILITY_TOKEN_PATTERN.test(token)) return undefined;
    const presented = hashToken(token);
    let match: string | undefined;
    for (const { hash, name } of this.#hashes) {
      if (timingSafeEqual(hash, presented)) match = name;
    }
    if (match === undefined) return undefined;
    const record = this.#clients.get(match);
    if (!record) return undefined;
    if (this.isExpired(record)) return undefined;
    return record;
  }

  isExpired(record: ClientRecord): boolean {
    return record.expires_at !== undefined && record.expires_at * 1000 <= this.#clock.now();
  }
}

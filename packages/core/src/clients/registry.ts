/**
 * Registered sandbox clients (SPEC §4). A capability token is 256 random bits shown once; only
 * its SHA-256 is stored, and lookups compare hashes in constant time.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { ClientAddPayload, ClientInfo, ClientScope } from '../protocol/ops.js';
import { ErrorCode, ProxyError } from '../protocol/errors.js';
import { isPlainObject } from '../protocol/validate.js';
import type { Clock } from '../util/clock.js';
import { ensureDataDir, readSecretFile, writeFileAtomic } from '../util/fs-secure.js';
import path from 'node:path';

export const CAPABILITY_TOKEN_PATTERN = /^[0-9a-f]{64}$/;

/** A client as stored: what client_list shows, plus the token's hash and the creation time. */
export interface ClientRecord extends ClientInfo {
  token_sha256: string;
  /** Unix seconds. */
  created_at: number;
}

function hashToken(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
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
  if (record.expires_at !== undefined) info.expires_at = record.expires_at;
  return info;
}

export class ClientRegistry {
  readonly #file: string;
  readonly #clock: Clock;
  #clients = new Map<string, ClientRecord>();
  #hashes: Array<{ hash: Buffer; name: string }> = [];

  constructor(file: string, clock: Clock) {
    this.#file = file;
    this.#clock = clock;
  }

  static fileIn(dataDir: string): string {
    return path.join(dataDir, 'clients.json');
  }

  async load(): Promise<void> {
    const text = await readSecretFile(this.#file);
    const next = new Map<string, ClientRecord>();
    if (text !== undefined) {
      const parsed: unknown = JSON.parse(text);
      if (!isPlainObject(parsed) || !Array.isArray(parsed.clients)) {
        throw new Error(`${this.#file} is not a credproxy client registry`);
      }
      for (const c of parsed.clients as ClientRecord[]) next.set(c.name, c);
    }
    this.#set(next);
  }

  #set(clients: Map<string, ClientRecord>): void {
    this.#clients = clients;
    this.#hashes = [...clients.values()].map((c) => ({ hash: Buffer.from(c.token_sha256, 'hex'), name: c.name }));
  }

  async #persist(next: Map<string, ClientRecord>): Promise<void> {
    await ensureDataDir(path.dirname(this.#file));
    await writeFileAtomic(this.#file, JSON.stringify({ clients: [...next.values()] }, null, 2) + '\n');
    this.#set(next);
  }

  list(): ClientRecord[] {
    return [...this.#clients.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  get(name: string): ClientRecord | undefined {
    return this.#clients.get(name);
  }

  /** Register a client; resolves to the record and the token, which is never stored. */
  async add(payload: ClientAddPayload): Promise<{ record: ClientRecord; token: string }> {
    if (this.#clients.has(payload.name)) {
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
    // Rounded up: a client never lives shorter than it was granted.
    if (payload.ttl_seconds !== undefined) record.expires_at = Math.ceil((now + payload.ttl_seconds * 1000) / 1000);
    const next = new Map(this.#clients);
    next.set(record.name, record);
    await this.#persist(next);
    return { record, token };
  }

  async remove(name: string): Promise<ClientRecord | undefined> {
    const record = this.#clients.get(name);
    if (!record) return undefined;
    const next = new Map(this.#clients);
    next.delete(name);
    await this.#persist(next);
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

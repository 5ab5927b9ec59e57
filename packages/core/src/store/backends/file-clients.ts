/**
 * The client registry's storage on disk: one file, `clients.json` in the data dir
 * (`resolvePaths().clientsFile`), `{"clients": [ClientRecord, ...]}`, 0600, written atomically,
 * read without following a symlink and only from a directory nobody else can write. It holds
 * token hashes, never tokens. The registry's logic (clients/registry.ts) reads and writes it
 * through the record-store contract; each put or delete rewrites the file. Encrypted at rest, the
 * file is `{"sealed_clients": {"<name>": "<sealed record>"}}`, each record bound to `clients/<name>`.
 */
import path from 'node:path';
import type { ClientRecord } from '../../clients/registry.js';
import { isPlainObject } from '../../protocol/validate.js';
import { ensureDataDir, readSecretFile, writeFileAtomic } from '../../util/fs-secure.js';
import type { RecordStore } from '../../util/record-store.js';
import { RecordCipher } from '../crypto.js';

export class FileClientStore implements RecordStore<string, ClientRecord> {
  readonly #file: string;
  /** Writes one at a time: each reads the file, changes one record and writes it back. */
  #queue: Promise<unknown> = Promise.resolve();
  readonly #cipher: RecordCipher;

  constructor(file: string, options: { cipher?: RecordCipher } = {}) {
    this.#file = file;
    this.#cipher = options.cipher ?? RecordCipher.plaintext();
  }

  async #read(): Promise<Map<string, ClientRecord>> {
    const text = await readSecretFile(this.#file);
    const clients = new Map<string, ClientRecord>();
    if (text === undefined) return clients;
    const parsed: unknown = JSON.parse(text);
    if (isPlainObject(parsed) && isPlainObject(parsed.sealed_clients)) {
      for (const [name, sealed] of Object.entries(parsed.sealed_clients)) {
        const c = JSON.parse(this.#cipher.open(`clients/${name}`, String(sealed))) as ClientRecord;
        if (c.name !== name) throw new Error(`${this.#file} is not a credproxy client registry`);
        clients.set(name, c);
      }
      return clients;
    }
    if (!isPlainObject(parsed) || !Array.isArray(parsed.clients)) {
      throw new Error(`${this.#file} is not a credproxy client registry`);
    }
    for (const c of parsed.clients as ClientRecord[]) {
      this.#cipher.open(`clients/${c.name}`, JSON.stringify(c)); // plaintext: refused when encrypting, except in a migration sweep
      clients.set(c.name, c);
    }
    return clients;
  }

  #change<T>(fn: (clients: Map<string, ClientRecord>) => T): Promise<T> {
    const run = this.#queue.then(async () => {
      const clients = await this.#read();
      const result = fn(clients);
      await ensureDataDir(path.dirname(this.#file));
      await writeFileAtomic(this.#file, this.#serialize(clients));
      return result;
    });
    this.#queue = run.catch(() => undefined);
    return run;
  }

  #serialize(clients: Map<string, ClientRecord>): string {
    if (!this.#cipher.encrypting) return JSON.stringify({ clients: [...clients.values()] }, null, 2) + '\n';
    const sealed = Object.create(null) as Record<string, string>;
    for (const [name, c] of clients) sealed[name] = this.#cipher.seal(`clients/${name}`, JSON.stringify(c));
    return JSON.stringify({ sealed_clients: sealed }, null, 2) + '\n';
  }

  async get(name: string): Promise<ClientRecord | undefined> {
    return (await this.#read()).get(name);
  }

  put(record: ClientRecord): Promise<void> {
    const copy = structuredClone(record);
    return this.#change((clients) => {
      clients.set(copy.name, copy);
    });
  }

  async delete(name: string): Promise<boolean> {
    if (!(await this.#read()).has(name)) return false;
    return this.#change((clients) => clients.delete(name));
  }

  async list(): Promise<string[]> {
    return [...(await this.#read()).keys()].sort();
  }
}

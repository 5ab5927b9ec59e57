/**
 * API keys on disk: one file each, `<keys dir>/<name>.key`, holding the key verbatim, 0600,
 * written atomically, read without following symlinks and only from a directory nobody else can
 * write (util/fs-secure.ts). Its change feed watches the directory (dir-watch.ts).
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { isName } from '../../protocol/validate.js';
import { ensureDataDir, readSecretFile, removeFile, writeFileAtomic } from '../../util/fs-secure.js';
import type { StoreWatch } from '../../util/record-store.js';
import type { ApiKeyRecord, ApiKeyStore } from '../api-keys.js';
import { RecordCipher } from '../crypto.js';
import { DirWatch, type DirWatchOptions } from './dir-watch.js';

const SUFFIX = '.key';

export interface FileApiKeyStoreOptions {
  /** How the keys directory is watched (tests inject an unavailable fs.watch here). */
  watch?: DirWatchOptions;
  /** Seals each key file (encryption at rest); plaintext (the key verbatim) by default. */
  cipher?: RecordCipher;
}

export class FileApiKeyStore implements ApiKeyStore {
  readonly #dir: string;
  readonly #watchOptions: DirWatchOptions;
  readonly #cipher: RecordCipher;

  /** `dir`: the keys directory, `resolvePaths().keysDir`. Names are validated (SPEC §3) before they get here. */
  constructor(dir: string, options: FileApiKeyStoreOptions = {}) {
    this.#dir = dir;
    this.#watchOptions = options.watch ?? {};
    this.#cipher = options.cipher ?? RecordCipher.plaintext();
  }

  #file(name: string): string {
    return path.join(this.#dir, `${name}${SUFFIX}`);
  }

  async get(name: string): Promise<ApiKeyRecord | undefined> {
    const stored = await readSecretFile(this.#file(name));
    return stored === undefined ? undefined : { name, key: this.#cipher.open(`keys/${name}`, stored) };
  }

  async put(record: ApiKeyRecord): Promise<void> {
    await ensureDataDir(this.#dir);
    await writeFileAtomic(this.#file(record.name), this.#cipher.seal(`keys/${record.name}`, record.key));
  }

  async delete(name: string): Promise<boolean> {
    return removeFile(this.#file(name));
  }

  async list(): Promise<string[]> {
    let files: string[];
    try {
      files = await fs.readdir(this.#dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    // Temp files end in .tmp; a valid name may start with a dot (".env"), so no dot filter.
    return files
      .filter((f) => f.endsWith(SUFFIX))
      .map((f) => f.slice(0, -SUFFIX.length))
      .filter(isName)
      .sort();
  }

  /**
   * Changes to keys/ by anyone: `<name>.key` reports that name; our temp files (`.<name>.key.*.tmp`,
   * whose rename onto `<name>.key` is reported as that name) nothing; anything else — keys/ itself
   * chmod-ed, an unexpected entry, no file name — every name.
   */
  watch(onChange: (name?: string) => void): StoreWatch {
    return new DirWatch(
      this.#dir,
      (filename) => {
        if (filename !== null && filename.endsWith('.tmp')) return;
        const name = filename !== null && filename.endsWith(SUFFIX) ? filename.slice(0, -SUFFIX.length) : undefined;
        onChange(name !== undefined && isName(name) ? name : undefined);
      },
      this.#watchOptions,
    );
  }
}

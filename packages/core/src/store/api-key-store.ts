import { promises as fs } from 'node:fs';
import path from 'node:path';
import { isName } from '../protocol/validate.js';
import { ensureDataDir, readSecretFile, removeFile, writeFileAtomic } from '../util/fs-secure.js';

/** API keys, one 0600 file each: `<dir>/<name>.key`, written atomically. */
export class ApiKeyStore {
  readonly #dir: string;

  constructor(dir: string) {
    this.#dir = dir;
  }

  #file(name: string): string {
    return path.join(this.#dir, `${name}.key`);
  }

  async get(name: string): Promise<string | undefined> {
    return readSecretFile(this.#file(name));
  }

  async set(name: string, key: string): Promise<void> {
    await ensureDataDir(this.#dir);
    await writeFileAtomic(this.#file(name), key);
  }

  async remove(name: string): Promise<boolean> {
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
      .filter((f) => f.endsWith('.key'))
      .map((f) => f.slice(0, -'.key'.length))
      .filter(isName)
      .sort();
  }
}

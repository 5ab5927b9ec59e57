// A proxy (from the sources, run by vite-node under a low `ulimit -n`) whose process can be made to
// run out of file descriptors for real: armed with "exhaust-on-write", the next token write first
// opens /dev/null until the kernel answers EMFILE, then lets the real file store try (and fail);
// "free" closes those descriptors again. Commands on stdin, one JSON answer per line on stdout.
// argv: SOCKET DATA_DIR CONFIG
import { closeSync, openSync } from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { FileTokenStore, resolvePaths, startProxy, type AccountKey, type AccountRecord, type TokenStore } from '../../packages/core/src/index.js';

const [socketPath, dataDir, configFile] = process.argv.slice(2) as [string, string, string];
const held: number[] = [];
let armed = false;
const writeErrors: string[] = [];

function exhaust(): void {
  for (;;) {
    try {
      held.push(openSync('/dev/null', 'r'));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EMFILE') return;
      throw err;
    }
  }
}

class ExhaustingStore implements TokenStore {
  readonly #inner: FileTokenStore;
  constructor(dir: string) {
    this.#inner = new FileTokenStore(dir);
  }
  get(key: AccountKey): Promise<AccountRecord | undefined> {
    return this.#inner.get(key);
  }
  async put(record: AccountRecord): Promise<void> {
    if (armed) {
      armed = false;
      exhaust();
    }
    try {
      await this.#inner.put(record);
    } catch (err) {
      writeErrors.push(String((err as NodeJS.ErrnoException).code));
      throw err;
    }
  }
  delete(key: AccountKey): Promise<boolean> {
    return this.#inner.delete(key);
  }
  list(): Promise<AccountKey[]> {
    return this.#inner.list();
  }
  lock(key: AccountKey) {
    return this.#inner.lock(key);
  }
}

const paths = resolvePaths({ env: { CREDPROXY_DATA_DIR: dataDir, CREDPROXY_CONFIG: configFile }, socketPath });
const proxy = await startProxy({ paths, tokenStore: new ExhaustingStore(path.join(dataDir, 'tokens')) });
const answer = (value: Record<string, unknown>): void => void process.stdout.write(`${JSON.stringify(value)}\n`);

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  if (line === 'exhaust-on-write') {
    armed = true;
    answer({ ok: true });
  } else if (line === 'status') {
    answer({ exhausted: held.length > 0, writeErrors });
  } else if (line === 'free') {
    for (const fd of held.splice(0)) closeSync(fd);
    answer({ ok: true });
  } else {
    answer({ error: `unknown command ${line}` });
  }
});
process.on('SIGTERM', () => void proxy.stop().then(() => process.exit(0)));
answer({ ready: true, pid: process.pid });

/**
 * Where the key that wraps the data key comes from (SPEC §8), in this order: a key file
 * (`CREDPROXY_KEY_FILE`), a passphrase (`CREDPROXY_PASSPHRASE_FILE`, or a terminal prompt for
 * `serve`), the OS keyring (`@napi-rs/keyring`, an optional dependency loaded only when asked).
 * With none of them, the first start creates a key file in the config dir and says so loudly.
 * A shared store (Redis) takes only a key file or a passphrase: the keyring is per machine, and
 * a key created beside one proxy would not reach the others.
 */
import { createHash, randomBytes, scrypt as scryptCallback } from 'node:crypto';
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { ErrorCode, ProxyError } from '../protocol/errors.js';
import { writeFileAtomic } from '../util/fs-secure.js';
import { DATA_KEY_BYTES } from './crypto.js';

export type KeySourceKind = 'key_file' | 'passphrase' | 'keyring' | 'auto_key_file' | 'none';

/** scrypt parameters kept with the wrapped key, so a later start derives the same key. */
export interface ScryptParams {
  name: 'scrypt';
  salt: string;
  N: number;
  r: number;
  p: number;
}

export interface KeyEncryptionKey {
  kek: Buffer;
  kdf?: ScryptParams;
}

/** One way to obtain the key-encryption key. */
export interface KeySource {
  readonly kind: Exclude<KeySourceKind, 'none'>;
  /** A path for key files; what `store status` shows (never key bytes). */
  readonly location?: string;
  /** The key; `kdf`: the stored parameters of a passphrase key (absent: new ones are made). */
  kek(kdf?: ScryptParams): Promise<KeyEncryptionKey>;
}

function storeError(message: string): ProxyError {
  return new ProxyError(ErrorCode.INVALID_REQUEST, message);
}

/** 32 raw bytes, 64 hex characters or base64 of 32 bytes (a trailing newline is ignored). */
export function parseKeyFile(bytes: Buffer, file: string): Buffer {
  if (bytes.length === DATA_KEY_BYTES) return Buffer.from(bytes);
  const text = bytes.toString('utf8').trim();
  if (/^[0-9a-fA-F]{64}$/.test(text)) return Buffer.from(text, 'hex');
  if (/^[A-Za-z0-9+/_-]{42,44}={0,2}$/.test(text)) {
    const key = Buffer.from(text.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
    if (key.length === DATA_KEY_BYTES) return key;
  }
  throw storeError(`key file ${file} does not hold a 256-bit key — it must be 32 random bytes, raw or as 64 hex or base64 characters (make one with \`head -c 32 /dev/urandom > ${file} && chmod 600 ${file}\`)`);
}

/** A secret file must be ours and private (a systemd credential, 0400, passes). */
async function readPrivateFile(file: string, what: string): Promise<Buffer> {
  let st;
  try {
    st = await fs.stat(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw storeError(`${what} ${file} does not exist — create it, or unset the variable that names it`);
    throw err;
  }
  if (!st.isFile()) throw storeError(`${what} ${file} is not a regular file`);
  if ((st.mode & 0o077) !== 0) throw storeError(`${what} ${file} can be read by others (mode ${(st.mode & 0o777).toString(8)}) — run \`chmod 600 ${file}\``);
  if (typeof process.getuid === 'function' && st.uid !== process.getuid() && st.uid !== 0) {
    throw storeError(`${what} ${file} belongs to another user (uid ${st.uid}) — it must be yours`);
  }
  return fs.readFile(file);
}

export function keyFileSource(file: string, kind: 'key_file' | 'auto_key_file' = 'key_file'): KeySource {
  return {
    kind,
    location: file,
    async kek() {
      return { kek: parseKeyFile(await readPrivateFile(file, 'key file'), file) };
    },
  };
}

/**
 * The key file made when nothing else is configured: `<config dir>/store.key`, 0600, created only
 * when missing. Returns whether it was created now.
 */
export async function ensureAutoKeyFile(file: string, protectedDir: string): Promise<boolean> {
  const rel = path.relative(path.resolve(protectedDir), path.resolve(file));
  if (!rel.startsWith('..') && !path.isAbsolute(rel)) {
    throw storeError(`the config dir holds the data dir's key file and lies inside the data dir (${file}) — move the config (CREDPROXY_CONFIG) out of ${protectedDir}, or set CREDPROXY_KEY_FILE`);
  }
  try {
    await fs.stat(file);
    return false;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  try {
    await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
    await writeFileAtomic(file, randomBytes(DATA_KEY_BYTES).toString('hex') + '\n');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    throw storeError(`no key source is configured and credproxy cannot create its key file ${file} (${code}) — set CREDPROXY_KEY_FILE or CREDPROXY_PASSPHRASE_FILE, or make the config dir writable`);
  }
  return true;
}

const SCRYPT = { N: 2 ** 15, r: 8, p: 1 };

function scrypt(passphrase: string, salt: Buffer, params: { N: number; r: number; p: number }): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scryptCallback(passphrase.normalize('NFC'), salt, DATA_KEY_BYTES, { ...params, maxmem: 256 * params.N * params.r + 1024 * 1024 }, (err, key) =>
      err ? reject(err) : resolve(key),
    ),
  );
}

/** A passphrase from a file (first line) or a prompt; scrypt turns it into the key. */
export function passphraseSource(read: () => Promise<string>, location?: string): KeySource {
  return {
    kind: 'passphrase',
    ...(location !== undefined ? { location } : {}),
    async kek(kdf) {
      const passphrase = await read();
      if (passphrase.length < 8) throw storeError('the passphrase is shorter than 8 characters — choose a longer one');
      const params: ScryptParams = kdf ?? { name: 'scrypt', salt: randomBytes(16).toString('base64'), ...SCRYPT };
      if (params.name !== 'scrypt' || params.N > 2 ** 20 || params.r > 32 || params.p > 16) throw storeError('the stored passphrase parameters are not ones credproxy writes — was the store key record edited?');
      return { kek: await scrypt(passphrase, Buffer.from(params.salt, 'base64'), params), kdf: params };
    },
  };
}

export function passphraseFileSource(file: string): KeySource {
  return passphraseSource(async () => {
    const text = (await readPrivateFile(file, 'passphrase file')).toString('utf8');
    return text.split(/\r?\n/)[0] ?? '';
  }, file);
}

// ---- the OS keyring ------------------------------------------------------------------------

interface KeyringEntry {
  getPassword(signal?: AbortSignal): Promise<string | null>;
  setPassword(password: string, signal?: AbortSignal): Promise<void>;
}
type KeyringModule = { AsyncEntry: new (service: string, account: string, options?: { linux?: { store?: 'secret-service' | 'keyutils' } }) => KeyringEntry };

/**
 * On Linux the Secret Service only: the package would otherwise fall back to the kernel keyring,
 * which forgets everything at reboot — and the data key, and so every token, with it.
 */
const KEYRING_OPTIONS = { linux: { store: 'secret-service' as const } };

const KEYRING_SERVICE = 'credproxy';
const KEYRING_TIMEOUT_MS = 3_000;

/**
 * Whether a Secret Service could answer at all (Linux): it lives on the session bus, which a
 * client finds through DBUS_SESSION_BUS_ADDRESS, at $XDG_RUNTIME_DIR/bus, or launches for an X
 * session. Without any of them (a server, a container, CI) the keyring package — megabytes of a
 * proxy's memory, and a probe with a deadline — is not loaded. Other systems: always asked.
 */
export function secretServiceReachable(
  env: NodeJS.ProcessEnv,
  platform: NodeJS.Platform = process.platform,
  exists: (file: string) => boolean = existsSync,
  uid: number | undefined = process.getuid?.(),
): boolean {
  if (platform !== 'linux') return true;
  if (env.DBUS_SESSION_BUS_ADDRESS || env.DISPLAY) return true;
  const runtime = env.XDG_RUNTIME_DIR || (uid === undefined ? undefined : `/run/user/${uid}`);
  return runtime !== undefined && exists(path.join(runtime, 'bus'));
}

/** Loaded lazily: a machine without the optional package, or without a keyring, still works. */
async function loadKeyring(): Promise<KeyringModule | undefined> {
  try {
    const name = '@napi-rs/keyring';
    return (await import(name)) as KeyringModule;
  } catch {
    return undefined;
  }
}

/** The keyring account for one store: a hash of where the store lives. */
export function keyringAccount(storeLocation: string): string {
  return `store-key:${createHash('sha256').update(storeLocation).digest('hex').slice(0, 16)}`;
}

/**
 * The keyring, when one answers: a read with a deadline (a keyring that prompts or hangs must not
 * stall the start). Undefined when the package is missing or no keyring answers.
 */
export async function keyringSource(account: string, env: NodeJS.ProcessEnv = process.env): Promise<KeySource | undefined> {
  if (!secretServiceReachable(env)) return undefined;
  const mod = await loadKeyring();
  if (!mod) return undefined;
  // The probe is the real thing: read the entry, or create it and read it back. A keyring that
  // cannot do both (none running, locked, refusing) does not answer.
  let kek: Buffer;
  try {
    const entry = new mod.AsyncEntry(KEYRING_SERVICE, account, KEYRING_OPTIONS);
    let stored = await entry.getPassword(AbortSignal.timeout(KEYRING_TIMEOUT_MS));
    if (stored === null) {
      stored = randomBytes(DATA_KEY_BYTES).toString('base64');
      await entry.setPassword(stored, AbortSignal.timeout(KEYRING_TIMEOUT_MS));
      if ((await entry.getPassword(AbortSignal.timeout(KEYRING_TIMEOUT_MS))) !== stored) return undefined;
    }
    kek = Buffer.from(stored, 'base64');
  } catch {
    return undefined;
  }
  if (kek.length !== DATA_KEY_BYTES) throw storeError(`the OS keyring entry ${KEYRING_SERVICE}/${account} does not hold a credproxy key — remove it, or set CREDPROXY_KEY_FILE`);
  return {
    kind: 'keyring',
    location: `${KEYRING_SERVICE}/${account}`,
    kek: async () => ({ kek }),
  };
}

/**
 * File primitives for secrets: private directories checked before use, and atomic 0600 writes
 * (temp file, fsync, rename, directory fsync) so a crash leaves the old or the new content.
 */
import { randomBytes } from 'node:crypto';
import { constants as fsConstants, promises as fs } from 'node:fs';
import path from 'node:path';
import { ErrorCode, ProxyError } from '../protocol/errors.js';

function uid(): number | undefined {
  return typeof process.getuid === 'function' ? process.getuid() : undefined;
}

/**
 * Create `dir` (and parents) 0700 if missing, then refuse it unless it belongs to us and has no
 * group/other bits. Used for the socket directory, where anyone else's write access would let
 * them plant a socket.
 */
export async function ensurePrivateDir(dir: string): Promise<void> {
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  const st = await fs.stat(dir);
  const me = uid();
  if (!st.isDirectory()) {
    throw new ProxyError(ErrorCode.INVALID_REQUEST, `${dir} is not a directory — remove it or choose another socket path`);
  }
  if (me !== undefined && st.uid !== me) {
    throw new ProxyError(
      ErrorCode.FORBIDDEN,
      `${dir} belongs to uid ${st.uid}, not to you (uid ${me}) — choose another socket path with --socket`,
    );
  }
  if ((st.mode & 0o077) !== 0) {
    throw new ProxyError(
      ErrorCode.FORBIDDEN,
      `${dir} is accessible by group or others (mode ${(st.mode & 0o777).toString(8)}) — run \`chmod 700 ${dir}\` or choose another socket path`,
    );
  }
}

/** `chmod`-style octal of a mode's permission bits. */
function octal(mode: number): string {
  return (mode & 0o777).toString(8);
}

/**
 * Create a data directory (the data dir, `tokens/`, `tokens/<provider>/`, `keys/`) 0700 when
 * missing, then refuse it unless it belongs to us and has no group/other bits. Another uid that
 * owns it, or anyone who can write in it, could plant a file or a symlink that the proxy would
 * serve as a secret, or rename one secret over another.
 *
 * A directory of ours that others may only read or enter (e.g. 0755, made by hand) is refused
 * too, not tightened: credproxy only ever creates 0700 ones, so this is a directory the user
 * chose, and chmod-ing it behind their back could break whatever else uses it. The message names
 * the one command that fixes it.
 */
export async function ensureDataDir(dir: string): Promise<void> {
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  const st = await fs.stat(dir);
  if (!st.isDirectory()) {
    throw new ProxyError(ErrorCode.INVALID_REQUEST, `${dir} is not a directory — remove it or set CREDPROXY_DATA_DIR to another directory`);
  }
  assertOurs(dir, st, dataDirFix(dir));
  if ((st.mode & 0o077) !== 0) {
    throw new ProxyError(
      ErrorCode.FORBIDDEN,
      `${dir} holds secrets but is accessible by group or others (mode ${octal(st.mode)}) — run \`chmod 700 ${dir}\``,
    );
  }
}

/**
 * Create a directory 0700 when missing; an existing one is left as it is. For the config file's
 * directory, which the user chooses and which can be $HOME.
 */
export async function ensureUserDir(dir: string): Promise<void> {
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
}

function dataDirFix(dir: string): string {
  return `set CREDPROXY_DATA_DIR to a directory of your own, or, if this one is yours, check what is in it and run \`chown -R ${uid() ?? '$(id -u)'} ${dir}\` as root`;
}

function assertOurs(file: string, st: { uid: number }, fix: string): void {
  const me = uid();
  if (me !== undefined && st.uid !== me) {
    throw new ProxyError(ErrorCode.FORBIDDEN, `${file} belongs to uid ${st.uid}, not to you (uid ${me}), so it cannot be trusted — ${fix}`);
  }
}

async function fsyncDir(dir: string): Promise<void> {
  let handle: fs.FileHandle | undefined;
  try {
    handle = await fs.open(dir, fsConstants.O_RDONLY);
    await handle.sync();
  } catch {
    // Some filesystems refuse fsync on a directory; the rename is still atomic there.
  } finally {
    await handle?.close();
  }
}

/** Write `data` to `file` atomically with mode 0600. */
export async function writeFileAtomic(file: string, data: string | Uint8Array): Promise<void> {
  const dir = path.dirname(file);
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  const handle = await fs.open(tmp, 'wx', 0o600);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } catch (err) {
    await handle.close();
    await fs.rm(tmp, { force: true });
    throw err;
  }
  await handle.close();
  try {
    await fs.rename(tmp, file);
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw err;
  }
  await fsyncDir(dir);
}

/**
 * Read a file of ours, or undefined when it does not exist. A symbolic link is not followed (its
 * target could be any file the proxy can read), and anything but a regular file that belongs to
 * us is refused: a FIFO would hang the read, a file of another uid was planted. Opened
 * non-blocking, so a FIFO is refused instead of waited on.
 */
export async function readFileIfExists(file: string): Promise<string | undefined> {
  let handle: fs.FileHandle;
  try {
    handle = await fs.open(file, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    if (code === 'ELOOP') {
      throw new ProxyError(ErrorCode.FORBIDDEN, `${file} is a symbolic link, which credproxy does not follow — remove it (\`rm ${file}\`); if it held a secret, store that again`);
    }
    throw err;
  }
  try {
    const st = await handle.stat();
    // A directory falls through to the read, which fails with EISDIR as callers expect.
    if (!st.isFile() && !st.isDirectory()) {
      throw new ProxyError(ErrorCode.FORBIDDEN, `${file} is not a regular file — remove it (\`rm ${file}\`); if it held a secret, store that again`);
    }
    assertOurs(file, st, `remove it (\`rm ${file}\`); if it held a secret, store that again`);
    return await handle.readFile('utf8');
  } finally {
    await handle.close();
  }
}

/**
 * Read a secret (an API key, a token, the client registry): readFileIfExists, after checking that
 * the directory holding it belongs to us and is not writable by group or others, so nobody else
 * can have put the file there or renamed another secret onto its name.
 */
export async function readSecretFile(file: string): Promise<string | undefined> {
  const dir = path.dirname(file);
  let st;
  try {
    st = await fs.stat(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  assertOurs(dir, st, dataDirFix(dir));
  if ((st.mode & 0o022) !== 0) {
    throw new ProxyError(
      ErrorCode.FORBIDDEN,
      `${dir} holds secrets but is writable by group or others (mode ${octal(st.mode)}) — run \`chmod 700 ${dir}\``,
    );
  }
  return readFileIfExists(file);
}

/** Remove a file; true when it existed. */
export async function removeFile(file: string): Promise<boolean> {
  try {
    await fs.unlink(file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

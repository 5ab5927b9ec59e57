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

/**
 * Create a data directory 0700 when missing. An existing one is left as it is: it may be a
 * directory the user chose (the config file's directory can be $HOME), and the secrets in it are
 * 0600 files anyway.
 */
export async function ensureDataDir(dir: string): Promise<void> {
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
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

/** Read a file, or undefined when it does not exist. */
export async function readFileIfExists(file: string): Promise<string | undefined> {
  try {
    return await fs.readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
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

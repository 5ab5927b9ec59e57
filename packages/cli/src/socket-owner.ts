/**
 * Whether a pid a proxy reports is a process here. A proxy in another pid namespace (a
 * container) answers ping with its own pid, which here is another process (often 1, the init) or
 * none: `kill <pid>` would hit the wrong process, and waiting for it to exit never ends.
 */
import { promises as fs } from 'node:fs';
import { isRunning } from './core-client.js';

/** SO_ACCEPTCON in /proc/net/unix's Flags column: a listening socket. */
const LISTENING = 0x10000;

/** Inodes of the listening sockets bound to `socketPath`, or undefined without /proc/net/unix. */
async function listeningInodes(socketPath: string): Promise<Set<string> | undefined> {
  let table: string;
  try {
    table = await fs.readFile('/proc/net/unix', 'utf8');
  } catch {
    return undefined;
  }
  const names = new Set([socketPath]);
  const real = await fs.realpath(socketPath).catch(() => undefined);
  if (real !== undefined) names.add(real);
  const inodes = new Set<string>();
  // "Num: RefCount Protocol Flags Type St Inode Path" — the path is the rest of the line.
  for (const line of table.split('\n')) {
    const m = /^\S+: \S+ \S+ ([0-9A-Fa-f]+) \S+ \S+ (\d+) (.+)$/.exec(line);
    if (m && (Number.parseInt(m[1]!, 16) & LISTENING) !== 0 && names.has(m[3]!)) inodes.add(m[2]!);
  }
  return inodes;
}

/**
 * 'yes' when process `pid`, as this process sees pids, holds the socket listening on
 * `socketPath`; 'no' when it does not (or when nothing in this network namespace listens there,
 * so the proxy runs elsewhere); 'unknown' where this cannot be told (no /proc, or the process's
 * descriptors are not ours to read). Ask while the proxy still listens.
 */
export async function socketOwnedBy(socketPath: string, pid: number): Promise<'yes' | 'no' | 'unknown'> {
  if (!Number.isInteger(pid) || pid <= 0) return 'no';
  const inodes = await listeningInodes(socketPath);
  if (inodes === undefined) return 'unknown';
  if (inodes.size === 0) return 'no';
  let fds: string[];
  try {
    fds = await fs.readdir(`/proc/${pid}/fd`);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no' : 'unknown';
  }
  for (const fd of fds) {
    const link = await fs.readlink(`/proc/${pid}/fd/${fd}`).catch(() => '');
    const m = /^socket:\[(\d+)\]$/.exec(link);
    if (m && inodes.has(m[1]!)) return 'yes';
  }
  return 'no';
}

/**
 * Whether `kill <pid>` may be advised and the pid waited on: it is the socket's owner, or, where
 * that cannot be checked, a running process other than init, the kernel's 0, and ourselves.
 */
export async function isProxyProcessHere(socketPath: string, pid: number): Promise<boolean> {
  const owned = await socketOwnedBy(socketPath, pid);
  if (owned !== 'unknown') return owned === 'yes';
  return Number.isInteger(pid) && pid > 1 && pid !== process.pid && isRunning(pid);
}

/** What /proc says of a child process the tests started (Linux). */
import { readdirSync, readFileSync } from 'node:fs';

/** VmRSS of a process, in MiB. */
export function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) / 1024;
}

/** Descriptors a process holds open. */
export const openFds = (pid: number): number => readdirSync(`/proc/${pid}/fd`).length;

/** The soft open-files limit of a process. */
export function openFilesLimit(pid: number): number {
  const m = /Max open files\s+(\S+)/.exec(readFileSync(`/proc/${pid}/limits`, 'utf8'));
  return m?.[1] === 'unlimited' ? Infinity : Number(m?.[1]);
}

/** Whether a process exists (signal 0). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

import { readFileSync } from 'node:fs';

/**
 * Whether the process still runs. A zombie does not: a proxy killed with -9 whose parent has not
 * reaped it (or a detached proxy under an init that never reaps) still answers kill(pid, 0).
 */
export function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return true; // no /proc (macOS): kill(pid, 0) is all there is
  }
}

// The benches' child processes: started with their output kept (a pipe nobody reads fills up,
// and a process with output queued cannot exit; the last 8 KiB serve error reports), and all
// stopped at the end — each must stop on SIGTERM; one that does not is reported and killed.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';

export class Children {
  #list = [];
  #env;

  constructor(env) {
    this.#env = env;
  }

  /** A node process running `args`. */
  start(args, options = {}) {
    const child = spawn(process.execPath, args, { env: this.#env, stdio: ['ignore', 'pipe', 'pipe'], ...options });
    this.#list.push(child);
    child.output = '';
    const keep = (chunk) => {
      child.output = (child.output + chunk.toString()).slice(-8192);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    return child;
  }

  async stopAll() {
    await Promise.all(this.#list.map((c) => {
      if (c.exitCode !== null || c.signalCode !== null) return undefined;
      return new Promise((resolve) => {
        const late = setTimeout(() => {
          process.stderr.write(`bench: ${c.spawnargs.slice(1).join(' ')} did not stop within 5 s of SIGTERM; killing it. Its last output:\n${c.output}\n`);
          process.exitCode = 1;
          c.kill('SIGKILL');
        }, 5_000);
        c.once('exit', () => {
          clearTimeout(late);
          resolve();
        });
        c.kill('SIGTERM');
      });
    }));
  }
}

/** VmRSS of a process in MB, one decimal. */
export function rssMb(pid) {
  const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+) kB/);
  return m ? Math.round(Number(m[1]) / 102.4) / 10 : NaN;
}

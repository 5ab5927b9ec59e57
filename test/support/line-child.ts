/**
 * A node child process for tests that load the proxy from outside (abuse, swarms, a proxy whose
 * RSS is read from /proc): run under `sh -c 'ulimit -n …'` (a thousand sockets need more than
 * the usual soft limit of 1024 descriptors), its stdout read by line, a line found by prefix.
 */
import { spawn, type ChildProcess } from 'node:child_process';

export interface LineChildOptions {
  nodeFlags?: string[];
  /** The open-files soft limit; default the hard limit. */
  openFiles?: number;
  /** A line starting with this reports a failure: waitFor throws with it. */
  errorPrefix?: string;
}

export class LineChild {
  readonly proc: ChildProcess;
  readonly exited: Promise<void>;
  readonly #errorPrefix: string | undefined;
  #lines: string[] = [];
  #waiters: Array<() => void> = [];
  #stderr = '';
  #done = false;

  /** `script`: the absolute path of a node script. */
  constructor(script: string, args: string[], options: LineChildOptions = {}) {
    const limit = options.openFiles === undefined ? '"$(ulimit -Hn)"' : String(options.openFiles);
    this.#errorPrefix = options.errorPrefix;
    this.proc = spawn('/bin/sh', ['-c', `ulimit -n ${limit} 2>/dev/null; exec "$@"`, 'sh', process.execPath, ...(options.nodeFlags ?? []), script, ...args], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let buffered = '';
    this.proc.stdout!.on('data', (d: Buffer) => {
      buffered += d.toString();
      const parts = buffered.split('\n');
      buffered = parts.pop()!;
      this.#lines.push(...parts);
      this.#wake();
    });
    this.proc.stderr!.on('data', (d: Buffer) => (this.#stderr += d.toString()));
    this.exited = new Promise((resolve) =>
      this.proc.once('exit', () => {
        this.#done = true;
        this.#wake();
        resolve();
      }),
    );
  }

  #wake(): void {
    for (const w of this.#waiters.splice(0)) w();
  }

  /** Everything the child wrote to stderr so far. */
  get stderr(): string {
    return this.#stderr;
  }

  get running(): boolean {
    return !this.#done;
  }

  /** The rest of the first line that is `prefix` followed by a space or nothing (consumed), trimmed. */
  async waitFor(prefix: string, timeoutMs: number): Promise<string> {
    const end = Date.now() + timeoutMs;
    const script = this.proc.spawnargs.find((a) => /\.(mjs|js|ts)$/.test(a)) ?? 'child';
    for (;;) {
      const i = this.#lines.findIndex((l) => l === prefix || l.startsWith(`${prefix} `));
      if (i >= 0) return this.#lines.splice(i, 1)[0]!.slice(prefix.length).trim();
      const error = this.#errorPrefix === undefined ? undefined : this.#lines.find((l) => l.startsWith(this.#errorPrefix!));
      if (error) throw new Error(`${script} failed: ${error}`);
      if (this.#done) throw new Error(`${script} exited before "${prefix}": ${this.#stderr}`);
      const left = end - Date.now();
      if (left <= 0) throw new Error(`no "${prefix}" line from ${script} within ${timeoutMs} ms; stderr: ${this.#stderr.slice(-2000)}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  send(line: string): void {
    this.proc.stdin!.write(`${line}\n`);
  }

  async kill(): Promise<void> {
    if (this.#done) return;
    this.proc.kill('SIGKILL');
    await this.exited;
  }

  /** Close stdin (children that read it stop on that), SIGKILL after `graceMs`. */
  async stop(graceMs = 5000): Promise<void> {
    if (this.#done) return;
    this.proc.stdin!.end();
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}

/**
 * The test authorization server as a child process (test/support/as-child.mjs): started, killed
 * with SIGKILL, and started again on the same port with the same state file. stopAsChildren()
 * kills whatever is still running (call it in afterEach).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestAuthServerOptions, TestClients } from '@credproxy/testkit';

const script = path.join(path.dirname(fileURLToPath(import.meta.url)), 'as-child.mjs');

/** What as-child.mjs accepts: the plain-data options of startTestAuthServer, and holdRefreshMs. */
export type AsChildOptions = Omit<TestAuthServerOptions, 'failTokenEndpoint' | 'onRequest' | 'nativeRedirectUris'> & {
  /** hold every refresh_token grant request this long before answering it */
  holdRefreshMs?: number;
};

export interface AsChildEvent {
  event: string;
  [field: string]: unknown;
}

export interface AsChildInfo {
  pid: number;
  issuer: string;
  port: number;
  restored: boolean;
  clients: TestClients;
}

const live = new Set<AsChild>();

export class AsChild {
  readonly events: AsChildEvent[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  #stderr = '';
  #waiters: Array<() => void> = [];
  #exitedNow = false;
  info!: AsChildInfo;

  constructor(readonly child: ChildProcess) {
    let buffered = '';
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (chunk: string) => {
      buffered += chunk;
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        if (!line.trim()) continue;
        try {
          this.events.push(JSON.parse(line) as AsChildEvent);
        } catch {
          this.events.push({ event: 'stdout', line });
        }
      }
      this.#wake();
    });
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (chunk: string) => (this.#stderr += chunk));
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.#exitedNow = true;
        live.delete(this);
        resolve({ code, signal });
        this.#wake();
      });
    });
  }

  get stderr(): string {
    return this.#stderr;
  }

  #wake(): void {
    for (const w of this.#waiters.splice(0)) w();
  }

  /** The first event (received so far or later) that matches; rejects on exit or timeout. */
  async waitFor(match: (e: AsChildEvent) => boolean, timeoutMs = 10_000): Promise<AsChildEvent> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const found = this.events.find(match);
      if (found) return found;
      if (this.#exitedNow) throw new Error(`authorization server child exited before the event; stderr: ${this.#stderr}`);
      const left = end - Date.now();
      if (left <= 0) throw new Error(`no matching event from the authorization server child within ${timeoutMs} ms: ${JSON.stringify(this.events)}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** SIGKILL, and wait until the process is gone (its port is then free). */
  async kill9(): Promise<void> {
    if (!this.#exitedNow) this.child.kill('SIGKILL');
    await this.exited;
  }

  url(p: string): string {
    return `${this.info.issuer}${p}`;
  }

  /** GET the userinfo endpoint with the bearer token; the HTTP status. */
  async userinfoStatus(accessToken: string): Promise<number> {
    const res = await fetch(this.url('/me'), { headers: { authorization: `Bearer ${accessToken}`, accept: 'application/json' } });
    await res.arrayBuffer();
    return res.status;
  }

  /** Whether the token is active, by introspection as the confidential client. */
  async isActive(token: string): Promise<boolean> {
    const { clientId, clientSecret } = this.info.clients.confidential;
    const res = await fetch(this.url('/token/introspection'), {
      method: 'POST',
      headers: {
        authorization: `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(clientSecret)}`).toString('base64')}`,
        'content-type': 'application/x-www-form-urlencoded',
        accept: 'application/json',
      },
      body: new URLSearchParams({ token }).toString(),
    });
    const body = (await res.json()) as { active?: unknown };
    if (res.status !== 200) throw new Error(`introspection failed: ${res.status} ${JSON.stringify(body)}`);
    return body.active === true;
  }
}

/** Start as-child.mjs and wait until it listens. */
export async function startAsChild(options: AsChildOptions): Promise<AsChild> {
  const child = spawn(process.execPath, [script, JSON.stringify(options)], { stdio: ['ignore', 'pipe', 'pipe'] });
  const as = new AsChild(child);
  live.add(as);
  try {
    const ready = await as.waitFor((e) => e.event === 'ready', 15_000);
    as.info = ready as unknown as AsChildInfo;
  } catch (err) {
    await as.kill9();
    throw err;
  }
  return as;
}

/** Kill -9 every child still running, and wait for them to exit. */
export async function stopAsChildren(): Promise<void> {
  await Promise.all([...live].map((as) => as.kill9()));
}

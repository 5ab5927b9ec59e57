/**
 * Run the built CLI as a user would: `node packages/cli/dist/bin.js ...` with its own env, a
 * fresh temp dir per proxy, and every child process killed and every dir removed afterwards.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ProxyClient } from '@credproxy/core';

export const BIN = fileURLToPath(new URL('../../packages/cli/dist/bin.js', import.meta.url));
/**
 * The `credproxy` command as npm installs it (package.json's bin): a CommonJS launcher that
 * answers plain `token` forms itself and hands everything else to BIN.
 */
export const COMMAND = fileURLToPath(
  new URL(
    (JSON.parse(fs.readFileSync(new URL('../../packages/cli/package.json', import.meta.url), 'utf8')) as { bin: { credproxy: string } }).bin.credproxy,
    new URL('../../packages/cli/', import.meta.url),
  ),
);

export interface Layout {
  dir: string;
  socket: string;
  env: NodeJS.ProcessEnv;
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

const children = new Set<ChildProcess>();
const pids = new Set<number>();
const dirs: string[] = [];

/** A fresh dir with short paths (the socket must fit in sun_path). */
export function makeLayout(): Layout {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cpe-'));
  dirs.push(dir);
  const socket = path.join(dir, 'run', 'proxy.sock');
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    CREDPROXY_SOCKET: socket,
    CREDPROXY_DATA_DIR: path.join(dir, 'data'),
    CREDPROXY_CONFIG: path.join(dir, 'config.json'),
  };
  delete env.CREDPROXY_DEBUG;
  return { dir, socket, env };
}

/** Run one CLI command to completion. */
export function run(layout: Layout, args: string[], options: { input?: string; timeoutMs?: number; bin?: string } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [options.bin ?? BIN, ...args], { env: layout.env, stdio: ['pipe', 'pipe', 'pipe'] });
    children.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`credproxy ${args.join(' ')} did not finish; stderr: ${stderr}`));
    }, options.timeoutMs ?? 15_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      children.delete(child);
      resolve({ code, signal, stdout, stderr });
    });
    child.stdin.end(options.input ?? '');
  });
}

/** Whether the proxy answers ping on the layout's socket; its pid if so. */
export async function pingPid(socket: string): Promise<number | undefined> {
  let client: ProxyClient | undefined;
  try {
    client = await ProxyClient.connect({ socketPath: socket, timeoutMs: 1_000 });
    return (await client.call('ping', {})).pid;
  } catch {
    return undefined;
  } finally {
    client?.close();
  }
}

export async function waitFor(check: () => Promise<boolean> | boolean, timeoutMs = 10_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what} not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

export interface ServeProcess {
  child: ChildProcess;
  stderr(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** `credproxy serve` in the foreground, resolved once its socket answers. */
export async function startServe(layout: Layout): Promise<ServeProcess> {
  const child = spawn(process.execPath, [BIN, 'serve'], { env: layout.env, stdio: ['ignore', 'ignore', 'pipe'] });
  children.add(child);
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => {
      children.delete(child);
      resolve({ code, signal });
    }),
  );
  await waitFor(async () => {
    if (child.exitCode !== null) throw new Error(`serve exited early (${child.exitCode}): ${stderr}`);
    return (await pingPid(layout.socket)) === child.pid;
  }, 10_000, 'serve answering ping');
  return { child, stderr: () => stderr, exited };
}

/** A pid started behind our back (serve --detach), to kill in cleanup if a test fails. */
export function trackPid(pid: number): void {
  pids.add(pid);
}

/** Alive and not a zombie (a detached proxy is reaped by init, which may be slow or never). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return !/\) [ZX] /.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true;
  }
}

export async function cleanup(): Promise<void> {
  for (const child of children) child.kill('SIGKILL');
  children.clear();
  for (const pid of pids) if (isAlive(pid)) process.kill(pid, 'SIGKILL');
  pids.clear();
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
}

/** A direct owner connection, for setting up state the CLI cannot (save_token). */
export async function withClient<T>(socket: string, fn: (client: ProxyClient) => Promise<T>): Promise<T> {
  const client = await ProxyClient.connect({ socketPath: socket });
  try {
    return await fn(client);
  } finally {
    client.close();
  }
}

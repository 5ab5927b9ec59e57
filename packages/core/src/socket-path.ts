/**
 * The owner socket's default path (SPEC §1), with nothing but node:os and node:path, so the
 * CLI's client commands can compute it without loading env-paths.
 */
import os from 'node:os';
import path from 'node:path';

export interface SocketPathInputs {
  env?: NodeJS.ProcessEnv;
  uid?: number;
  tmpdir?: string;
}

export function defaultSocketPath(inputs: SocketPathInputs = {}): string {
  const env = inputs.env ?? process.env;
  if (env.CREDPROXY_SOCKET) return path.resolve(env.CREDPROXY_SOCKET);
  if (env.XDG_RUNTIME_DIR) return path.join(env.XDG_RUNTIME_DIR, 'credproxy', 'proxy.sock');
  const uid = inputs.uid ?? (typeof process.getuid === 'function' ? process.getuid() : 0);
  return path.join(inputs.tmpdir ?? os.tmpdir(), `credproxy-${uid}`, 'proxy.sock');
}

/**
 * Temporary directories for tests: short paths under os.tmpdir() (a socket path must fit in
 * sun_path), removed by removeTempDirs() — and proxies whose files all live in one, stopped by
 * cleanupTestEnv().
 */
import { promises as fs } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { resolvePaths, startProxy, type ProxyOptions, type RunningProxy } from '../../packages/core/src/index.js';

const made: string[] = [];

/** A fresh 0700 directory such as /tmp/cp-Ab12Cd. */
export async function tempDir(prefix = 'cp-'): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), prefix));
  made.push(dir);
  return dir;
}

/** Remove every directory made by tempDir() so far. */
export async function removeTempDirs(): Promise<void> {
  const dirs = made.splice(0);
  await Promise.all(dirs.map((d) => fs.rm(d, { recursive: true, force: true })));
}

/** Where a test proxy keeps its files, all inside `dir`. */
export interface ProxyLayout {
  dir: string;
  dataDir: string;
  configFile: string;
  /** Inside `run/`, which the proxy creates itself (0700). */
  socketPath: string;
  env: { CREDPROXY_DATA_DIR: string; CREDPROXY_CONFIG: string };
}

export function proxyLayout(dir: string): ProxyLayout {
  const dataDir = path.join(dir, 'data');
  const configFile = path.join(dir, 'config.json');
  return {
    dir,
    dataDir,
    configFile,
    socketPath: path.join(dir, 'run', 'proxy.sock'),
    env: { CREDPROXY_DATA_DIR: dataDir, CREDPROXY_CONFIG: configFile },
  };
}

/** Poll `check` until it returns true or `timeoutMs` passes. */
export async function waitUntil(check: () => boolean | Promise<boolean>, timeoutMs = 3000, stepMs = 20): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

// ---- proxies in temp dirs ----------------------------------------------------------------------


const proxies: RunningProxy[] = [];

/** Start a proxy whose files all live in a fresh temp dir; stopTestProxies() stops it. */
export async function startTestProxy(
  options: Omit<ProxyOptions, 'paths'> = {},
  dir?: string,
): Promise<{ proxy: RunningProxy; layout: ProxyLayout }> {
  const layout = proxyLayout(dir ?? (await tempDir()));
  const proxy = await startProxy({ paths: resolvePaths({ env: layout.env, socketPath: layout.socketPath }), ...options });
  proxies.push(proxy);
  return { proxy, layout };
}

/** Stop every proxy started by startTestProxy(), then remove the temp dirs. */
export async function cleanupTestEnv(): Promise<void> {
  await Promise.all(proxies.splice(0).map((p) => p.stop()));
  await removeTempDirs();
}

/** Whether something accepts TCP connections on 127.0.0.1:PORT. */
export function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

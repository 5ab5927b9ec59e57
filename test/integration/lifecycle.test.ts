/**
 * Starting and stopping (SPEC §1): socket directory and file modes, path limits, one proxy per
 * socket, stale sockets, recovery after kill -9, shutdown.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { AlreadyRunningError, ProxyClient, resolvePaths, startProxy } from '../../packages/core/src/index.js';
import { RawClient } from '../support/raw-client.js';
import { cleanupTestEnv, proxyLayout, startTestProxy, tempDir, waitUntil } from '../support/temp.js';

const CORE_DIST = fileURLToPath(new URL('../../packages/core/dist/index.js', import.meta.url));
const children: ChildProcess[] = [];

afterEach(async () => {
  for (const child of children.splice(0)) {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
    }
  }
  await cleanupTestEnv();
});

const exists = (p: string): Promise<boolean> => fs.lstat(p).then(() => true, () => false);
const mode = async (p: string): Promise<number> => (await fs.stat(p)).mode & 0o777;

/** Run `script` in a child node process; resolves once it prints its first line. */
async function child(script: string, args: string[], esm = false): Promise<{ proc: ChildProcess; firstLine: string }> {
  const proc = spawn(process.execPath, [...(esm ? ['--input-type=module'] : []), '-e', script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(proc);
  let err = '';
  proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const firstLine = await new Promise<string>((resolve, reject) => {
    let out = '';
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('\n')) resolve(out.split('\n')[0]!);
    });
    proc.once('exit', (code) => reject(new Error(`child exited (${code}) before it was ready: ${err}`)));
  });
  return { proc, firstLine };
}

async function kill9(proc: ChildProcess): Promise<void> {
  proc.kill('SIGKILL');
  if (proc.exitCode === null && proc.signalCode === null) await new Promise((r) => proc.once('exit', r));
}

describe('socket directory and files', () => {
  it('creates the socket directory 0700, the socket 0600 and a pid file', async () => {
    const { proxy, layout } = await startTestProxy();
    expect(await mode(path.dirname(layout.socketPath))).toBe(0o700);
    const st = await fs.stat(layout.socketPath);
    expect(st.isSocket()).toBe(true);
    expect(st.mode & 0o777).toBe(0o600);
    expect(await fs.readFile(`${layout.socketPath}.pid`, 'utf8')).toBe(`${proxy.pid}\n`);
  });

  it('refuses a socket directory that group or others can write to, with a clear message', async () => {
    const layout = proxyLayout(await tempDir());
    const runDir = path.dirname(layout.socketPath);
    await fs.mkdir(runDir);
    await fs.chmod(runDir, 0o770);
    const err = await startProxy({ paths: resolvePaths({ env: layout.env, socketPath: layout.socketPath }) }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toContain(runDir);
    expect((err as Error).message).toMatch(/group or others.*chmod 700/);
    expect(await exists(layout.socketPath)).toBe(false);
    expect(await mode(runDir)).toBe(0o770);
  });

  it('refuses a socket path over 107 bytes with a clear message, creating nothing', async () => {
    const dir = await tempDir();
    const socketPath = path.join(dir, 'r'.repeat(120 - dir.length), 'proxy.sock');
    const err = await startProxy({ paths: resolvePaths({ env: proxyLayout(dir).env, socketPath }) }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/socket path is \d+ bytes, longer than .*107.*--socket/);
    expect(await exists(path.dirname(socketPath))).toBe(false);
  });

  it('refuses to replace something at the socket path that is not a socket', async () => {
    const layout = proxyLayout(await tempDir());
    await fs.mkdir(path.dirname(layout.socketPath), { mode: 0o700 });
    await fs.writeFile(layout.socketPath, 'precious');
    await expect(startProxy({ paths: resolvePaths({ env: layout.env, socketPath: layout.socketPath }) })).rejects.toThrow(/not a socket/);
    expect(await fs.readFile(layout.socketPath, 'utf8')).toBe('precious');
  });
});

describe('one proxy per socket', () => {
  it('a second start on the same socket fails with AlreadyRunningError naming the first pid; the first keeps serving', async () => {
    const { proxy, layout } = await startTestProxy();
    const err = await startProxy({ paths: resolvePaths({ env: layout.env, socketPath: layout.socketPath }) }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AlreadyRunningError);
    expect((err as AlreadyRunningError).pid).toBe(proxy.pid);
    expect((err as Error).message).toContain(`already running (pid ${proxy.pid})`);
    const c = await RawClient.open(layout.socketPath);
    expect((await c.request('ping')).value).toMatchObject({ ok: true, data: { pid: proxy.pid } });
    c.close();
    expect(await fs.readFile(`${layout.socketPath}.pid`, 'utf8')).toBe(`${proxy.pid}\n`);
  });

  it('replaces a stale socket file nobody answers on', async () => {
    const layout = proxyLayout(await tempDir());
    await fs.mkdir(path.dirname(layout.socketPath), { mode: 0o700 });
    const { proc } = await child(
      `require('net').createServer().listen(process.argv[1], () => console.log('bound'))`,
      [layout.socketPath],
    );
    await kill9(proc);
    expect((await fs.lstat(layout.socketPath)).isSocket()).toBe(true);
    const { proxy } = await startTestProxy({}, layout.dir);
    const c = await RawClient.open(layout.socketPath);
    expect((await c.request('ping')).value.data.pid).toBe(proxy.pid);
    c.close();
  });
});

describe('crash and restart', () => {
  it('after kill -9 of a proxy, a restart on the same socket succeeds promptly and the data survived', async () => {
    const layout = proxyLayout(await tempDir());
    const script = `
      const { startProxy, resolvePaths } = await import(process.argv[1]);
      const [,, socketPath, dataDir, configFile] = process.argv;
      const proxy = await startProxy({ paths: resolvePaths({ env: { CREDPROXY_DATA_DIR: dataDir, CREDPROXY_CONFIG: configFile }, socketPath }) });
      console.log('ready ' + proxy.pid);`;
    const { proc, firstLine } = await child(script, [CORE_DIST, layout.socketPath, layout.dataDir, layout.configFile], true);
    expect(firstLine).toBe(`ready ${proc.pid}`);

    const expiry = Math.floor(Date.now() / 1000) + 3600;
    const pc = await ProxyClient.connect({ socketPath: layout.socketPath });
    await pc.call('set_api_key', { name: 'survivor', key: 'KEY-SURVIVES' });
    await pc.call('save_token', { provider: 'gh', token: { access_token: 'AT-SURVIVES', refresh_token: 'RT', expiry } });
    pc.close();

    // While it lives, another start is refused with its pid (across processes).
    const refused = await startProxy({ paths: resolvePaths({ env: layout.env, socketPath: layout.socketPath }) }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(AlreadyRunningError);
    expect((refused as AlreadyRunningError).pid).toBe(proc.pid);

    await kill9(proc);
    // kill -9 leaves the socket, the pid file and the lock behind.
    expect(await exists(layout.socketPath)).toBe(true);
    expect(await exists(`${layout.socketPath}.pid`)).toBe(true);

    const started = Date.now();
    const { proxy } = await startTestProxy({}, layout.dir);
    expect(Date.now() - started).toBeLessThan(3000);
    expect(await fs.readFile(`${layout.socketPath}.pid`, 'utf8')).toBe(`${process.pid}\n`);

    const after = await ProxyClient.connect({ socketPath: layout.socketPath });
    try {
      expect((await after.call('ping', {})).pid).toBe(proxy.pid);
      expect(await after.call('get_api_key', { name: 'survivor' })).toEqual({ key: 'KEY-SURVIVES' });
      expect(await after.call('get_token', { provider: 'gh' })).toMatchObject({ access_token: 'AT-SURVIVES', expiry });
    } finally {
      after.close();
    }
  });
});

describe('shutdown', () => {
  it('the shutdown op answers, then removes the socket and the pid file', async () => {
    const { proxy, layout } = await startTestProxy();
    const c = await RawClient.open(layout.socketPath);
    expect((await c.request('shutdown')).value).toMatchObject({ v: 2, ok: true, data: { stopping: true } });
    await proxy.stopped;
    expect(await c.closesWithin(2000)).toBe(true);
    expect(await exists(layout.socketPath)).toBe(false);
    expect(await exists(`${layout.socketPath}.pid`)).toBe(false);
    await expect(RawClient.connect(layout.socketPath)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('stop() frees the socket for the next proxy at once', async () => {
    const { proxy, layout } = await startTestProxy();
    await proxy.stop();
    await waitUntil(async () => !(await exists(layout.socketPath)));
    const { proxy: next } = await startTestProxy({}, layout.dir);
    const c = await RawClient.open(layout.socketPath);
    expect((await c.request('ping')).value.data.pid).toBe(next.pid);
    c.close();
  });
});

/**
 * Issue 9, items 10-13b, through the built CLI: what a user sees when the files around the proxy
 * are wrong, and `credproxy stop` for a proxy in another pid namespace.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { BIN, cleanup, makeLayout, pingPid, run, waitFor } from './cli-harness.js';

afterEach(cleanup);

const CLIENT_SECRET = 'cs-TOPSECRET-7f3a9c2e';

/** Every byte a run printed, for scanning. */
function printed(r: { stdout: string; stderr: string }): string {
  return r.stdout + r.stderr;
}

describe('a broken config file never echoes its content (item 11)', () => {
  // The parse error is right at the secret, where JSON.parse's excerpt would quote it.
  const broken = `{\n  "providers": {\n    "gh": {\n      "client_id": "c",\n      "issuer": "https://id.example.com",\n      "client_secret": ${CLIENT_SECRET}\n    }\n  }\n}\n`;

  it('`provider list` names the file, line and column, and no byte of the secret', async () => {
    const layout = makeLayout();
    fs.writeFileSync(layout.env.CREDPROXY_CONFIG!, broken);
    const r = await run(layout, ['provider', 'list']);
    for (const part of [CLIENT_SECRET, 'TOPSECRET', 'cs-TOP', '7f3a9c2e']) expect(printed(r)).not.toContain(part);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(layout.env.CREDPROXY_CONFIG!);
    expect(r.stderr).toContain('line 6, column 24');
  });

  it('`serve` refuses to start with the same message, and no byte of the secret', async () => {
    const layout = makeLayout();
    fs.writeFileSync(layout.env.CREDPROXY_CONFIG!, broken);
    const r = await run(layout, ['serve']);
    for (const part of [CLIENT_SECRET, 'TOPSECRET', 'cs-TOP', '7f3a9c2e']) expect(printed(r)).not.toContain(part);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('line 6, column 24');
  });
});

describe('reserved provider names (item 12)', () => {
  it.each(['__proto__', 'constructor', 'prototype'])('`provider add %s` is refused (exit 2) and the config is unchanged', async (name) => {
    const layout = makeLayout();
    // --no-check: no test reaches the internet (id.example.com is never looked up).
    const add = ['--issuer', 'https://id.example.com', '--client-id', 'c', '--no-check'];
    expect((await run(layout, ['provider', 'add', 'gh', ...add])).code).toBe(0);
    const before = fs.readFileSync(layout.env.CREDPROXY_CONFIG!, 'utf8');
    const r = await run(layout, ['provider', 'add', name, ...add]);
    expect(r.code).toBe(2);
    expect(r.stdout).not.toContain('added');
    expect(r.stderr).toContain('reserved name');
    expect(fs.readFileSync(layout.env.CREDPROXY_CONFIG!, 'utf8')).toBe(before);
  });
});

describe('the data dir (item 10)', () => {
  it('`serve` on a data dir with mode 0777 is refused, naming chmod 700', async () => {
    const layout = makeLayout();
    const dataDir = layout.env.CREDPROXY_DATA_DIR!;
    fs.mkdirSync(dataDir);
    fs.chmodSync(dataDir, 0o777);
    const r = await run(layout, ['serve']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`chmod 700 ${dataDir}`);
    expect(await pingPid(layout.socket)).toBeUndefined();
  });
});

function canUnsharePid(): boolean {
  try {
    execFileSync('unshare', ['--pid', '--fork', '--mount-proc', 'true'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

describe('`credproxy stop` for a proxy in another pid namespace (item 13b)', () => {
  it.runIf(process.platform === 'linux' && canUnsharePid())('stops it without waiting on, or advising to kill, the pid it reports', async () => {
    const layout = makeLayout();
    // The proxy is pid 1 of its namespace; here pid 1 is another process that never exits.
    const child: ChildProcess = spawn('unshare', ['--pid', '--fork', '--mount-proc', '--kill-child', process.execPath, BIN, 'serve'], {
      env: layout.env,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      await waitFor(async () => (await pingPid(layout.socket)) !== undefined, 10_000, `serve in a pid namespace answering (${stderr})`);
      expect(await pingPid(layout.socket)).toBe(1);
      const started = Date.now();
      const stop = await run(layout, ['stop']);
      expect(printed(stop)).not.toMatch(/kill 1\b/);
      expect(stop).toMatchObject({ code: 0, stdout: 'credproxy stopped\n' });
      // Not the 10 s timeout spent waiting for this namespace's pid 1 to exit.
      expect(Date.now() - started).toBeLessThan(5_000);
      expect(await exited).toBe(0);
      expect(fs.existsSync(layout.socket)).toBe(false);
    } finally {
      child.kill('SIGKILL');
    }
  });
});

describe('socket ownership from /proc (item 13b)', () => {
  it.runIf(process.platform === 'linux' && canUnsharePid())('the pid a namespaced proxy reports does not own its socket here', async () => {
    const { socketOwnedBy, isProxyProcessHere } = await import('../../packages/cli/src/socket-owner.js');
    const layout = makeLayout();
    const child = spawn('unshare', ['--pid', '--fork', '--mount-proc', '--kill-child', process.execPath, BIN, 'serve'], { env: layout.env, stdio: 'ignore' });
    const unsharePid = child.pid!;
    try {
      await waitFor(async () => (await pingPid(layout.socket)) !== undefined, 10_000, 'serve in a pid namespace answering');
      expect(await socketOwnedBy(layout.socket, 1)).toBe('no');
      expect(await isProxyProcessHere(layout.socket, 1)).toBe(false);
      // The proxy's pid as seen here: unshare's child.
      const proxyHere = Number(fs.readFileSync(`/proc/${unsharePid}/task/${unsharePid}/children`, 'utf8').trim().split(/\s+/)[0]);
      expect(await socketOwnedBy(layout.socket, proxyHere)).toBe('yes');
      expect(await socketOwnedBy(layout.socket, process.pid)).toBe('no');
      expect(await socketOwnedBy(path.join(layout.dir, 'nothing.sock'), proxyHere)).toBe('no');
    } finally {
      child.kill('SIGKILL');
    }
  });
});

/**
 * `credproxy doctor` through the built CLI, against real parts: the testkit's authorization server
 * (discovery, its Date header), a plain HTTP server whose clock is five minutes off, a port nobody
 * listens on, a stale socket left by a killed process, a real Secret Service (gnome-keyring under
 * dbus-run-session) and a running proxy. The config holds a client secret: every byte printed is
 * scanned for it.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { startTestAuthServer, type TestAuthServer } from '@credproxy/testkit';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { BIN, cleanup, makeLayout, run, startServe, type Layout, type RunResult } from './cli-harness.js';

const CLIENT_SECRET = 'doctor-client-secret-9f8e7d6c5b4a';
let as: TestAuthServer;
let skewed: http.Server;
let skewedUrl: string;
const printed: string[] = [];

interface Report {
  checks: Array<{ name: string; status: 'ok' | 'warn' | 'fail'; detail: string; fix?: string }>;
}

async function doctor(layout: Layout, args: string[] = []): Promise<RunResult> {
  const r = await run(layout, ['doctor', '--timeout', '3', ...args], { timeoutMs: 30_000 });
  printed.push(r.stdout, r.stderr);
  return r;
}

async function doctorJson(layout: Layout): Promise<{ r: RunResult; report: Report; by: (name: string) => Report['checks'][number] }> {
  const r = await doctor(layout, ['--json']);
  const report = JSON.parse(r.stdout) as Report;
  return {
    r,
    report,
    by: (name) => {
      const c = report.checks.find((x) => x.name === name);
      if (!c) throw new Error(`no check ${name} in ${r.stdout}`);
      return c;
    },
  };
}

function writeConfig(layout: Layout, config: unknown): void {
  fs.writeFileSync(layout.env.CREDPROXY_CONFIG!, JSON.stringify(config, null, 2), { mode: 0o600 });
}

/** No keyring in these runs unless a test brings one: the outcome must not depend on the host's session. */
function noSession(layout: Layout): void {
  delete layout.env.DBUS_SESSION_BUS_ADDRESS;
}

beforeAll(async () => {
  as = await startTestAuthServer();
  // An authorization server whose clock is five minutes behind ours.
  skewed = http.createServer((req, res) => {
    const base = `http://127.0.0.1:${(skewed.address() as net.AddressInfo).port}`;
    res.setHeader('Date', new Date(Date.now() - 5 * 60_000).toUTCString());
    if (req.url === '/.well-known/openid-configuration') {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ issuer: base, authorization_endpoint: `${base}/auth`, token_endpoint: `${base}/token` }));
    } else {
      res.statusCode = 404;
      res.end();
    }
  });
  await new Promise<void>((resolve) => skewed.listen(0, '127.0.0.1', resolve));
  skewedUrl = `http://127.0.0.1:${(skewed.address() as net.AddressInfo).port}`;
});

afterEach(cleanup);

afterAll(async () => {
  await as?.close();
  skewed?.close();
  const all = printed.join('\n');
  expect(all.length).toBeGreaterThan(0);
  expect(all).not.toContain(CLIENT_SECRET);
});

describe('credproxy doctor', () => {
  it('works without a running proxy: every check listed, the proxy a warning with the fix, exit 0', async () => {
    const layout = makeLayout();
    noSession(layout);
    const r = await doctor(layout);
    expect(r.code).toBe(0);
    const lines = r.stdout.split('\n');
    for (const name of ['socket-dir', 'proxy', 'open-files', 'peer-credentials', 'keyring', 'key-source', 'data-dir', 'config', 'clock']) {
      expect(lines.some((l) => new RegExp(`^(ok|warn|FAIL) +${name} `).test(l)), `${name} in:\n${r.stdout}`).toBe(true);
    }
    expect(r.stdout).toMatch(/^warn +proxy +not running \(no socket at /m);
    expect(r.stdout).toMatch(/^ {6}fix: start it: `credproxy serve --detach`/m);
    // This machine's kernel and koffi give SO_PEERCRED; the check must see it work.
    if (process.platform === 'linux') expect(r.stdout).toMatch(/^ok +peer-credentials +SO_PEERCRED works/m);

    const { report, by } = await doctorJson(layout);
    expect(report.checks.every((c) => ['ok', 'warn', 'fail'].includes(c.status) && typeof c.detail === 'string')).toBe(true);
    expect(by('proxy').status).toBe('warn');
    expect(by('proxy').fix).toContain('credproxy service install');
  });

  it('fails on a socket dir and a data dir others can read, and a config that does not parse — with line and column, the fixes, exit 1, no secret', async () => {
    const layout = makeLayout();
    noSession(layout);
    const runDir = path.dirname(layout.socket);
    fs.mkdirSync(runDir, { mode: 0o755 });
    fs.chmodSync(runDir, 0o755);
    fs.mkdirSync(layout.env.CREDPROXY_DATA_DIR!, { mode: 0o750 });
    fs.chmodSync(layout.env.CREDPROXY_DATA_DIR!, 0o750);
    // A missing comma on line 4, right after the secret.
    fs.writeFileSync(layout.env.CREDPROXY_CONFIG!, `{\n  "providers": {\n    "demo": {\n      "client_secret": "${CLIENT_SECRET}"\n      "client_id": "x"\n    }\n  }\n}\n`, { mode: 0o600 });

    const r = await doctor(layout);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(new RegExp(`^FAIL +socket-dir +${runDir} is mode 0755`, 'm'));
    expect(r.stdout).toContain(`fix: \`chmod 700 ${runDir}\``);
    expect(r.stdout).toMatch(/^FAIL +data-dir +.* is mode 0750: it holds tokens and keys/m);
    expect(r.stdout).toMatch(/^FAIL +config +.*line 5, column 7/m);
    expect(r.stdout).toMatch(/[1-9] problem\(s\)/);

    const { r: rj, by } = await doctorJson(layout);
    expect(rj.code).toBe(1);
    expect(by('config').status).toBe('fail');
    expect(by('config').detail).toContain('line 5');
    expect(by('config').fix).toContain(layout.env.CREDPROXY_CONFIG!);
  });

  it('tells a stale socket (a killed proxy left it) from no proxy, and a config readable by others from a private one', async () => {
    const layout = makeLayout();
    noSession(layout);
    fs.mkdirSync(path.dirname(layout.socket), { mode: 0o700 });
    // A process binds the socket and is killed: the file stays, nobody answers.
    const child = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(layout.socket)}, () => console.log('up'))`], { stdio: ['ignore', 'pipe', 'ignore'] });
    await new Promise<void>((resolve) => child.stdout!.once('data', () => resolve()));
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));
    expect(fs.lstatSync(layout.socket).isSocket()).toBe(true);
    writeConfig(layout, { providers: {} });
    fs.chmodSync(layout.env.CREDPROXY_CONFIG!, 0o644);

    const { r, by } = await doctorJson(layout);
    expect(r.code).toBe(0);
    expect(by('proxy')).toMatchObject({ status: 'warn' });
    expect(by('proxy').detail).toContain(`stale socket: ${layout.socket} is there but nobody answers`);
    expect(by('proxy').fix).toContain(`rm ${layout.socket}`);
    expect(by('config')).toMatchObject({ status: 'warn', fix: `\`chmod 600 ${layout.env.CREDPROXY_CONFIG!}\`` });
    expect(by('socket-dir').status).toBe('ok');
  });

  it('checks each provider in parallel: discovery answers, an unreachable one fails with the fix, a skewed clock warns; the running proxy answers', async () => {
    const layout = makeLayout();
    noSession(layout);
    // A port that was free a moment ago: nothing answers there.
    const closed = net.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const deadPort = (closed.address() as net.AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    writeConfig(layout, {
      providers: {
        good: { issuer: as.issuer, client_id: as.clients.confidential.clientId, client_secret: CLIENT_SECRET, scopes: ['openid'] },
        gone: { issuer: `http://127.0.0.1:${deadPort}`, client_id: 'x', client_secret: CLIENT_SECRET },
      },
    });
    const serve = await startServe(layout);

    const { r, by } = await doctorJson(layout);
    expect(r.code).toBe(1);
    expect(by('proxy')).toMatchObject({ status: 'ok' });
    expect(by('proxy').detail).toContain(`(pid ${serve.child.pid})`);
    // The limit read is the running proxy's own.
    expect(by('open-files').detail).toContain(`the running proxy (pid ${serve.child.pid})`);
    expect(by('provider good')).toMatchObject({ status: 'ok' });
    expect(by('provider good').detail).toContain(`${as.issuer}/.well-known/openid-configuration`);
    expect(by('provider gone').status).toBe('fail');
    expect(by('provider gone').detail).toContain(`cannot reach 127.0.0.1:${deadPort} (ECONNREFUSED)`);
    expect(by('provider gone').fix).toContain('issuer');
    expect(by('clock').status).toBe('ok');
    expect(by('clock').detail).toContain('127.0.0.1');

    writeConfig(layout, { providers: { late: { issuer: skewedUrl, client_id: 'x' } } });
    const skew = await doctorJson(layout);
    expect(skew.r.code).toBe(0);
    expect(skew.by('provider late').status).toBe('ok');
    expect(skew.by('clock').status).toBe('warn');
    expect(skew.by('clock').detail).toMatch(/this clock is 5m \d+s ahead of 127\.0\.0\.1/);
    expect(skew.by('clock').fix).toContain('timedatectl set-ntp true');
  });

  it('says where the data key lives: a key file readable by others fails, the auto-created one warns (SPEC §8)', async () => {
    const layout = makeLayout();
    noSession(layout);
    const keyFile = path.join(layout.dir, 'store.key-outside');
    fs.writeFileSync(keyFile, Buffer.alloc(32, 1), { mode: 0o644 });
    fs.chmodSync(keyFile, 0o644);
    layout.env.CREDPROXY_KEY_FILE = keyFile;
    const loose = await doctorJson(layout);
    expect(loose.by('key-source')).toMatchObject({ status: 'fail', fix: `\`chmod 600 ${keyFile}\`` });
    fs.chmodSync(keyFile, 0o600);
    const tight = await doctorJson(layout);
    expect(tight.by('key-source').status).toBe('ok');
    // The key file comes first (SPEC §8): the keyring is not asked, and not a warning.
    expect(tight.by('keyring')).toMatchObject({ status: 'ok', detail: 'not needed: CREDPROXY_KEY_FILE wraps the data key' });

    delete layout.env.CREDPROXY_KEY_FILE;
    fs.writeFileSync(path.join(path.dirname(layout.env.CREDPROXY_CONFIG!), 'store.key'), Buffer.alloc(32, 2), { mode: 0o600 });
    const auto = await doctorJson(layout);
    expect(auto.by('key-source').status).toBe('warn');
    expect(auto.by('key-source').fix).toContain('CREDPROXY_KEY_FILE');
  });

  const hasKeyring = spawnSync('sh', ['-c', 'command -v dbus-run-session && command -v gnome-keyring-daemon']).status === 0;
  it.runIf(hasKeyring)('sees a real Secret Service (gnome-keyring on a private D-Bus session) and warns, quickly, where none answers', async () => {
    const layout = makeLayout();
    noSession(layout);
    const without = await doctorJson(layout);
    expect(without.by('keyring').status).toBe('warn');
    expect(without.by('keyring').detail).toContain('the Secret Service does not answer');

    const script = `echo -n doctor-test | gnome-keyring-daemon --unlock --components=secrets >/dev/null 2>&1; exec "${process.execPath}" "${BIN}" doctor --json --timeout 3`;
    const r = spawnSync('dbus-run-session', ['--', 'sh', '-c', script], { env: layout.env, encoding: 'utf8', timeout: 30_000 });
    printed.push(r.stdout, r.stderr);
    const report = JSON.parse(r.stdout) as Report;
    expect(report.checks.find((c) => c.name === 'keyring')).toMatchObject({ status: 'ok' });
    expect(report.checks.find((c) => c.name === 'keyring')?.detail).toContain('the Secret Service answers');
  });

  it('prints nothing of the config but names, paths and hosts (a client secret in the file is never shown)', async () => {
    const layout = makeLayout();
    noSession(layout);
    writeConfig(layout, { providers: { good: { issuer: as.issuer, client_id: 'x', client_secret: CLIENT_SECRET } } });
    const human = await doctor(layout);
    const json = await doctor(layout, ['--json']);
    for (const out of [human.stdout, human.stderr, json.stdout, json.stderr]) expect(out).not.toContain(CLIENT_SECRET);
    expect(human.stdout).toMatch(/^ok +provider good +discovery answers/m);
  });
});

/**
 * Logins through the built CLI, as a user runs them, against a real authorization server:
 * `provider add`, `login` for each flow (the proxy is started on demand), `session start/status`
 * for CI, `token` checked at the server's userinfo endpoint, `logout` checked by introspection.
 * Everything the CLI printed, the proxy's log and the audit log are byte-scanned for secrets.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { createScriptedUser, startTestAuthServer, type TestAuthServer } from '@credproxy/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readStoredAccounts } from '../support/stored-records.js';
import { BIN, cleanup, makeLayout, run, trackPid, type Layout, type RunResult } from './cli-harness.js';

let as: TestAuthServer;
/** Refresh tokens the proxy held, gathered before logout deletes them. */
const secrets = new Set<string>(['imported-refresh-secret']);

async function gatherRefreshTokens(): Promise<void> {
  // The records are encrypted at rest: read them as the proxy does.
  for (const record of await readStoredAccounts(layout.env)) {
    if (record.token.refresh_token) secrets.add(record.token.refresh_token);
  }
}
let layout: Layout;
/** Every byte the CLI printed in this file. */
const printed: string[] = [];
const authUrls: string[] = [];

async function cli(args: string[], input?: string): Promise<RunResult> {
  const result = await run(layout, args, input === undefined ? {} : { input });
  printed.push(result.stdout, result.stderr);
  return result;
}

interface Interactive {
  child: ChildProcess;
  stderrUntil(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  done: Promise<RunResult>;
}

/** A CLI command we talk to while it runs (it prints a URL, we act as the user). */
function interactive(args: string[]): Interactive {
  const child = spawn(process.execPath, [BIN, ...args], { env: { ...layout.env, CI: '1' }, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  const waiters: Array<() => void> = [];
  child.stdout!.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  child.stderr!.setEncoding('utf8').on('data', (s: string) => {
    stderr += s;
    waiters.splice(0).forEach((w) => w());
  });
  const done = new Promise<RunResult>((resolve) =>
    child.on('close', (code, signal) => {
      printed.push(stdout, stderr);
      resolve({ code, signal, stdout, stderr });
    }),
  );
  return {
    child,
    done,
    async stderrUntil(pattern, timeoutMs = 10_000) {
      const end = Date.now() + timeoutMs;
      for (;;) {
        const m = stderr.match(pattern);
        if (m) return m;
        if (Date.now() > end || child.exitCode !== null) throw new Error(`no ${pattern} in stderr: ${stderr}`);
        await new Promise<void>((r) => {
          waiters.push(r);
          setTimeout(r, 200);
        });
      }
    },
  };
}

function urlIn(text: string): string {
  const m = text.match(/https?:\/\/\S+/g);
  const url = m?.find((u) => u.includes('/auth?'));
  if (!url) throw new Error(`no authorization URL in: ${text}`);
  authUrls.push(url);
  return url;
}

beforeAll(async () => {
  as = await startTestAuthServer({ deviceInterval: 0.05 });
  layout = makeLayout();
});

afterAll(async () => {
  await run(layout, ['stop']).catch(() => undefined);
  await cleanup();
  await as?.close();
});

describe('credproxy provider', () => {
  it('adds providers for each flow, lists them, refuses bad input with exit 2', async () => {
    const scopes = ['--scope', 'openid', '--scope', 'offline_access'];
    expect((await cli(['provider', 'add', 'demo', '--issuer', as.issuer, '--client-id', 'native', ...scopes])).code).toBe(0);
    expect((await cli(['provider', 'add', 'dev', '--issuer', as.issuer, '--client-id', 'native', '--flow', 'device_code', ...scopes])).code).toBe(0);
    expect(
      (await cli(['provider', 'add', 'paste', '--issuer', as.issuer, '--client-id', 'paste', '--flow', 'browser_redirect', '--redirect-uri', as.clients.paste.redirectUri, ...scopes])).code,
    ).toBe(0);
    const list = await cli(['provider', 'list', '--json']);
    expect(list.code).toBe(0);
    const data = JSON.parse(list.stdout);
    expect(data.providers.map((p: { name: string }) => p.name).sort()).toEqual(['demo', 'dev', 'paste']);
    expect(data.providers.find((p: { name: string }) => p.name === 'dev')).toMatchObject({ flow: 'device_code', issuer: as.issuer, scopes: ['openid', 'offline_access'] });
    expect(fs.statSync(layout.env.CREDPROXY_CONFIG!).mode & 0o777).toBe(0o600);

    const insecure = await cli(['provider', 'add', 'bad', '--issuer', 'http://id.example.com', '--client-id', 'x']);
    expect(insecure.code).toBe(2);
    expect(insecure.stderr).toMatch(/only loopback hosts may use http/);
    const none = await cli(['provider', 'add', 'bad', '--client-id', 'x']);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/--issuer/);
    expect((await cli(['provider', 'remove', 'nope'])).code).toBe(2);
  });
});

describe('credproxy login', () => {
  it('device flow: starts the proxy on demand, shows the user code, ends with the account', async () => {
    const login = interactive(['login', 'dev', '--no-browser']);
    const [, userCode] = await login.stderrUntil(/enter the code: (\S+)/);
    await createScriptedUser().approveDevice(as.issuer, userCode!);
    const result = await login.done;
    expect(result.stderr).toMatch(/credproxy was not running — started it \(pid (\d+)\)/);
    trackPid(Number(result.stderr.match(/started it \(pid (\d+)\)/)![1]));
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^Logged in to dev as test-user — token valid until /);
    const token = await cli(['token', 'dev']);
    expect(token.code).toBe(0);
    expect((await as.userinfo(token.stdout.trim())).status).toBe(200);
  });

  it('pkce_redirect: prints the URL; the loopback callback finishes the login', async () => {
    const login = interactive(['login', 'demo', '--no-browser', '--json']);
    await login.stderrUntil(/\/auth\?\S+/);
    const user = createScriptedUser();
    const url = urlIn((await login.stderrUntil(/https?:\/\/\S+\/auth\?\S+/))[0]);
    await user.followRedirect(await user.authorize(url));
    const result = await login.done;
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ status: 'complete', provider: 'demo', bucket: 'default', expiry: expect.any(Number) });
    const token = JSON.parse((await cli(['token', 'demo', '--json'])).stdout);
    expect(token.token_type).toBe('Bearer');
    expect(token).not.toHaveProperty('refresh_token');
    expect((await as.userinfo(token.access_token)).status).toBe(200);
  });

  it('browser_redirect: reads the pasted code#state from stdin', async () => {
    const login = interactive(['login', 'paste', '--bucket', 'work']);
    const url = urlIn((await login.stderrUntil(/https?:\/\/\S+\/auth\?\S+/))[0]);
    await login.stderrUntil(/Paste the whole code/);
    const user = createScriptedUser();
    const pasted = await user.readPastedCode(await user.authorize(url));
    login.child.stdin!.end(`${pasted}\n`);
    const result = await login.done;
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^Logged in to paste:work/);
    const token = await cli(['token', 'paste', '--bucket', 'work']);
    expect((await as.userinfo(token.stdout.trim())).status).toBe(200);
  });

  it('a denied login exits 4; an unknown provider names the fix', async () => {
    const login = interactive(['login', 'demo', '--bucket', 'no', '--no-browser']);
    const url = urlIn((await login.stderrUntil(/https?:\/\/\S+\/auth\?\S+/))[0]);
    const user = createScriptedUser();
    await user.followRedirect(await user.authorize(url, { deny: true }));
    const result = await login.done;
    expect(result.code).toBe(4);
    expect(result.stderr).toMatch(/denied/);
    const unknown = await cli(['login', 'nope', '--no-browser']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('credproxy provider add nope');
  });

  it('Ctrl-C cancels the session on the proxy and exits 130', async () => {
    const login = interactive(['login', 'dev', '--bucket', 'sigint', '--no-browser']);
    await login.stderrUntil(/enter the code/);
    login.child.kill('SIGINT');
    const result = await login.done;
    expect(result.code).toBe(130);
    expect(result.stderr).toMatch(/Login cancelled/);
    const status = await cli(['status', '--json']);
    expect(JSON.parse(status.stdout).accounts.map((a: { bucket: string }) => a.bucket)).not.toContain('sigint');
  });

  it('--with-token imports a token from stdin', async () => {
    const saved = await cli(['login', 'imported', '--with-token'], JSON.stringify({ access_token: 'imported-access-token', refresh_token: 'imported-refresh-secret', expiry: Math.floor(Date.now() / 1000) + 600 }));
    expect(saved.code).toBe(0);
    expect((await cli(['token', 'imported'])).stdout).toBe('imported-access-token\n');
  });
});

describe('credproxy session (CI)', () => {
  it('start returns at once; status exits 3 while pending, 0 when complete; --wait waits', async () => {
    const start = await cli(['session', 'start', 'dev', '--bucket', 'ci', '--json']);
    expect(start.code).toBe(0);
    const init = JSON.parse(start.stdout);
    expect(init).toMatchObject({ flow_type: 'device_code', session_id: expect.stringMatching(/^[0-9a-f]{32}$/), user_code: expect.any(String) });
    const pending = await cli(['session', 'status', init.session_id]);
    expect(pending.code).toBe(3);
    expect(pending.stdout).toBe('pending\n');
    const waiting = interactive(['session', 'status', init.session_id, '--wait', '--timeout', '20', '--json']);
    await waiting.stderrUntil(/waiting for login/);
    await createScriptedUser().approveDevice(as.issuer, init.user_code);
    const done = await waiting.done;
    expect(done.code).toBe(0);
    expect(JSON.parse(done.stdout)).toMatchObject({ status: 'complete', provider: 'dev', bucket: 'ci' });
    expect(done.stderr).toMatch(/waiting for login/);
    expect((await cli(['session', 'status', init.session_id])).code).toBe(0);
  });

  it('--wait --timeout gives up with exit 3; cancel ends it with exit 4 afterwards', async () => {
    const init = JSON.parse((await cli(['session', 'start', 'dev', '--bucket', 'ci2', '--json'])).stdout);
    const timedOut = await cli(['session', 'status', init.session_id, '--wait', '--timeout', '1']);
    expect(timedOut.code).toBe(3);
    expect((await cli(['session', 'cancel', init.session_id])).code).toBe(0);
    const after = await cli(['session', 'status', init.session_id, '--json']);
    expect(after.code).toBe(4);
    expect(JSON.parse(after.stdout).status).toBe('cancelled');
  });
});

describe('credproxy logout', () => {
  it('revokes at the provider and says so', async () => {
    await gatherRefreshTokens();
    const record = (await readStoredAccounts(layout.env)).find((r) => r.provider === 'demo' && r.bucket === 'default')!;
    expect(await as.isActive(record.token.refresh_token!)).toBe(true);
    const out = await cli(['logout', 'demo']);
    expect(out.code).toBe(0);
    expect(out.stdout).toMatch(/revoked at the provider/);
    expect(await as.isActive(record.token.refresh_token!)).toBe(false);
    expect((await cli(['token', 'demo'])).code).toBe(6);
    const kept = await cli(['logout', 'dev', '--no-revoke']);
    expect(kept.stdout).toMatch(/not revoked: revocation skipped/);
  });
});

describe('byte scan of everything the CLI printed and the proxy logged', () => {
  it('holds no refresh token, client secret or imported secret; state only inside the auth URL', async () => {
    const dataDir = layout.env.CREDPROXY_DATA_DIR!;
    await gatherRefreshTokens();
    expect(secrets.size).toBeGreaterThan(3);
    const logs = [path.join(dataDir, 'audit.log'), path.join(path.dirname(layout.socket), 'proxy.log')]
      .filter((f) => fs.existsSync(f))
      .map((f) => fs.readFileSync(f, 'utf8'));
    const everything = [...printed, ...logs].join('\n');
    for (const secret of secrets) expect(everything.includes(secret)).toBe(false);
    const states = authUrls.map((u) => new URL(u).searchParams.get('state')!);
    let rest = everything;
    for (const u of authUrls) rest = rest.split(u).join('');
    for (const state of states) expect(rest.includes(state)).toBe(false);
  });
});

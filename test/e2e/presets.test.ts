/**
 * Presets through the built CLI, as a user runs it (issue 12): `provider presets`, `provider add
 * --preset` (and what it says without a client id), `login` naming the account, `status` and
 * `status --json` with the account, `logout` revoking; and two `credproxy login` processes for
 * the same account on one fixed callback port, where Ctrl-C in one leaves the other to finish.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { startGitHubEmulation, startGitLabEmulation, type ProviderEmulation } from '@credproxy/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, cleanup, makeLayout, run, startServe, type Layout, type RunResult } from './cli-harness.js';

let layout: Layout;
let gitlab: ProviderEmulation;
let github: ProviderEmulation;
let callbackPort: number;
const printed: string[] = [];

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const n = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return n;
}

async function cli(args: string[]): Promise<RunResult> {
  const r = await run(layout, args);
  printed.push(r.stdout, r.stderr);
  return r;
}

interface Interactive {
  child: ChildProcess;
  stderrUntil(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  done: Promise<RunResult>;
}

function interactive(args: string[]): Interactive {
  const child = spawn(process.execPath, [BIN, ...args], { env: { ...layout.env, CI: '1' }, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
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
        await new Promise((r) => setTimeout(r, 50));
      }
    },
  };
}

beforeAll(async () => {
  callbackPort = await freePort();
  gitlab = await startGitLabEmulation({ redirectUri: `http://127.0.0.1:${callbackPort}/callback` });
  github = await startGitHubEmulation({ deviceInterval: 0.05 });
  layout = makeLayout();
  layout.env.GH_SECRET = github.clientSecret;
  layout.env.CREDPROXY_NO_KEYRING = '1';
  await startServe(layout);
});

afterAll(async () => {
  await cleanup();
  await gitlab?.close();
  await github?.close();
});

describe('credproxy provider presets / add --preset', () => {
  it('lists the presets with what each needs', async () => {
    const human = await cli(['provider', 'presets']);
    expect(human.code).toBe(0);
    for (const name of ['github', 'google', 'microsoft', 'gitlab']) expect(human.stdout).toMatch(new RegExp(`^${name} `, 'm'));
    const json = JSON.parse((await cli(['provider', 'presets', '--json'])).stdout) as { presets: Array<{ name: string; default_flow: string; client_secret: string }> };
    expect(json.presets.map((p) => [p.name, p.default_flow, p.client_secret])).toEqual([
      ['github', 'device_code', 'optional'],
      ['google', 'pkce_redirect', 'required'],
      ['microsoft', 'pkce_redirect', 'unused'],
      ['gitlab', 'pkce_redirect', 'unused'],
    ]);
  });

  it('without --client-id says how to register one and what to run next (exit 2)', async () => {
    const r = await cli(['provider', 'add', 'gh', '--preset', 'github']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('https://github.com/settings/applications/new');
    expect(r.stderr).toContain('Enable Device Flow');
    expect(r.stderr).toContain('credproxy provider add gh --preset github --client-id CLIENT_ID');
  });
});

describe('credproxy login through presets', () => {
  it('github: the device flow names the account; status shows it; logout revokes', async () => {
    expect((await cli(['provider', 'add', 'gh', '--preset', 'github', '--issuer', github.base, '--client-id', github.clientId, '--client-secret-env', 'GH_SECRET'])).code).toBe(0);
    const list = JSON.parse((await cli(['provider', 'list', '--json'])).stdout) as { providers: Array<Record<string, unknown>> };
    expect(list.providers.find((x) => x.name === 'gh')).toMatchObject({ preset: 'github', flow: 'device_code', token_endpoint: `${github.base}/login/oauth/access_token` });
    const login = interactive(['login', 'gh']);
    const code = (await login.stderrUntil(/enter the code: (\S+)/))[1]!;
    github.approveDevice(code);
    const done = await login.done;
    expect(done.code, done.stderr).toBe(0);
    expect(done.stdout).toMatch(new RegExp(`^Logged in to gh as ${github.user.login} — token valid until`));
    const status = await cli(['status']);
    expect(status.stdout).toMatch(new RegExp(`^gh +default +${github.user.login} +valid`, 'm'));
    const logout = await cli(['logout', 'gh']);
    expect(logout.code).toBe(0);
    expect(logout.stdout).toMatch(/revoked/);
    expect(github.violations).toEqual([]);
  });

  it('gitlab: two terminals log in to the same account on one fixed port; Ctrl-C in the first leaves the second to finish', async () => {
    expect((await cli(['provider', 'add', 'gl', '--preset', 'gitlab', '--issuer', gitlab.base, '--client-id', gitlab.clientId, '--callback-port', String(callbackPort)])).code).toBe(0);
    const first = interactive(['login', 'gl', '--no-browser']);
    const second = interactive(['login', 'gl', '--no-browser']);
    const url1 = (await first.stderrUntil(/(http:\/\/\S+\/oauth\/authorize\?\S+)/))[1]!;
    const url2 = (await second.stderrUntil(/(http:\/\/\S+\/oauth\/authorize\?\S+)/))[1]!;
    expect(new URL(url1).searchParams.get('state')).not.toBe(new URL(url2).searchParams.get('state'));
    for (const u of [url1, url2]) expect(new URL(u).searchParams.get('redirect_uri')).toBe(`http://127.0.0.1:${callbackPort}/callback`);

    first.child.kill('SIGINT');
    const cancelled = await first.done;
    expect(cancelled.code).toBe(130);
    expect(cancelled.stderr).toMatch(/Login cancelled/);

    // The second terminal's login is still pending and completes through the shared port.
    const page = await fetch(await gitlab.authorize(url2));
    expect(page.status).toBe(200);
    const done = await second.done;
    expect(done.code, done.stderr).toBe(0);
    expect(done.stdout).toMatch(new RegExp(`^Logged in to gl as ${gitlab.user.email.replace('.', '\\.')}`));

    const json = JSON.parse((await cli(['status', '--json'])).stdout) as { accounts: Array<{ provider: string; account?: string; state: string }> };
    expect(json.accounts.find((a) => a.provider === 'gl')).toMatchObject({ account: gitlab.user.email, state: 'valid' });
    expect((await cli(['token', 'gl'])).code).toBe(0);
    const logout = await cli(['logout', 'gl']);
    expect(logout.code).toBe(0);
    expect(logout.stdout).toMatch(/revoked/);
    expect(gitlab.violations).toEqual([]);
  }, 30_000);

  it('session start / session status (CI) through a preset carry the account', async () => {
    const start = await cli(['session', 'start', 'gh', '--bucket', 'ci', '--json']);
    expect(start.code, start.stderr).toBe(0);
    const init = JSON.parse(start.stdout) as { session_id: string; user_code: string; flow_type: string };
    expect(init.flow_type).toBe('device_code');
    github.approveDevice(init.user_code);
    const wait = await cli(['session', 'status', init.session_id, '--wait', '--timeout', '10', '--json']);
    expect(wait.code, wait.stderr).toBe(0);
    expect(JSON.parse(wait.stdout)).toMatchObject({ status: 'complete', provider: 'gh', bucket: 'ci', account: github.user.login });
    expect(github.violations).toEqual([]);
  });

  it('printed no secret: no refresh token, client secret or device code in any output', () => {
    const all = printed.join('\n');
    const secrets = [...github.secrets(), ...gitlab.secrets()];
    expect(secrets.length).toBeGreaterThan(3);
    for (const secret of secrets) expect(all.includes(secret), 'a secret was printed').toBe(false);
  });
});

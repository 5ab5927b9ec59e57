/**
 * The built CLI against a real proxy started with `credproxy serve`: what a user sees on stdout
 * and stderr, and the exit codes of SPEC §5.
 */
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CREDPROXY_VERSION, ProxyClient } from '@credproxy/core';
import { BIN, COMMAND, type Layout, type RunResult, type ServeProcess, cleanup, makeLayout, run, startServe, withClient } from './cli-harness.js';

const API_KEY = 'sk-e2e-4f1d2a9c7b3e5d6f8a0b1c2d3e4f5a6b';
const ACCESS_TOKEN = 'at-e2e-0123456789abcdef';
const REFRESH_TOKEN = 'rt-e2e-fedcba9876543210-never-shown';
const HEX64 = /^[0-9a-f]{64}$/;

describe('without a proxy', () => {
  let layout: Layout;
  beforeAll(() => {
    layout = makeLayout();
  });
  afterAll(cleanup);

  it.each([[['ping']], [['status']], [['token', 'github']], [['stop']], [['key', 'list']], [['client', 'list', '--json']], [['logout', 'github']]])(
    '%j exits 5 and says to run `credproxy serve`',
    async (args) => {
      const r = await run(layout, args);
      expect(r.code).toBe(5);
      expect(r.stdout).toBe('');
      expect(r.stderr).toContain('credproxy is not running');
      expect(r.stderr).toContain('`credproxy serve`');
      expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
    },
  );

  it('usage errors exit 2', async () => {
    expect((await run(layout, ['token'])).code).toBe(2);
    expect((await run(layout, ['no-such-command'])).code).toBe(2);
    const r = await run(layout, ['--version']);
    expect(r).toMatchObject({ code: 0, stdout: `${CREDPROXY_VERSION}\n` });
  });

  it('the installed `credproxy` command (a CommonJS launcher) answers exactly as the full CLI does', async () => {
    expect(fs.readFileSync(COMMAND, 'utf8').startsWith('#!/usr/bin/env node\n')).toBe(true);
    expect(fs.statSync(COMMAND).mode & 0o111).not.toBe(0);
    for (const args of [['token', 'github'], ['token', 'github', '--json'], ['token'], ['token', '--bogus', 'x'], ['--version'], ['ping'], ['status', '--json'], ['no-such-command']]) {
      const [viaBin, viaCommand] = await Promise.all([run(layout, args), run(layout, args, { bin: COMMAND })]);
      expect(viaCommand, args.join(' ')).toEqual(viaBin);
    }
  });
});

describe('with a running proxy', () => {
  let layout: Layout;
  let serve: ServeProcess;
  /** Every stdout/stderr of status, list and client commands, for the secret scan. */
  const outputs: string[] = [];
  const record = (r: RunResult): RunResult => {
    outputs.push(r.stdout, r.stderr);
    return r;
  };

  beforeAll(async () => {
    layout = makeLayout();
    serve = await startServe(layout);
    await withClient(layout.socket, (c) =>
      c.call('save_token', {
        provider: 'github',
        token: { access_token: ACCESS_TOKEN, refresh_token: REFRESH_TOKEN, expiry: Math.floor(Date.now() / 1000) + 3600, scope: 'repo' },
      }),
    );
  });
  afterAll(cleanup);

  it('ping prints version, pid and socket; --json prints exactly {version, pid, socket}', async () => {
    const text = await run(layout, ['ping']);
    expect(text.code).toBe(0);
    expect(text.stdout).toBe(`credproxy ${CREDPROXY_VERSION} (pid ${serve.child.pid}) on ${layout.socket}\n`);
    const json = await run(layout, ['ping', '--json']);
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual({ version: CREDPROXY_VERSION, pid: serve.child.pid, socket: layout.socket });
  });

  it('a second serve on the same socket exits 5 with "already running (pid N)"', async () => {
    const r = await run(layout, ['serve']);
    expect(r.code).toBe(5);
    expect(r.stderr).toContain(`already running (pid ${serve.child.pid})`);
    const detached = await run(layout, ['serve', '--detach']);
    expect(detached.code).toBe(5);
    expect(detached.stderr).toContain(`already running (pid ${serve.child.pid})`);
  });

  it.each([['bin.js', BIN], ['credproxy', COMMAND]])('token prints only the access token; --json prints get_token data (%s)', async (_name, bin) => {
    const r = await run(layout, ['token', 'github'], { bin });
    expect(r).toMatchObject({ code: 0, stdout: `${ACCESS_TOKEN}\n`, stderr: '' });
    const json = await run(layout, ['token', 'github', '--json', '--min-valid', '0'], { bin });
    expect(json.code).toBe(0);
    const direct = await withClient(layout.socket, (c) => c.call('get_token', { provider: 'github' }));
    expect(JSON.parse(json.stdout)).toEqual(direct);
    expect(JSON.parse(json.stdout)).toMatchObject({ access_token: ACCESS_TOKEN, token_type: 'Bearer', scope: 'repo' });
    expect(json.stdout).not.toContain(REFRESH_TOKEN);
  });

  it.each([['bin.js', BIN], ['credproxy', COMMAND]])('token through commander (non-fast form) behaves the same (%s)', async (_name, bin) => {
    const r = await run(layout, ['token', '--bucket', 'default', 'github', '--socket', layout.socket], { bin });
    expect(r).toMatchObject({ code: 0, stdout: `${ACCESS_TOKEN}\n` });
  });

  it.each([['bin.js', BIN], ['credproxy', COMMAND]])('token for an account that is not logged in exits 6 and names the fix (%s)', async (_name, bin) => {
    const r = await run(layout, ['token', 'gitlab'], { bin });
    expect(r.code).toBe(6);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe('credproxy: gitlab is not logged in — run `credproxy login gitlab`\n');
    const bucket = await run(layout, ['token', 'github', '--bucket', 'work'], { bin });
    expect(bucket.code).toBe(6);
    expect(bucket.stderr).toContain('`credproxy login github --bucket work`');
  });

  it('status shows the account without secrets; --json is the status data', async () => {
    const text = record(await run(layout, ['status']));
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^PROVIDER +BUCKET +STATE +EXPIRES\ngithub +default +valid +\d{4}-\d\d-\d\d \d\d:\d\d \(in (59|60)m\)\n$/);
    const json = record(await run(layout, ['status', '--json']));
    const direct = await withClient(layout.socket, (c) => c.call('status', {}));
    expect(JSON.parse(json.stdout)).toEqual(direct);
    expect(direct.accounts).toEqual([expect.objectContaining({ provider: 'github', bucket: 'default', state: 'valid' })]);
  });

  it('key set reads stdin; list shows names; remove deletes', async () => {
    const set = await run(layout, ['key', 'set', 'openai'], { input: `${API_KEY}\n` });
    expect(set).toMatchObject({ code: 0, stdout: 'saved API key openai\n' });
    expect(await withClient(layout.socket, (c) => c.call('get_api_key', { name: 'openai' }))).toEqual({ key: API_KEY });
    const list = record(await run(layout, ['key', 'list']));
    expect(list).toMatchObject({ code: 0, stdout: 'openai\n' });
    const json = record(await run(layout, ['key', 'list', '--json']));
    expect(JSON.parse(json.stdout)).toEqual({ keys: ['openai'] });

    await run(layout, ['key', 'set', 'tmp'], { input: 'x' });
    const removed = await run(layout, ['key', 'remove', 'tmp']);
    expect(removed).toMatchObject({ code: 0, stdout: 'removed API key tmp\n' });
    expect(JSON.parse(record(await run(layout, ['key', 'list', '--json'])).stdout)).toEqual({ keys: ['openai'] });
    const again = await run(layout, ['key', 'remove', 'tmp']);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('`credproxy key list`');
  });

  it('key set with nothing on stdin is a usage error', async () => {
    const r = await run(layout, ['key', 'set', 'empty'], { input: '' });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('no API key given');
  });

  it('exec passes the token in the environment and exits with the command', async () => {
    const script = 'process.stdout.write(String(process.env.ACCESS_TOKEN)); process.exit(7)';
    const r = await run(layout, ['exec', '--provider', 'github', '--', process.execPath, '-e', script]);
    expect(r).toMatchObject({ code: 7, stdout: ACCESS_TOKEN });
    const named = await run(layout, ['exec', '--provider', 'github:default', '--env', 'GH_TOKEN', '--', process.execPath, '-e', 'process.stdout.write(process.env.GH_TOKEN)']);
    expect(named).toMatchObject({ code: 0, stdout: ACCESS_TOKEN });
    const signalled = await run(layout, ['exec', '--provider', 'github', '--', process.execPath, '-e', "process.kill(process.pid, 'SIGTERM')"]);
    expect(signalled.code).toBe(128 + 15);
    const missing = await run(layout, ['exec', '--provider', 'gitlab', '--', process.execPath, '-e', '0']);
    expect(missing.code).toBe(6);
    const notFound = await run(layout, ['exec', '--provider', 'github', '--', 'credproxy-e2e-no-such-command']);
    expect(notFound.code).toBe(127);
  });

  it('client add prints the capability token once; list never shows it', async () => {
    const add = record(await run(layout, ['client', 'add', 'agent', '--provider', 'github', '--api-key', 'openai', '--ttl', '1h', '--allow-refresh']));
    expect(add.code).toBe(0);
    const token = add.stdout.trim();
    expect(token).toMatch(HEX64);
    expect(add.stdout).toBe(`${token}\n`);
    expect(add.stderr).toContain('shown only once');
    expect((add.stdout + add.stderr).split(token).length - 1).toBe(1);

    const list = record(await run(layout, ['client', 'list']));
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(/^NAME +ACCOUNTS +API KEYS +RIGHTS +SOCKET +EXPIRES\nagent +github +openai +refresh +- +\d{4}-/);
    const json = record(await run(layout, ['client', 'list', '--json']));
    const data = JSON.parse(json.stdout) as { clients: Array<Record<string, unknown>> };
    expect(data).toEqual({
      clients: [
        {
          name: 'agent',
          scopes: [{ provider: 'github' }],
          api_keys: ['openai'],
          allow_login: false,
          allow_refresh: true,
          expires_at: expect.any(Number),
        },
      ],
    });
    for (const out of [list.stdout, list.stderr, json.stdout, json.stderr]) expect(out).not.toContain(token);

    // The token works: the client sees its account.
    const asClient = await ProxyClient.connect({ socketPath: layout.socket, capabilityToken: token });
    try {
      expect((await asClient.call('get_token', { provider: 'github' })).access_token).toBe(ACCESS_TOKEN);
    } finally {
      asClient.close();
    }
  });

  it('client add --json prints the client_add data; remove works once', async () => {
    const add = record(await run(layout, ['client', 'add', 'ci', '--provider', 'github:work', '--json']));
    expect(add.code).toBe(0);
    const data = JSON.parse(add.stdout) as Record<string, unknown>;
    expect(Object.keys(data).sort()).toEqual(['capability_token', 'name']);
    expect(data.name).toBe('ci');
    expect(data.capability_token).toMatch(HEX64);
    expect(add.stderr).toBe('');

    const removed = record(await run(layout, ['client', 'remove', 'ci']));
    expect(removed.code).toBe(0);
    const again = record(await run(layout, ['client', 'remove', 'ci']));
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('no client named ci');
    const badTtl = await run(layout, ['client', 'add', 'x', '--provider', 'github', '--ttl', 'forever']);
    expect(badTtl.code).toBe(2);
  });

  it('logout forgets the account, says whether it was revoked, and exits 1 the second time (nothing to log out)', async () => {
    await withClient(layout.socket, (c) => c.call('save_token', { provider: 'temp', token: { access_token: 'at-temp' } }));
    const json = await run(layout, ['logout', 'temp', '--json']);
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual({ revoked: false, reason: expect.any(String) });

    await withClient(layout.socket, (c) => c.call('save_token', { provider: 'temp', token: { access_token: 'at-temp' } }));
    const text = await run(layout, ['logout', 'temp', '--no-revoke']);
    expect(text).toMatchObject({ code: 0, stdout: 'logged out of temp (not revoked: revocation skipped (--no-revoke))\n' });
    const again = await run(layout, ['logout', 'temp']);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('nothing to log out');
    expect(again.stderr).not.toContain('credproxy login');
  });

  it('no status, list or client output contains the API key or the refresh token', () => {
    expect(outputs.length).toBeGreaterThan(10);
    const all = outputs.join('\n');
    expect(all).toContain('openai'); // the scan looks at real output
    for (const secret of [API_KEY, REFRESH_TOKEN]) {
      expect(all).not.toContain(secret);
      expect(all).not.toContain(secret.slice(0, 16));
    }
    // The proxy's own log is clean too.
    expect(serve.stderr()).not.toContain(API_KEY);
    expect(serve.stderr()).not.toContain(REFRESH_TOKEN);
  });
});

/**
 * Routes through the built CLI, as a user sets them up (SPEC §6): `serve`, `key set`, `route add
 * --preset openai --upstream https://127.0.0.1:PORT` (a real HTTPS upstream whose throwaway CA the
 * proxy process trusts through NODE_EXTRA_CA_CERTS), `client add agent --route openai --http
 * 127.0.0.1:0`, then the unmodified openai SDK with the listener as its base URL and the
 * capability token as its API key; the proxy form through undici's ProxyAgent and curl -x; an
 * OAuth-account route against the real authorization server; `client remove` closes the port.
 * Every byte the clients got, all CLI output, the proxy's log and the audit log are scanned for
 * the key.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { startTestAuthServer, type TestAuthServer } from '@credproxy/testkit';
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { ProxyAgent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanup, makeLayout, run, startServe, withClient, type Layout, type RunResult, type ServeProcess } from './cli-harness.js';
import { refreshTokenFrom } from '../support/auth-code-login.js';
import { makeTestCa, startTestUpstream, type TestUpstream } from '../support/https-upstream.js';
import { portOpen } from '../support/temp.js';

const execFileP = promisify(execFile);
const API_KEY = 'sk-proj-E2E-REALKEY-0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a';
const ANTHROPIC_KEY = 'sk-ant-api03-E2E-REALKEY-9f8e7d6c5b4a39281706f5e4d3c2b1a0';

let layout: Layout;
let serve: ServeProcess;
let upstream: TestUpstream;
let as: TestAuthServer;
/** Everything that reached a client or a terminal, for the final scan. */
const seen: string[] = [];

function record(r: RunResult): RunResult {
  seen.push(r.stdout, r.stderr);
  return r;
}

async function cli(args: string[], input?: string): Promise<RunResult> {
  const r = record(await run(layout, args, input === undefined ? {} : { input }));
  expect(r.code, `credproxy ${args.join(' ')}: ${r.stderr}`).toBe(0);
  return r;
}

beforeAll(async () => {
  const ca = await makeTestCa();
  as = await startTestAuthServer({ rotateRefreshToken: true });
  upstream = await startTestUpstream(ca, undefined, {
    accept: async (authorization) => authorization?.startsWith('Bearer ') === true && as.isActive(authorization.slice(7)),
  });
  layout = makeLayout();
  const caFile = path.join(layout.dir, 'ca.pem');
  await fs.writeFile(caFile, ca.caCert);
  layout.env.NODE_EXTRA_CA_CERTS = caFile;
  // Storage encryption (SPEC §8) with a key file: no OS keyring is asked.
  if (layout.env.CREDPROXY_KEY_FILE === undefined) {
    const keyFile = path.join(layout.dir, 'store.key');
    await fs.writeFile(keyFile, randomBytes(32).toString('hex'), { mode: 0o600 });
    layout.env.CREDPROXY_KEY_FILE = keyFile;
  }
  serve = await startServe(layout);
}, 30_000);

afterAll(async () => {
  const audit = await fs.readFile(path.join(layout.dir, 'data', 'audit.log'), 'utf8').catch(() => '');
  await cleanup();
  await upstream?.close();
  await as?.close();
  const everything = [...seen, serve?.stderr() ?? '', audit].join('\n');
  for (const form of [API_KEY, Buffer.from(API_KEY).toString('base64'), encodeURIComponent(API_KEY), ANTHROPIC_KEY]) {
    expect(everything.includes(form), `found ${form}`).toBe(false);
  }
});

describe('an API-key route through the built CLI', () => {
  let token: string;
  let address: string;
  let port: number;

  it('route presets, key set, route add --preset openai --upstream, route list', async () => {
    const presets = JSON.parse((await cli(['route', 'presets', '--json'])).stdout) as { presets: Array<{ name: string }> };
    expect(presets.presets.map((p) => p.name)).toEqual(
      expect.arrayContaining(['anthropic', 'openai', 'gemini', 'github', 'github-git', 'groq', 'mistral', 'openrouter', 'xai', 'huggingface']),
    );
    await cli(['key', 'set', 'openai'], `${API_KEY}\n`);
    const added = await cli(['route', 'add', 'openai', '--preset', 'openai', '--upstream', upstream.origin, '--api-key', 'openai']);
    expect(added.stdout).toContain('added route openai');
    const list = JSON.parse((await cli(['route', 'list', '--json'])).stdout);
    expect(list).toEqual({
      routes: [{ name: 'openai', upstream: upstream.origin, header: 'authorization', format: 'Bearer {}', preset: 'openai', api_key: 'openai' }],
    });
    const bad = record(await run(layout, ['route', 'add', 'x', '--upstream', 'http://example.com', '--api-key', 'openai']));
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/plain http.*loopback/);
  });

  it('client add --route --http 127.0.0.1:0 prints the token once and the real port', async () => {
    const unknown = record(await run(layout, ['client', 'add', 'agent', '--route', 'opneai', '--http', '127.0.0.1:0']));
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toMatch(/no route named opneai — the configured routes are openai/);
    const wide = record(await run(layout, ['client', 'add', 'agent', '--route', 'openai', '--http', '0.0.0.0:8787']));
    expect(wide.code).not.toBe(0);
    expect(wide.stderr).toMatch(/only on loopback/);
    const r = await cli(['client', 'add', 'agent', '--route', 'openai', '--http', '127.0.0.1:0']);
    token = r.stdout.trim();
    expect(token).toMatch(/^[0-9a-f]{64}$/);
    const m = /HTTP listener for its routes: (127\.0\.0\.1:(\d+))/.exec(r.stderr);
    expect(m, r.stderr).not.toBeNull();
    address = m![1]!;
    port = Number(m![2]);
    expect(port).toBeGreaterThan(0);
    expect(r.stderr).toContain(`OPENAI_BASE_URL=http://${address}/openai/v1`);
    const list = JSON.parse((await cli(['client', 'list', '--json'])).stdout);
    expect(list.clients).toEqual([expect.objectContaining({ name: 'agent', routes: ['openai'], http: address })]);
    expect(JSON.stringify(list)).not.toContain(token);
    const table = (await cli(['client', 'list'])).stdout;
    expect(table).toMatch(/^NAME +ACCOUNTS +API KEYS +RIGHTS +SOCKET +ROUTES +HTTP +EXPIRES\n/);
    expect(table).toMatch(new RegExp(`\\nagent +- +- +- +- +openai +${address.replace(/\./g, '\\.')} +never\\n`));
  });

  it('the official openai SDK gets its answer, plain and streaming; upstream saw the real key', async () => {
    const before = upstream.received.length;
    const openai = new OpenAI({ baseURL: `http://${address}/openai/v1`, apiKey: token, maxRetries: 0 });
    const completion = await openai.chat.completions.create({ model: 'gpt-test', messages: [{ role: 'user', content: 'hi' }] });
    seen.push(JSON.stringify(completion));
    expect(completion.choices[0]!.message.content).toBe('Hello from upstream');
    const stream = await openai.chat.completions.create({ model: 'gpt-test', messages: [{ role: 'user', content: 'hi' }], stream: true });
    let text = '';
    for await (const chunk of stream) {
      seen.push(JSON.stringify(chunk));
      text += chunk.choices[0]?.delta?.content ?? '';
    }
    expect(text).toBe('Hello from upstream');
    const got = upstream.received.slice(before);
    expect(got.map((g) => g.url)).toEqual(['/v1/chat/completions', '/v1/chat/completions']);
    for (const g of got) {
      expect(g.headers.authorization).toBe(`Bearer ${API_KEY}`);
      expect(JSON.stringify(g.headers)).not.toContain(token);
    }
  });

  it('the official Anthropic SDK too: base URL /anthropic, the token as its API key (sent as x-api-key)', async () => {
    await cli(['key', 'set', 'anthropic'], `${ANTHROPIC_KEY}\n`);
    await cli(['route', 'add', 'anthropic', '--preset', 'anthropic', '--upstream', upstream.origin, '--api-key', 'anthropic']);
    const r = await cli(['client', 'add', 'claude', '--route', 'anthropic', '--http', '127.0.0.1:0', '--json']);
    const added = JSON.parse(r.stdout) as { capability_token: string; http: string };
    const before = upstream.received.length;
    const anthropic = new Anthropic({ baseURL: `http://${added.http}/anthropic`, apiKey: added.capability_token, maxRetries: 0 });
    const message = await anthropic.messages.create({ model: 'claude-test', max_tokens: 16, messages: [{ role: 'user', content: 'hi' }] });
    seen.push(JSON.stringify(message));
    expect(message.content[0]).toMatchObject({ type: 'text', text: 'Hello from upstream' });
    const got = upstream.received.slice(before);
    expect(got.map((g) => g.url)).toEqual(['/v1/messages']);
    expect(got[0]!.headers['x-api-key']).toBe(ANTHROPIC_KEY);
    expect(JSON.stringify(got[0]!.headers)).not.toContain(added.capability_token);
    await cli(['client', 'remove', 'claude']);
    await cli(['route', 'remove', 'anthropic']);
  });

  it('an echoing upstream cannot hand the key back: every byte the client gets is scrubbed', async () => {
    for (const q of ['', '?form=base64', '?form=percent', '?enc=gzip', '?enc=br']) {
      const res = await request(`http://${address}/openai/v1/echo${q}`, { headers: { authorization: `Bearer ${token}` } });
      const body = Buffer.from(await res.body.arrayBuffer()).toString('latin1');
      seen.push(JSON.stringify(res.headers), body);
      expect(res.statusCode).toBe(200);
    }
  });

  it('the proxy form: undici ProxyAgent (absolute-form, token as the proxy password) and curl -x', async () => {
    const before = upstream.received.length;
    const agent = new ProxyAgent({ uri: `http://${address}`, token: `Basic ${Buffer.from(`x:${token}`).toString('base64')}`, proxyTunnel: false });
    const res = await request(`http://127.0.0.1:${upstream.port}/v1/echo?q=1`, { dispatcher: agent });
    const body = await res.body.text();
    seen.push(JSON.stringify(res.headers), body);
    expect(res.statusCode).toBe(200);
    await agent.close();
    const { stdout } = await execFileP('curl', ['-sS', '-x', `http://x:${token}@${address}`, `http://127.0.0.1:${upstream.port}/v1/echo`]);
    seen.push(stdout);
    expect(JSON.parse(stdout).url).toBe('/v1/echo');
    const got = upstream.received.slice(before);
    expect(got).toHaveLength(2);
    for (const g of got) expect(g.headers.authorization).toBe(`Bearer ${API_KEY}`);
    // A tunnel is refused with the message naming both forms.
    const tunnel = await execFileP('curl', ['-sS', '-p', '-x', `http://x:${token}@${address}`, `http://127.0.0.1:${upstream.port}/v1/echo`]).catch((e: { stderr: string }) => e);
    seen.push(JSON.stringify(tunnel));
    expect(JSON.stringify(tunnel)).toMatch(/403/);
  });

  it('a route grant gives no get_token and no get_api_key', async () => {
    await withClient(layout.socket, async () => undefined);
    const { ProxyClient } = await import('@credproxy/core');
    const c = await ProxyClient.connect({ socketPath: layout.socket, capabilityToken: token });
    try {
      await expect(c.call('get_api_key', { name: 'openai' })).rejects.toMatchObject({ code: 'FORBIDDEN' });
      await expect(c.call('get_token', { provider: 'openai' })).rejects.toMatchObject({ code: 'FORBIDDEN' });
    } finally {
      c.close();
    }
  });

  it('audit lines name client, route, method, path without query, status, bytes — never a header value', async () => {
    // The log is written in batches (at most 100 ms after a line): wait for the request's line.
    const file = path.join(layout.dir, 'data', 'audit.log');
    let audit = '';
    for (const deadline = Date.now() + 5_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 50))) {
      audit = await fs.readFile(file, 'utf8').catch(() => '');
      if (audit.split('\n').some((l) => l.includes('"op":"http"') && l.includes('/v1/echo'))) break;
    }
    const lines = audit.split('\n').filter((l) => l.includes('"op":"http"'));
    expect(lines.length).toBeGreaterThan(0);
    const line = JSON.parse(lines.find((l) => l.includes('/v1/echo'))!) as Record<string, unknown>;
    expect(line).toMatchObject({ client: 'agent', op: 'http', route: 'openai', method: 'GET', path: '/v1/echo', status: 200 });
    expect(typeof line.bytes_out).toBe('number');
    expect(typeof line.ms).toBe('number');
    expect(audit).not.toContain('q=1');
    expect(audit).not.toContain(token);
  });

  it('client remove closes the port', async () => {
    expect(await portOpen(port)).toBe(true);
    await cli(['client', 'remove', 'agent']);
    expect(await portOpen(port)).toBe(false);
    await cli(['route', 'remove', 'openai']);
    expect(JSON.parse((await cli(['route', 'list', '--json'])).stdout)).toEqual({ routes: [] });
  });
});

describe('an OAuth-account route through the built CLI', () => {
  it('injects the token, answers a 401 with one refresh and a retry, and REAUTH_REQUIRED when a login is needed', async () => {
    await cli([
      'provider', 'add', 'acme', '--issuer', as.issuer, '--client-id', 'paste', '--scope', 'openid', '--scope', 'offline_access',
      '--flow', 'browser_redirect', '--redirect-uri', as.clients.paste.redirectUri,
    ]);
    await cli(['route', 'add', 'acct', '--upstream', upstream.origin, '--account', 'acme']);
    // A refresh token from a real login at the authorization server, injected with an access
    // token upstream does not know (as `credproxy login --with-token` would import it).
    const refreshToken = await refreshTokenFrom(as);
    await withClient(layout.socket, (c) =>
      c.call('save_token', { provider: 'acme', token: { access_token: 'stale-access-token', refresh_token: refreshToken, expiry: Math.floor(Date.now() / 1000) + 3600 } }),
    );
    const r = await cli(['client', 'add', 'oauth-agent', '--route', 'acct', '--http', '127.0.0.1:0', '--json']);
    const added = JSON.parse(r.stdout) as { capability_token: string; http: string };
    as.resetCounts();
    const before = upstream.received.length;
    const ok = await request(`http://${added.http}/acct/resource`, { headers: { authorization: `Bearer ${added.capability_token}` } });
    const okBody = await ok.body.text();
    seen.push(okBody);
    expect(ok.statusCode, okBody).toBe(200);
    const auths = upstream.received.slice(before).map((g) => g.headers.authorization);
    expect(auths).toHaveLength(2);
    expect(auths[0]).toBe('Bearer stale-access-token');
    expect(auths[1]).not.toBe('Bearer stale-access-token');
    expect(as.grantCounts.refresh_token).toBe(1);
    expect(okBody).not.toContain(String(auths[1]).slice(7));

    // The account logged out: it needs a login, which a route never starts.
    await cli(['logout', 'acme']);
    const codes = as.grantCounts.authorization_code;
    const reauth = await request(`http://${added.http}/acct/resource`, { headers: { authorization: `Bearer ${added.capability_token}` } });
    const reauthBody = await reauth.body.text();
    seen.push(reauthBody);
    expect(reauth.statusCode).toBe(401);
    expect(reauth.headers['x-credproxy-error']).toBe('REAUTH_REQUIRED');
    expect(reauthBody).toMatch(/credproxy login acme/);
    expect(as.grantCounts.authorization_code).toBe(codes);
  }, 30_000);
});

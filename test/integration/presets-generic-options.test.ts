/**
 * The generic options for providers that bend the standard (SPEC §7), on a provider configured by
 * hand (no preset) against the emulated GitHub: `token_request: "json"` sends the token request
 * as a JSON body, `extra_token_params` adds parameters to every token request, `accept_json`
 * asks for JSON; a form-encoded answer (what GitHub sends when not asked for JSON) is read as
 * well, and device polling errors sent as HTTP 200 are still errors.
 */
import { editConfigFile } from '../../packages/core/src/config/config-file.js';
import { startGitHubEmulation, type ProviderEmulation } from '@credproxy/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { pollUntilDone, startPresetProxy, type PresetProxy } from '../support/preset-harness.js';
import { removeTempDirs } from '../support/temp.js';

const opened: Array<{ close(): Promise<void> }> = [];
afterAll(async () => {
  for (const o of opened.reverse()) await o.close().catch(() => undefined);
  await removeTempDirs();
});

async function configure(p: PresetProxy, emu: ProviderEmulation, options: Record<string, unknown>): Promise<void> {
  await editConfigFile(p.env.CREDPROXY_CONFIG!, (raw) => {
    raw.providers = {
      raw: {
        authorization_endpoint: `${emu.base}/login/oauth/authorize`,
        token_endpoint: `${emu.base}/login/oauth/access_token`,
        device_authorization_endpoint: `${emu.base}/login/device/code`,
        client_id: emu.clientId,
        flow: 'device_code',
        scopes: ['repo'],
        ...options,
      },
    };
  });
}

async function deviceLogin(p: PresetProxy, emu: ProviderEmulation): Promise<Record<string, unknown>> {
  const init = await p.owner.call('oauth_initiate', { provider: 'raw' });
  await new Promise((r) => setTimeout(r, 200)); // a few authorization_pending polls first
  expect((await p.owner.call('oauth_poll', { session_id: init.session_id })).status).toBe('pending');
  emu.approveDevice(init.user_code!);
  return pollUntilDone(p.owner, init.session_id);
}

describe('generic provider options', () => {
  it('token_request "json", extra_token_params and accept_json shape every token request', async () => {
    const emu = await startGitHubEmulation({ deviceInterval: 0.05 });
    opened.push(emu);
    const p = await startPresetProxy();
    opened.push(p);
    await configure(p, emu, { token_request: 'json', accept_json: true, extra_token_params: { audience: 'api.example' } });
    expect((await deviceLogin(p, emu)).status).toBe('complete');
    const tokenRequests = emu.requests.filter((r) => r.path === '/login/oauth/access_token');
    expect(tokenRequests.length).toBeGreaterThan(1);
    for (const r of tokenRequests) {
      expect(r.bodyType).toBe('json');
      expect(r.params).toEqual(expect.arrayContaining(['audience', 'client_id', 'device_code', 'grant_type']));
      expect(r.accept).toMatch(/application\/json/);
    }
    expect(emu.violations).toEqual([]);
  });

  it('reads form-encoded token answers (GitHub without Accept: application/json), errors sent with HTTP 200 included', async () => {
    const emu = await startGitHubEmulation({ deviceInterval: 0.05 });
    opened.push(emu);
    // A client stack that drops the Accept header: GitHub then answers in a form.
    const dropAccept: typeof fetch = (input, init) => {
      const headers = new Headers(init?.headers);
      headers.delete('accept');
      return fetch(input, { ...init, headers });
    };
    const p = await startPresetProxy({}, { fetch: dropAccept });
    opened.push(p);
    await configure(p, emu, {});
    const done = await deviceLogin(p, emu);
    expect(done.status, String(done.error)).toBe('complete');
    const token = await p.owner.call('get_token', { provider: 'raw' });
    expect(token.access_token).toMatch(/^gho_/);
    expect(token.scope).toBe('repo');
    // None of them asked for JSON, so every answer was a form.
    const asked = emu.requests.filter((r) => r.path === '/login/oauth/access_token').map((r) => r.accept ?? '');
    expect(asked.length).toBeGreaterThan(1);
    for (const a of asked) expect(a).not.toMatch(/json/);
  });
});

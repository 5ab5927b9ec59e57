import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { http, HttpResponse } from 'msw';
import { setupServer } from 'msw/node';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ConfigSource } from '../config/config-file.js';
import { ErrorCode, ProxyError } from '../protocol/errors.js';
import { authorizationUrl } from './authorization-code.js';
import { deviceCodeFlow } from './device-code.js';
import { ProviderDirectory } from './providers.js';

const DEVICE_URL = 'https://as.test/device';
const server = setupServer();
beforeAll(() => server.listen({ onUnhandledRequest: 'error' }));
afterEach(() => server.resetHandlers());
afterAll(() => server.close());

let dir: string;
const clock = { now: () => Date.now() };

beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'cpd-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

async function provider() {
  const config = path.join(dir, 'config.json');
  writeFileSync(
    config,
    JSON.stringify({ providers: { acme: { token_endpoint: 'https://as.test/token', authorization_endpoint: 'https://as.test/authorize', device_authorization_endpoint: DEVICE_URL, client_id: 'cli' } } }),
  );
  return new ProviderDirectory({ config: new ConfigSource(config), clock, timeoutMs: 2_000 }).get('acme');
}

/** The device flow's start against a provider answering `device` to the device authorization request. */
async function startWith(device: Record<string, unknown>): Promise<unknown> {
  server.use(http.post(DEVICE_URL, () => HttpResponse.json({ device_code: 'dc-0123456789', expires_in: 600, ...device })));
  const flow = deviceCodeFlow(await provider(), { deadline: Date.now() + 60_000 });
  try {
    return await flow.start();
  } finally {
    flow.dispose();
  }
}

describe('what the provider sends a person to', () => {
  it.each([
    ['a javascript: URL', { verification_uri: 'javascript:alert(1)', user_code: 'ABCD-EFGH' }],
    ['a file: URL', { verification_uri: 'file:///etc/passwd', user_code: 'ABCD-EFGH' }],
    ['an app scheme', { verification_uri: 'ms-settings:display', user_code: 'ABCD-EFGH' }],
    ['plain http off loopback', { verification_uri: 'http://login.example.com/device', user_code: 'ABCD-EFGH' }],
    ['an escape sequence', { verification_uri: 'https://as.test/device\u001b]0;owned\u0007', user_code: 'ABCD-EFGH' }],
    ['a bad complete URL', { verification_uri: 'https://as.test/device', verification_uri_complete: 'vbscript:x', user_code: 'ABCD-EFGH' }],
    ['a user code that clears the screen', { verification_uri: 'https://as.test/device', user_code: 'AB\u001b[2JCD' }],
  ])('a device flow refuses %s', async (_name, device) => {
    const err = await startWith(device).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(ProxyError);
    expect((err as ProxyError).code).toBe(ErrorCode.FLOW_INITIATION_FAILED);
    expect((err as ProxyError).message).toMatch(/acme: the provider's (verification_uri|verification_uri_complete|user_code) /);
    expect((err as ProxyError).message).not.toMatch(/[\u0000-\u001f]/);
  });

  it('a device flow takes https and loopback http pages', async () => {
    await expect(startWith({ verification_uri: 'https://as.test/device', verification_uri_complete: 'https://as.test/device?code=ABCD', user_code: 'ABCD-EFGH' })).resolves.toMatchObject({
      auth_url: 'https://as.test/device?code=ABCD',
      user_code: 'ABCD-EFGH',
    });
    await expect(startWith({ verification_uri: 'http://127.0.0.1:8080/device', user_code: 'WXYZ' })).resolves.toMatchObject({ auth_url: 'http://127.0.0.1:8080/device' });
  });

  it('an authorization endpoint that is not https is not made into a login URL', async () => {
    const p = await provider();
    const secrets = { state: 's', verifier: 'v', codeChallenge: 'c', redirectUri: 'http://127.0.0.1/cb' };
    expect(authorizationUrl({ issuer: 'https://as.test', authorization_endpoint: 'https://as.test/authorize' }, p, secrets)).toMatch(/^https:\/\/as\.test\/authorize\?/);
    for (const bad of ['javascript:alert(1)//', 'file:///tmp/x', 'http://as.example.com/authorize']) {
      expect(() => authorizationUrl({ issuer: 'https://as.test', authorization_endpoint: bad }, p, secrets)).toThrow(/authorization endpoint is not an https URL/);
    }
  });
});

/**
 * What a provider's token endpoint answers to a refresh is input too (a broken, hostile or
 * merely unusual provider): property-based answers — statuses, content types, JSON with fields
 * of the wrong type or missing, errors with descriptions, form-encoded and truncated bodies,
 * dropped connections — against a real proxy. Every refresh gets an answer (a token, or an error
 * with a code of SPEC §2, never INTERNAL_ERROR), the refresh token is in no answer, and the
 * proxy keeps serving. CREDPROXY_FUZZ_SEED and CREDPROXY_FUZZ_RUNS change the seed and the count.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { ErrorCode, isErrorCode, ProxyClient, ProxyError, resolvePaths, startProxy, type RunningProxy } from '@credproxy/core';
import { createScriptedUser, startTestAuthServer, type InjectedResponse, type TestAuthServer } from '@credproxy/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { removeTempDirs, tempDir } from '../support/temp.js';

const RUNS = Number(process.env.CREDPROXY_FUZZ_RUNS ?? 100);
const SEED = Number(process.env.CREDPROXY_FUZZ_SEED ?? 7_2026);
const REFRESH_TOKEN = 'rt-fuzz-7d1c0a9e2b4f6a8c-never-shown';

let as: TestAuthServer;
let proxy: RunningProxy;
let owner: ProxyClient;

beforeAll(async () => {
  as = await startTestAuthServer({});
  const dir = await tempDir('cpf-');
  const configFile = path.join(dir, 'config.json');
  await fs.writeFile(
    configFile,
    JSON.stringify({
      providers: {
        acme: { issuer: as.issuer, client_id: 'paste', scopes: ['openid', 'offline_access'], flow: 'browser_redirect', redirect_uri: as.clients.paste.redirectUri },
        dev: { issuer: as.issuer, client_id: as.clients.native.clientId, scopes: ['openid', 'offline_access'], flow: 'device_code' },
      },
    }),
  );
  proxy = await startProxy({ paths: resolvePaths({ env: { CREDPROXY_DATA_DIR: path.join(dir, 'data'), CREDPROXY_CONFIG: configFile, CREDPROXY_KEY_FILE: path.join(dir, 'k') }, socketPath: path.join(dir, 'p.sock') }) });
  owner = await ProxyClient.connect({ socketPath: proxy.socketPath });
});

afterAll(async () => {
  owner?.close();
  await proxy?.stop();
  await as?.close();
  await removeTempDirs();
});

const text = fc.string({ maxLength: 40 });
const anyValue = fc.oneof(text, fc.integer(), fc.double(), fc.boolean(), fc.constant(null), fc.array(text, { maxLength: 3 }), fc.dictionary(text, text, { maxKeys: 2 }));
/** A field of a token answer: absent, the right kind, or anything else. */
const field = (good: fc.Arbitrary<unknown>): fc.Arbitrary<unknown> => fc.oneof({ arbitrary: fc.constant(undefined), weight: 2 }, { arbitrary: good, weight: 4 }, { arbitrary: anyValue, weight: 2 });

const tokenJson = fc.record(
  {
    access_token: field(fc.oneof(fc.constant('at-fuzz-new'), fc.constant(''), fc.string({ minLength: 1, maxLength: 5000 }))),
    token_type: field(fc.constantFrom('Bearer', 'bearer', 'BEARER', 'DPoP', 'mac', 'N_A')),
    expires_in: field(fc.oneof(fc.integer({ min: -100, max: 10 ** 10 }), fc.constantFrom('3600', '1e3', 'soon', 0, 1e308, -1))),
    refresh_token: field(fc.constantFrom('rt-fuzz-rotated', '', REFRESH_TOKEN)),
    scope: field(fc.constantFrom('openid offline_access', '', 'a b c')),
    id_token: field(fc.constantFrom('not.a.jwt', 'eyJhbGciOiJub25lIn0.e30.', '')),
    error: field(fc.constantFrom('invalid_grant', 'invalid_request', 'invalid_client', 'unauthorized_client', 'server_error', 'temporarily_unavailable', 'slow_down', 'unknown_error')),
    error_description: field(fc.oneof(text, fc.constant(`refresh token ${REFRESH_TOKEN} is bad`))),
    extra: field(anyValue),
  },
  { requiredKeys: [] },
);

/** A usable token answer with odd extras: wrong-typed optional fields, unknown ones, a garbage id_token. */
const usable = fc.record(
  {
    access_token: fc.oneof(fc.constant('at-fuzz-new'), fc.string({ minLength: 1, maxLength: 5000 }).filter((t) => t.trim().length > 0)),
    token_type: fc.constantFrom('Bearer', 'bearer', 'BEARER'),
    expires_in: field(fc.oneof(fc.integer({ min: -100, max: 10 ** 10 }), fc.constantFrom('3600', 0, 1e308))),
    refresh_token: field(fc.constantFrom('rt-fuzz-rotated', '', REFRESH_TOKEN)),
    scope: field(fc.constantFrom('openid offline_access', '', 'a b c')),
    id_token: field(fc.constantFrom('not.a.jwt', 'eyJhbGciOiJub25lIn0.e30.', '')),
    extra: field(anyValue),
  },
  { requiredKeys: ['access_token', 'token_type'] },
);

// 5xx and 429 answers are retried with backoff (~0.6 s each): kept to a few.
const answer: fc.Arbitrary<InjectedResponse> = fc.oneof(
  { arbitrary: fc.record({ status: fc.constant(200), body: usable }), weight: 4 },
  { arbitrary: fc.record({ status: fc.constantFrom(200, 200, 201, 204, 400, 400, 401, 403, 429, 503), body: tokenJson }), weight: 4 },
  {
    arbitrary: fc.record({
      status: fc.oneof(fc.integer({ min: 200, max: 499 }), fc.constantFrom(200, 400, 500)),
      body: fc.oneof(
        fc.constantFrom('', 'not json', '{"access_token": "trunc', 'access_token=at-form&token_type=bearer&expires_in=60', 'error=invalid_grant', '[]', 'null', '"just a string"', '123'),
        text,
      ),
      headers: fc.constantFrom<Record<string, string>>({}, { 'content-type': 'application/json' }, { 'content-type': 'application/x-www-form-urlencoded' }, { 'content-type': 'text/html' }),
    }),
    weight: 2,
  },
  { arbitrary: fc.constant<InjectedResponse>({ dropConnection: true }), weight: 1 },
);

/** Whatever a refresh answered: the token data, or the proxy's error. */
async function refresh(): Promise<{ ok: true; data: Record<string, unknown> } | { ok: false; error: ProxyError }> {
  try {
    return { ok: true, data: (await owner.call('refresh_token', { provider: 'acme' })) as unknown as Record<string, unknown> };
  } catch (err) {
    if (err instanceof ProxyError) return { ok: false, error: err };
    throw err;
  }
}

describe("a provider's token endpoint answering anything to a refresh", () => {
  it('every refresh is answered with a token or a coded error, never the refresh token, and the proxy keeps serving', async () => {
    const codes: Record<string, number> = {};
    await fc.assert(
      fc.asyncProperty(answer, async (injected) => {
        // An expired token with a refresh token: the next refresh goes to the endpoint.
        await owner.call('save_token', { provider: 'acme', token: { access_token: 'at-fuzz-old', refresh_token: REFRESH_TOKEN, expiry: Math.floor(Date.now() / 1000) - 5 } });
        as.setTokenEndpointFault((req) => (req.grantType === 'refresh_token' ? injected : undefined));
        const result = await refresh();
        as.setTokenEndpointFault(undefined);
        const context = `${JSON.stringify(injected).slice(0, 300)} → ${result.ok ? JSON.stringify(result.data).slice(0, 200) : `${result.error.code}: ${result.error.message}`}`;
        const seen = result.ok ? JSON.stringify(result.data) : `${result.error.code} ${result.error.message}`;
        expect(seen.includes(REFRESH_TOKEN), context).toBe(false);
        if (result.ok) {
          expect(typeof result.data.access_token, context).toBe('string');
          expect((result.data.access_token as string).length, context).toBeGreaterThan(0);
          expect(result.data.token_type, context).toBe('Bearer');
          codes.ok = (codes.ok ?? 0) + 1;
        } else {
          expect(isErrorCode(result.error.code), context).toBe(true);
          expect(result.error.code, context).not.toBe(ErrorCode.INTERNAL_ERROR);
          codes[result.error.code] = (codes[result.error.code] ?? 0) + 1;
        }
        // Still answering.
        expect((await owner.call('ping', {})).version, context).toBeTypeOf('string');
      }),
      { numRuns: RUNS, seed: SEED },
    );
    console.log(`[token-endpoint-fuzz] ${RUNS} answers: ${JSON.stringify(codes)}`);
    // Both sides were exercised: tokens taken and answers refused.
    expect(codes.ok ?? 0).toBeGreaterThan(0);
    expect(RUNS - (codes.ok ?? 0)).toBeGreaterThan(0);
  }, 180_000);
});

/** Every form a value may take when it is quoted back: as sent, percent- and form-encoded. */
function forms(value: string): string[] {
  return [value, encodeURIComponent(value), new URLSearchParams({ v: value }).toString().slice(2)];
}

describe('a provider that quotes the request back in its error', () => {
  it('code exchange: the code and the PKCE verifier are in no answer', async () => {
    const init = await owner.call('oauth_initiate', { provider: 'acme', bucket: 'echo' });
    const pasted = await createScriptedUser().readPastedCode(await createScriptedUser().authorize(init.auth_url!));
    const sent: string[] = [];
    as.setTokenEndpointFault((req) => {
      if (req.grantType !== 'authorization_code') return undefined;
      const code = req.params.get('code') ?? '';
      const verifier = req.params.get('code_verifier') ?? '';
      sent.push(code, verifier);
      return { status: 400, body: { error: 'invalid_request', error_description: `bad code ${code} for verifier ${verifier} (${encodeURIComponent(verifier)})` } };
    });
    const error = await owner.call('oauth_exchange', { session_id: init.session_id, code: pasted }).then(
      () => undefined,
      (err: unknown) => err as ProxyError,
    );
    as.setTokenEndpointFault(undefined);
    expect(sent.length).toBe(2);
    expect(error?.code).toBe(ErrorCode.EXCHANGE_FAILED);
    expect(error?.message).toContain('[redacted]');
    for (const value of sent) for (const form of forms(value)) expect(error?.message).not.toContain(form);
  });

  it('device flow: the device code is in no answer', async () => {
    const sent: string[] = [];
    as.setTokenEndpointFault((req) => {
      if (req.grantType !== 'urn:ietf:params:oauth:grant-type:device_code' && req.grantType !== 'device_code') return undefined;
      const deviceCode = req.params.get('device_code') ?? '';
      sent.push(deviceCode);
      return { status: 400, body: { error: 'invalid_request', error_description: `unknown device code ${deviceCode}` } };
    });
    const init = await owner.call('oauth_initiate', { provider: 'dev', bucket: 'echo' });
    let polled = await owner.call('oauth_poll', { session_id: init.session_id });
    for (let i = 0; i < 100 && polled.status === 'pending'; i++) {
      await new Promise((r) => setTimeout(r, 50));
      polled = await owner.call('oauth_poll', { session_id: init.session_id });
    }
    as.setTokenEndpointFault(undefined);
    expect(sent.length).toBeGreaterThan(0);
    expect(polled.status).toBe('failed');
    const seen = JSON.stringify(polled);
    expect(seen).toContain('[redacted]');
    for (const value of sent) for (const form of forms(value)) expect(seen).not.toContain(form);
  });
});

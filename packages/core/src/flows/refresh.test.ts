import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { delay, http, HttpResponse } from 'msw';
import { setupServer } from 'msw/node';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ConfigSource } from '../config/config-file.js';
import { ErrorCode, ProxyError } from '../protocol/errors.js';
import { AccountService } from '../store/accounts.js';
import { FileTokenStore } from '../store/backends/file-tokens.js';
import type { AccountRecord } from '../store/token-store.js';
import { silentLogger } from '../util/logger.js';
import { ProviderDirectory } from './providers.js';
import { RefreshCoordinator } from './refresh.js';

const TOKEN_URL = 'https://as.test/token';
const server = setupServer();
beforeAll(() => server.listen({ onUnhandledRequest: 'error' }));
afterEach(() => server.resetHandlers());
afterAll(() => server.close());

let dir: string;
let store: FileTokenStore;
let requests: number;
const clock = { now: () => Date.now() };
const key = { provider: 'acme', bucket: 'default' };
const record: AccountRecord = {
  ...key,
  token: { access_token: 'old-access', refresh_token: 'old-refresh', token_type: 'Bearer', expiry: Math.floor(Date.now() / 1000) - 10 },
  updated_at: Date.now() - 3_600_000,
};

function coordinator(timeoutMs = 2_000): RefreshCoordinator {
  const config = path.join(dir, 'config.json');
  const providers = new ProviderDirectory({ config: new ConfigSource(config), clock, timeoutMs });
  return new RefreshCoordinator({ providers, clock, logger: silentLogger, sleep: async () => {}, random: () => 0 });
}

/** The refresher behind the account service, which locks, re-reads and writes. */
function accounts(timeoutMs = 2_000): AccountService {
  return new AccountService({ store, clock, refresher: coordinator(timeoutMs) });
}

function onToken(respond: () => Response | Promise<Response>): void {
  server.use(
    http.post(TOKEN_URL, async () => {
      requests += 1;
      return respond();
    }),
  );
}

async function expectCode(p: Promise<unknown>, code: ErrorCode): Promise<ProxyError> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(ProxyError);
  expect((err as ProxyError).code).toBe(code);
  return err as ProxyError;
}

beforeEach(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'cpr-'));
  writeFileSync(
    path.join(dir, 'config.json'),
    JSON.stringify({ providers: { acme: { token_endpoint: TOKEN_URL, authorization_endpoint: 'https://as.test/authorize', client_id: 'cli' } } }),
  );
  store = new FileTokenStore(path.join(dir, 'tokens'));
  await store.put(record);
  requests = 0;
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('RefreshCoordinator against upstream faults', () => {
  it('stores a rotated refresh token before answering', async () => {
    onToken(() => HttpResponse.json({ access_token: 'new-access', refresh_token: 'new-refresh', token_type: 'Bearer', expires_in: 600 }));
    const fresh = await accounts().refresh(key);
    expect(fresh.token.access_token).toBe('new-access');
    const onDisk = await store.get(key);
    expect(onDisk?.token.refresh_token).toBe('new-refresh');
    expect(onDisk?.token.expiry).toBeGreaterThan(Date.now() / 1000 + 500);
  });

  it('keeps the old refresh token when the provider does not rotate', async () => {
    onToken(() => HttpResponse.json({ access_token: 'new-access', token_type: 'bearer', expires_in: 600 }));
    await accounts().refresh(key);
    expect((await store.get(key))?.token.refresh_token).toBe('old-refresh');
  });

  it('makes one upstream call for many concurrent refreshes', async () => {
    onToken(async () => {
      await delay(50);
      return HttpResponse.json({ access_token: 'new-access', refresh_token: 'r2', token_type: 'Bearer', expires_in: 600 });
    });
    const a = accounts();
    const results = await Promise.all(Array.from({ length: 50 }, () => a.refresh(key)));
    expect(requests).toBe(1);
    expect(new Set(results.map((r) => r.token.access_token))).toEqual(new Set(['new-access']));
  });

  it('retries 5xx with backoff, then answers UPSTREAM_UNAVAILABLE and leaves the store untouched', async () => {
    onToken(() => new HttpResponse('bad gateway', { status: 502 }));
    await expectCode(accounts().refresh(key), ErrorCode.UPSTREAM_UNAVAILABLE);
    expect(requests).toBe(3);
    expect(await store.get(key)).toEqual(record);
  });

  it('recovers when a 5xx is followed by success', async () => {
    let n = 0;
    onToken(() => (++n === 1 ? HttpResponse.json({ error: 'server_error' }, { status: 500 }) : HttpResponse.json({ access_token: 'ok', token_type: 'Bearer', expires_in: 60 })));
    const fresh = await accounts().refresh(key);
    expect(fresh.token.access_token).toBe('ok');
    expect(requests).toBe(2);
  });

  it('treats a timeout as transient', async () => {
    onToken(async () => {
      await delay('infinite');
      return HttpResponse.json({});
    });
    const err = await expectCode(accounts(100).refresh(key), ErrorCode.UPSTREAM_UNAVAILABLE);
    expect(err.message).toMatch(/try again/);
    expect(await store.get(key)).toEqual(record);
  });

  it('treats a connection reset as transient', async () => {
    onToken(() => HttpResponse.error());
    await expectCode(accounts().refresh(key), ErrorCode.UPSTREAM_UNAVAILABLE);
    expect(requests).toBe(3);
  });

  it('rejects a malformed token response and stores nothing', async () => {
    onToken(() => new HttpResponse('{"access_token": ', { status: 200, headers: { 'content-type': 'application/json' } }));
    await expectCode(accounts().refresh(key), ErrorCode.REFRESH_FAILED);
    expect(await store.get(key)).toEqual(record);
  });

  it('rejects a response without an access token', async () => {
    onToken(() => HttpResponse.json({ token_type: 'Bearer', expires_in: 60 }));
    await expectCode(accounts().refresh(key), ErrorCode.REFRESH_FAILED);
    expect(requests).toBe(1);
    expect(await store.get(key)).toEqual(record);
  });

  it('marks the account needs_login on invalid_grant', async () => {
    onToken(() => HttpResponse.json({ error: 'invalid_grant', error_description: 'grant revoked' }, { status: 400 }));
    const err = await expectCode(accounts().refresh(key), ErrorCode.REAUTH_REQUIRED);
    expect(err.message).toContain('credproxy login acme');
    const onDisk = await store.get(key);
    expect(onDisk?.needs_login).toBe(true);
    expect(onDisk?.token.refresh_token).toBe('old-refresh');
    // A needs_login account is not sent upstream again.
    await expectCode(accounts().refresh(key), ErrorCode.REAUTH_REQUIRED);
    expect(requests).toBe(1);
  });

  it('uses a token another process stored while it waited for the lock', async () => {
    onToken(() => HttpResponse.json({ access_token: 'never', token_type: 'Bearer', expires_in: 60 }));
    const newer: AccountRecord = { ...record, token: { ...record.token, access_token: 'from-elsewhere', expiry: Math.floor(Date.now() / 1000) + 3600 }, updated_at: Date.now() };
    const a = accounts();
    expect(await a.load(key)).toEqual(record);
    await store.put(newer);
    const fresh = await a.refresh(key);
    expect(fresh.token.access_token).toBe('from-elsewhere');
    expect(requests).toBe(0);
  });
});

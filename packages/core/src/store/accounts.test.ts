import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ErrorCode } from '../protocol/errors.js';
import type { LogFields, LogLevel, Logger } from '../util/logger.js';
import { AccountService, type GrantOutcome, type TokenRefresher } from './accounts.js';
import { FileTokenStore } from './backends/file-tokens.js';
import type { AccountKey, AccountRecord, TokenStore } from './token-store.js';
import type { TokenView } from '../protocol/ops.js';

/** What get_token does (server/handlers/tokens.ts): the cached token, else load (and refresh). */
function getToken(accounts: AccountService, k: AccountKey, minValidSeconds: number): Promise<TokenView> {
  const cached = accounts.cachedToken(k, minValidSeconds);
  return cached ? Promise.resolve(cached) : accounts.loadToken(k, minValidSeconds);
}

let dir: string;
let offsetMs: number;
const clock = { now: () => Date.now() + offsetMs };
const key = { provider: 'acme', bucket: 'default' };
const nowS = (): number => Math.floor(clock.now() / 1000);

/**
 * A provider that rotates strictly: each grant consumes the live refresh token and issues a new
 * one; any other refresh token is refused (invalid_grant), as with reuse detection.
 */
class RotatingProvider implements TokenRefresher {
  live = 'rt-0';
  grants: string[] = [];
  ttl = 3600;
  canRefresh(record: AccountRecord): boolean {
    return typeof record.token.refresh_token === 'string';
  }
  async grant(record: AccountRecord): Promise<GrantOutcome> {
    const presented = record.token.refresh_token!;
    this.grants.push(presented);
    if (presented !== this.live) return { kind: 'refused' };
    const n = this.grants.length;
    this.live = `rt-${n}`;
    return { kind: 'refreshed', record: { ...key, token: { access_token: `at-${n}`, token_type: 'Bearer', refresh_token: this.live, expiry: nowS() + this.ttl }, updated_at: clock.now() } };
  }
}

/** The file store, with writes failing (EMFILE) while `failing` is set. */
class FailingDisk implements TokenStore {
  readonly inner: FileTokenStore;
  failing = false;
  constructor(d: string) {
    this.inner = new FileTokenStore(d);
  }
  get(k: AccountKey) {
    return this.inner.get(k);
  }
  async put(record: AccountRecord) {
    if (this.failing) throw Object.assign(new Error(`EMFILE: too many open files`), { code: 'EMFILE' });
    return this.inner.put(record);
  }
  delete(k: AccountKey) {
    return this.inner.delete(k);
  }
  list() {
    return this.inner.list();
  }
  lock(k: AccountKey) {
    return this.inner.lock(k);
  }
}

let disk: FailingDisk;
let provider: RotatingProvider;
let lines: Array<{ level: LogLevel; message: string; fields?: LogFields }>;
const logger: Logger = { log: (level, message, fields) => lines.push({ level, message, ...(fields ? { fields } : {}) }) };

function service(options: { minRefreshIntervalMs?: number } = {}): AccountService {
  return new AccountService({ store: disk, clock, refresher: provider, logger, retryBaseMs: 10, retryMaxMs: 50, ...options });
}

/** An account whose access token has expired, logged in with the provider's live refresh token. */
async function expiredAccount(): Promise<AccountRecord> {
  const record: AccountRecord = { ...key, token: { access_token: 'at-0', token_type: 'Bearer', refresh_token: 'rt-0', expiry: nowS() - 10 }, updated_at: clock.now() - 3_600_000 };
  await disk.inner.put(record);
  return record;
}

const onDisk = (): Promise<AccountRecord | undefined> => disk.inner.get(key);

async function waitFor(check: () => Promise<boolean> | boolean, ms = 3_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
}

beforeEach(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'cp-acc-'));
  disk = new FailingDisk(path.join(dir, 'tokens'));
  provider = new RotatingProvider();
  lines = [];
  offsetMs = 0;
});
afterEach(() => fs.rm(dir, { recursive: true, force: true }));

describe('AccountService: a refreshed record the disk refuses is never dropped', () => {
  it('is served, used for the next refresh, retried in the background and written once the disk works', async () => {
    await expiredAccount();
    const accounts = service();
    disk.failing = true;
    const first = await getToken(accounts, key, 60);
    expect(first.access_token).toBe('at-1');
    expect((await onDisk())?.token.refresh_token).toBe('rt-0');
    expect(accounts.hasPendingWrite(key)).toBe(true);
    // Served from memory, and the next refresh presents rt-1 (not the consumed rt-0 on disk).
    expect((await getToken(accounts, key, 60)).access_token).toBe('at-1');
    const second = await accounts.refresh(key, undefined, { force: true });
    expect(second.token.access_token).toBe('at-2');
    expect(provider.grants).toEqual(['rt-0', 'rt-1']);
    // Even after forget() (what logout does before reading), the held record is the account's.
    accounts.forget(key);
    expect((await accounts.load(key))?.token.refresh_token).toBe('rt-2');
    expect((await accounts.status())[0]).toMatchObject({ state: 'valid' });
    // Logged as a warning, with the errno code and never a token byte.
    const warn = lines.find((l) => l.level === 'warn');
    expect(warn).toMatchObject({ fields: { provider: 'acme', bucket: 'default', error: 'EMFILE' } });
    expect(JSON.stringify(lines)).not.toMatch(/rt-\d|at-\d/);

    disk.failing = false;
    await waitFor(async () => (await onDisk())?.token.refresh_token === 'rt-2');
    // The file appears at the rename; the write's bookkeeping finishes just after it.
    await waitFor(async () => !accounts.hasPendingWrite(key));
    expect(accounts.hasPendingWrite(key)).toBe(false);
    expect(lines).toContainEqual(expect.objectContaining({ level: 'info', message: expect.stringMatching(/on disk now/) }));
    // No lock left behind by the failed attempts (the write that landed releases its own lock
    // just after the file appears: wait for that too).
    await waitFor(async () => (await fs.readdir(path.join(dir, 'tokens', 'acme'))).length === 1);
    expect(await fs.readdir(path.join(dir, 'tokens', 'acme'))).toEqual(['default.json']);
  });

  it('a later successful write of the account replaces the held record at once', async () => {
    await expiredAccount();
    const accounts = new AccountService({ store: disk, clock, refresher: provider, logger, retryBaseMs: 60_000 });
    disk.failing = true;
    await getToken(accounts, key, 60);
    disk.failing = false;
    await accounts.refresh(key, undefined, { force: true });
    expect((await onDisk())?.token.refresh_token).toBe('rt-2');
    expect(accounts.hasPendingWrite(key)).toBe(false);
  });

  it('close() makes one last write', async () => {
    await expiredAccount();
    const accounts = new AccountService({ store: disk, clock, refresher: provider, logger, retryBaseMs: 60_000 });
    disk.failing = true;
    await getToken(accounts, key, 60);
    disk.failing = false;
    await accounts.close();
    expect((await onDisk())?.token.refresh_token).toBe('rt-1');
    expect(accounts.hasPendingWrite(key)).toBe(false);
  });

  it('close() reports a record it still cannot write, without its bytes', async () => {
    await expiredAccount();
    const accounts = new AccountService({ store: disk, clock, refresher: provider, logger, retryBaseMs: 60_000 });
    disk.failing = true;
    await getToken(accounts, key, 60);
    await accounts.close();
    expect(lines).toContainEqual(expect.objectContaining({ level: 'error', message: expect.stringMatching(/need a new login/) }));
    expect(JSON.stringify(lines)).not.toMatch(/rt-\d|at-\d/);
  });

  it('a newer record another process wrote (a new login) wins over the held one; a refusal of an older refresh token does not', async () => {
    await expiredAccount();
    const accounts = service();
    disk.failing = true;
    await getToken(accounts, key, 60);
    // Another process tried the consumed rt-0 and marked the account needs_login: ours stays.
    await disk.inner.put({ ...key, token: { access_token: 'at-0', token_type: 'Bearer', refresh_token: 'rt-0' }, needs_login: true, updated_at: clock.now() + 1 });
    expect((await accounts.refresh(key, undefined, { force: true })).token.access_token).toBe('at-2');
    // Then a new login elsewhere: it is newer, so it is the account now.
    const relogin: AccountRecord = { ...key, token: { access_token: 'at-login', token_type: 'Bearer', refresh_token: 'rt-login', expiry: nowS() + 3600 }, updated_at: clock.now() + 10 };
    await disk.inner.put(relogin);
    disk.failing = false;
    await waitFor(() => !accounts.hasPendingWrite(key));
    expect(await onDisk()).toEqual(relogin);
  });

  it('remove() drops the held record: no retry writes it back', async () => {
    await expiredAccount();
    const accounts = service();
    disk.failing = true;
    await getToken(accounts, key, 60);
    expect(await accounts.withLock(key, () => accounts.remove(key))).toBe(true);
    disk.failing = false;
    await new Promise((r) => setTimeout(r, 150));
    expect(await onDisk()).toBeUndefined();
    await expect(getToken(accounts, key, 60)).rejects.toMatchObject({ code: ErrorCode.NOT_FOUND });
  });
});

describe('AccountService: refreshes are bounded in rate per account', () => {
  it('within the interval a refresh answers the token refreshed moments ago; force and near expiry still refresh', async () => {
    await expiredAccount();
    const accounts = service({ minRefreshIntervalMs: 30_000 });
    expect((await accounts.refresh(key)).token.access_token).toBe('at-1');
    for (let i = 0; i < 5; i++) {
      expect((await accounts.refresh(key)).token.access_token).toBe('at-1');
      expect((await getToken(accounts, key, 31_536_000)).access_token).toBe('at-1');
    }
    expect(provider.grants).toHaveLength(1);
    expect((await accounts.refresh(key, undefined, { force: true })).token.access_token).toBe('at-2');
    // After the interval, a refresh is allowed again.
    offsetMs += 30_000;
    expect((await accounts.refresh(key)).token.access_token).toBe('at-3');
    // A token that is near expiry is refreshed whatever the interval says.
    provider.ttl = 30;
    expect((await accounts.refresh(key, undefined, { force: true })).token.access_token).toBe('at-4');
    expect((await getToken(accounts, key, 60)).access_token).toBe('at-5');
    expect(provider.grants).toHaveLength(5);
  });
});

import { getEventListeners } from 'node:events';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { ExitCode } from '../exit-codes.js';
import { parseImportedToken, readLine, sessionFailure, sleep, waitForSession } from './login.js';

describe('readLine', () => {
  it('reads one pasted line', async () => {
    const stdin = new PassThrough();
    const line = readLine(stdin);
    stdin.write('code#state\n');
    await expect(line).resolves.toBe('code#state');
  });

  it('is cancelled by the signal while waiting', async () => {
    const stdin = new PassThrough();
    const ctl = new AbortController();
    const line = readLine(stdin, ctl.signal);
    ctl.abort();
    await expect(line).rejects.toMatchObject({ exitCode: ExitCode.INTERRUPTED });
  });

  // Ctrl-C can land while the URL is still being printed, before the prompt: the signal is then
  // already aborted, and waiting for a line would hang.
  it('gives up at once on a signal that was aborted before it was called', async () => {
    const stdin = new PassThrough();
    const ctl = new AbortController();
    ctl.abort();
    await expect(readLine(stdin, ctl.signal)).rejects.toMatchObject({ exitCode: ExitCode.INTERRUPTED });
    expect(stdin.listenerCount('data')).toBe(0);
  });
});

describe('waiting for a login', () => {
  it('leaves no abort listener behind per poll (no MaxListenersExceededWarning after 10 s)', async () => {
    const ctl = new AbortController();
    const warnings: Error[] = [];
    const onWarning = (w: Error): void => void warnings.push(w);
    process.on('warning', onWarning);
    try {
      for (let i = 0; i < 15; i++) await sleep(1, ctl.signal);
      expect(getEventListeners(ctl.signal, 'abort')).toHaveLength(0);
      // waitForSession against a proxy that stays pending for 12 polls, as a slow user would.
      let polls = 0;
      const proxy = { call: async () => ({ status: ++polls > 12 ? 'complete' : 'pending' }) } as unknown as Parameters<typeof waitForSession>[0];
      const result = await waitForSession(proxy, 'id', 1, { signal: ctl.signal });
      expect(result.status).toBe('complete');
      expect(getEventListeners(ctl.signal, 'abort')).toHaveLength(0);
      await new Promise((r) => setImmediate(r));
      expect(warnings.filter((w) => w.name === 'MaxListenersExceededWarning')).toEqual([]);
    } finally {
      process.off('warning', onWarning);
    }
  });
});

describe('how a login ended, said once', () => {
  it.each([
    ['denied', 'demo: the login was denied at the provider', 'login to demo: the login was denied at the provider — run `credproxy login demo` to try again'],
    ['cancelled', 'the login was cancelled', 'login to demo: the login was cancelled'],
    ['expired', 'the login was not completed in time', 'login to demo: expired: the login was not completed in time — run `credproxy login demo` to try again'],
    ['failed', undefined, 'login to demo: failed — run `credproxy login demo` to try again'],
  ] as const)('%s', (status, error, message) => {
    const err = sessionFailure({ status, ...(error ? { error } : {}) }, 'demo');
    expect(err.message).toBe(message);
    expect(err.message).not.toMatch(/(denied|cancelled)\b.*\b\1\b/);
  });
});

describe('login --with-token', () => {
  const now = Date.UTC(2026, 10, 30, 12);
  it('takes expires_in as seconds from now, and refuses an expired token', () => {
    expect(parseImportedToken('{"access_token":"at","expires_in":3600}', now)).toEqual({ access_token: 'at', expiry: now / 1000 + 3600 });
    expect(() => parseImportedToken(`{"access_token":"at","expiry":${now / 1000 - 5}}`, now)).toThrow(/expired/);
    expect(() => parseImportedToken('{"access_token":"at","expires_in":-1}', now)).toThrow(/expires_in/);
    expect(parseImportedToken('bare-token', now)).toEqual({ access_token: 'bare-token' });
  });
});

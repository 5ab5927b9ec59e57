/** Input the CLI used to accept in silence gets a clear error (issue 14 item 6). */
import { afterEach, describe, expect, it } from 'vitest';
import { cleanup, makeLayout, run, startServe, withClient } from './cli-harness.js';

afterEach(cleanup);

describe('no silent acceptance', () => {
  it('token --min-valid longer than the token can live, key set with a bad name, an expired --with-token', async () => {
    const layout = makeLayout();
    await startServe(layout);
    await withClient(layout.socket, (c) => c.call('save_token', { provider: 'short', token: { access_token: 'at-short', expiry: Math.floor(Date.now() / 1000) + 600 } }));
    const ok = await run(layout, ['token', 'short', '--min-valid', '300']);
    expect(ok).toMatchObject({ code: 0, stdout: 'at-short\n' });
    const tooLong = await run(layout, ['token', 'short', '--min-valid', '99999']);
    expect(tooLong.code).toBe(1);
    expect(tooLong.stdout).toBe('');
    expect(tooLong.stderr).toMatch(/valid for only \d+ s more, less than --min-valid 99999/);

    // The name is refused before anything is read: stdin holds a secret that must not be asked for.
    const bad = await run(layout, ['key', 'set', 'bad name'], { input: 'sk-should-not-be-read\n' });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("invalid key name 'bad name'");
    expect(bad.stderr).not.toContain('API key for');

    // client add: a grant of nothing is refused; grants naming nothing that exists are warned about.
    const nothing = await run(layout, ['client', 'add', 'idle']);
    expect(nothing.code).toBe(2);
    expect(nothing.stderr).toContain('would be granted nothing');
    const typo = await run(layout, ['client', 'add', 'agent', '--provider', 'shrt', '--api-key', 'opneai']);
    expect(typo.code, typo.stderr).toBe(0);
    expect(typo.stdout).toMatch(/^[0-9a-f]{64}\n$/);
    expect(typo.stderr).toContain('warning: no provider or account named shrt yet — did you mean `short`?');
    expect(typo.stderr).toContain('warning: no API key named opneai yet');

    const expired = await run(layout, ['login', 'imported', '--with-token'], { input: JSON.stringify({ access_token: 'x', expiry: 1000 }) });
    expect(expired.code).toBe(2);
    expect(expired.stderr).toContain('expired');
    const withIn = await run(layout, ['login', 'imported', '--with-token'], { input: JSON.stringify({ access_token: 'x', expires_in: 3600 }) });
    expect(withIn.code, withIn.stderr).toBe(0);
    const status = JSON.parse((await run(layout, ['status', '--json'])).stdout);
    const imported = status.accounts.find((a: { provider: string }) => a.provider === 'imported');
    expect(imported.expiry).toBeGreaterThan(Math.floor(Date.now() / 1000) + 3500);
  });
});

describe('provider add checks discovery', () => {
  it('refuses an issuer it cannot reach (naming --no-check), accepts a reachable one, and --no-check skips', async () => {
    const { startTestAuthServer } = await import('@credproxy/testkit');
    const as = await startTestAuthServer();
    try {
      const layout = makeLayout();
      const down = await run(layout, ['provider', 'add', 'gone', '--issuer', 'http://127.0.0.1:9', '--client-id', 'x']);
      expect(down.code).toBe(1);
      expect(down.stderr).toContain('--no-check');
      expect(down.stderr).toMatch(/127\.0\.0\.1:9/);
      const list = await run(layout, ['provider', 'list', '--json']);
      expect(JSON.parse(list.stdout).providers).toEqual([]);

      expect((await run(layout, ['provider', 'add', 'gone', '--issuer', 'http://127.0.0.1:9', '--client-id', 'x', '--no-check'])).code).toBe(0);
      const up = await run(layout, ['provider', 'add', 'acme', '--issuer', as.issuer, '--client-id', 'native']);
      expect(up.code, up.stderr).toBe(0);
      expect(up.stderr).toContain(`checked: ${as.issuer}`);
    } finally {
      await as.close();
    }
  });
});

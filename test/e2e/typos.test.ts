/**
 * A typo gets "did you mean" from the names that exist (issue 14 item 2), instead of a fix that
 * sends the user round in a loop (`token demoo` → "run `credproxy login demoo`" → no such provider).
 */
import fs from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { cleanup, makeLayout, run, startServe, withClient } from './cli-harness.js';

afterEach(cleanup);

describe('did you mean', () => {
  it('names the closest provider, bucket and key, and what exists', async () => {
    const layout = makeLayout();
    fs.writeFileSync(
      layout.env.CREDPROXY_CONFIG!,
      JSON.stringify({ providers: { demo: { authorization_endpoint: 'http://127.0.0.1:9/auth', token_endpoint: 'http://127.0.0.1:9/token', client_id: 'x', flow: 'pkce_redirect' } } }),
    );
    await startServe(layout);
    await withClient(layout.socket, (c) => c.call('save_token', { provider: 'demo', bucket: 'work', token: { access_token: 'at-typo', expiry: Math.floor(Date.now() / 1000) + 3600 } }));
    expect((await run(layout, ['key', 'set', 'openai'], { input: 'sk-typo\n' })).code).toBe(0);

    const provider = await run(layout, ['token', 'demoo']);
    expect(provider.code).not.toBe(0);
    expect(provider.stderr).toContain('no provider named demoo — did you mean `demo`?');
    expect(provider.stderr).not.toContain('credproxy login demoo');

    const bucket = await run(layout, ['token', 'demo', '--bucket', 'wrok']);
    expect(bucket.stderr).toContain('did you mean `work`?');

    const exec = await run(layout, ['exec', '--provider', 'dem', '--', 'true']);
    expect(exec.stderr).toContain('did you mean `demo`?');

    const key = await run(layout, ['key', 'get', 'openia']);
    expect(key.code).toBe(1);
    expect(key.stderr).toContain('no API key named openia — did you mean `openai`?');
    const remove = await run(layout, ['key', 'remove', 'opneai']);
    expect(remove.code).toBe(1);
    expect(remove.stderr).toContain('did you mean `openai`?');

    const logout = await run(layout, ['logout', 'demoo']);
    expect(logout.code).toBe(1);
    expect(logout.stderr).toContain('did you mean `demo`?');

    // Nothing close: the proxy's own message stands (no guess).
    const far = await run(layout, ['token', 'zzzzzz']);
    expect(far.stderr).not.toContain('did you mean');
  });
});

describe('login for a provider that does not exist', () => {
  it('says did you mean, and stops the proxy it started for nothing; a started proxy says where it logs', async () => {
    const layout = makeLayout();
    fs.writeFileSync(layout.env.CREDPROXY_CONFIG!, JSON.stringify({ providers: { demo: { authorization_endpoint: 'http://127.0.0.1:9/a', token_endpoint: 'http://127.0.0.1:9/t', client_id: 'x' } } }));
    const login = await run(layout, ['login', 'demoo', '--no-browser']);
    expect(login.code).not.toBe(0);
    expect(login.stderr).toMatch(/started it \(pid \d+\) on .*; it logs to .*proxy\.log/);
    expect(login.stderr).toContain('did you mean `demo`?');
    const ping = await run(layout, ['ping']);
    expect(ping.code).toBe(5);
  });
});

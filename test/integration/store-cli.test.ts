/**
 * `credproxy serve` and `credproxy store status|rekey` as a user runs them (the built CLI): a
 * fresh machine gets an encrypted store with a loud notice once; status shows the backend and
 * key source, `--json` exactly the op's data; rekey; two `serve` processes on one Redis with one
 * key file; no key or secret byte in any output.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanup, makeLayout, run, startServe, withClient, type Layout } from '../e2e/cli-harness.js';
import { startTestRedis, type TestRedis } from '../support/redis.js';

let redis: TestRedis;
beforeAll(async () => {
  redis = await startTestRedis();
});
afterAll(async () => {
  await cleanup();
  await redis.close();
});

const noKeyring = (l: Layout): Layout => ({ ...l, env: { ...l.env, CREDPROXY_NO_KEYRING: '1' } });

describe('credproxy store (built CLI)', () => {
  it('a fresh serve encrypts with a key file it makes in the config dir, says so once; status, --json and rekey', async () => {
    const layout = noKeyring(makeLayout());
    const serve = await startServe(layout);
    expect(serve.stderr()).toMatch(/NOTICE: no key source is configured/);
    const keyFile = path.join(layout.dir, 'store.key');
    const keyBytes = (await fs.readFile(keyFile, 'utf8')).trim();
    const secret = `sk-${randomBytes(12).toString('hex')}`;
    expect((await run(layout, ['key', 'set', 'openai'], { input: secret })).code).toBe(0);

    const text = await run(layout, ['store', 'status']);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/backend:\s+file/);
    expect(text.stdout).toMatch(/key source:\s+key file created by credproxy in the config dir/);
    expect(text.stdout).toContain('1 API keys');
    const json = await run(layout, ['store', 'status', '--json']);
    const data = JSON.parse(json.stdout);
    expect(data).toEqual(await withClient(layout.socket, (c) => c.call('store_status', {})));
    expect(data).toMatchObject({ backend: 'file', key_source: 'auto_key_file', encrypted: true });

    const rekey = await run(layout, ['store', 'rekey', '--json']);
    expect(rekey.code).toBe(0);
    expect(JSON.parse(rekey.stdout)).toMatchObject({ rekeyed: { api_keys: 1 } });
    expect(JSON.parse(rekey.stdout).data_key_id).not.toBe(data.data_key_id);
    expect(await withClient(layout.socket, (c) => c.call('get_api_key', { name: 'openai' }))).toEqual({ key: secret });

    for (const out of [text.stdout, text.stderr, json.stdout, rekey.stdout, serve.stderr()]) {
      expect(out).not.toContain(keyBytes);
      expect(out).not.toContain(secret);
    }
  });

  it('two serve processes on one Redis (one key file) share API keys; without the key file a Redis store refuses to start', async () => {
    const keyDir = makeLayout().dir;
    const keyFile = path.join(keyDir, 'fleet.key');
    await fs.writeFile(keyFile, randomBytes(32), { mode: 0o600 });
    const prefix = `cli${randomBytes(3).toString('hex')}:`;
    const layouts: Layout[] = [makeLayout(), makeLayout()].map((l) => ({ ...l, env: { ...l.env, CREDPROXY_KEY_FILE: keyFile } }));
    for (const l of layouts) await fs.writeFile(l.env.CREDPROXY_CONFIG!, JSON.stringify({ store: { type: 'redis', url: redis.url, prefix } }));

    const refused = await run({ ...layouts[0]!, env: { ...layouts[0]!.env, CREDPROXY_KEY_FILE: '' } }, ['serve']);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/a Redis store needs an explicit key: set CREDPROXY_KEY_FILE/);

    await Promise.all(layouts.map((l) => startServe(l)));
    const secret = `sk-${randomBytes(12).toString('hex')}`;
    expect((await run(layouts[0]!, ['key', 'set', 'shared'], { input: secret })).code).toBe(0);
    const status = JSON.parse((await run(layouts[1]!, ['store', 'status', '--json'])).stdout);
    expect(status).toMatchObject({ backend: 'redis', key_source: 'key_file', encrypted: true, connected: true, records: { api_keys: 1 } });
    expect(status.location).toContain(prefix);
    const got = await withClient(layouts[1]!.socket, (c) => c.call('get_api_key', { name: 'shared' }));
    expect(got).toEqual({ key: secret });
  });
});

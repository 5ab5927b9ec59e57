/**
 * Issue 10, item 5: get_api_key is served from memory, and memory follows the keys on disk. A key
 * that another process writes, replaces or removes in the shared data dir — by hand, or through
 * a second proxy on the same data dir — is what the proxy serves within a bounded time.
 */
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ErrorCode, ProxyClient, resolvePaths, startProxy, type RunningProxy } from '../../packages/core/src/index.js';
import { KEY_RECHECK_MS } from '../../packages/core/src/store/api-keys.js';
import { cleanupTestEnv, startTestProxy, tempDir } from '../support/temp.js';

/** How long a change on disk may take to be served: inotify delivers in milliseconds. */
const BOUND_MS = 1_000;

const opened: ProxyClient[] = [];
const extra: RunningProxy[] = [];
afterEach(async () => {
  for (const c of opened.splice(0)) c.close();
  await Promise.all(extra.splice(0).map((p) => p.stop()));
  await cleanupTestEnv();
});

async function setup() {
  // Other processes write key files by hand here, so the store is plaintext (encryption at
  // rest: store-encryption.test.ts).
  const dir = await tempDir();
  await fs.writeFile(path.join(dir, 'config.json'), JSON.stringify({ encryption: 'none' }));
  const { proxy, layout } = await startTestProxy({}, dir);
  const owner = await ProxyClient.connect({ socketPath: proxy.socketPath });
  opened.push(owner);
  const keyFile = (name: string): string => path.join(layout.dataDir, 'keys', `${name}.key`);
  /** What get_api_key answers now: the key, or the error code. */
  const served = async (name: string): Promise<string> => {
    try {
      return ((await owner.call('get_api_key', { name })) as { key: string }).key;
    } catch (err) {
      return `error:${(err as { code?: string }).code}`;
    }
  };
  return { proxy, layout, owner, keyFile, served };
}

/** Run `code` in another node process (argv after the script: `args`) and wait for it to exit 0. */
async function inAnotherProcess(code: string, ...args: string[]): Promise<void> {
  const proc = spawn(process.execPath, ['-e', code, '--', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const status = await new Promise<number | null>((resolve) => proc.on('exit', resolve));
  if (status !== 0) throw new Error(`child failed (${status}): ${stderr}`);
}

/** Ask until `served` answers `want`; how long that took after the change. */
async function seenWithin(served: () => Promise<string>, want: string): Promise<number> {
  const start = Date.now();
  for (;;) {
    const got = await served();
    if (got === want) return Date.now() - start;
    if (Date.now() - start > 5_000) throw new Error(`still serving ${JSON.stringify(got)}, not ${JSON.stringify(want)}, 5 s after the change`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

const WRITE_IN_PLACE = `require('fs').writeFileSync(process.argv[1], process.argv[2])`;
const WRITE_BY_RENAME = `const fs = require('fs'); const [, file, key] = process.argv;
  fs.writeFileSync(file + '.other.tmp', key, { mode: 0o600 }); fs.renameSync(file + '.other.tmp', file);`;
const REMOVE = `require('fs').unlinkSync(process.argv[1])`;

describe('get_api_key follows changes made by other processes', () => {
  it('a key another process rewrites in place is served within the bound', async () => {
    const { owner, keyFile, served } = await setup();
    await owner.call('set_api_key', { name: 'openai', key: 'sk-first' });
    expect(await served('openai')).toBe('sk-first');
    expect(await served('openai')).toBe('sk-first'); // now from memory
    await inAnotherProcess(WRITE_IN_PLACE, keyFile('openai'), 'sk-written-in-place');
    expect(await seenWithin(() => served('openai'), 'sk-written-in-place')).toBeLessThan(BOUND_MS);
  });

  it('a key another process replaces by rename (as credproxy writes) is served within the bound', async () => {
    const { owner, keyFile, served } = await setup();
    await owner.call('set_api_key', { name: 'openai', key: 'sk-first' });
    expect(await served('openai')).toBe('sk-first');
    await inAnotherProcess(WRITE_BY_RENAME, keyFile('openai'), 'sk-renamed-over');
    expect(await seenWithin(() => served('openai'), 'sk-renamed-over')).toBeLessThan(BOUND_MS);
  });

  it('a key another process removes is gone (NOT_FOUND) within the bound', async () => {
    const { owner, keyFile, served } = await setup();
    await owner.call('set_api_key', { name: 'openai', key: 'sk-first' });
    expect(await served('openai')).toBe('sk-first');
    await inAnotherProcess(REMOVE, keyFile('openai'));
    expect(await seenWithin(() => served('openai'), `error:${ErrorCode.NOT_FOUND}`)).toBeLessThan(BOUND_MS);
    expect(await owner.call('has_api_key', { name: 'openai' })).toEqual({ exists: false });
  });

  it('a key another process adds after a NOT_FOUND answer is served within the bound', async () => {
    const { keyFile, served } = await setup();
    expect(await served('late')).toBe(`error:${ErrorCode.NOT_FOUND}`);
    expect(await served('late')).toBe(`error:${ErrorCode.NOT_FOUND}`); // remembered as missing
    await inAnotherProcess(WRITE_BY_RENAME, keyFile('late'), 'sk-late');
    expect(await seenWithin(() => served('late'), 'sk-late')).toBeLessThan(BOUND_MS);
  });

  it('`key set` and `key remove` through a second proxy on the same data dir are seen by the first', async () => {
    const { layout, owner, served } = await setup();
    await owner.call('set_api_key', { name: 'shared', key: 'sk-from-first' });
    expect(await served('shared')).toBe('sk-from-first');

    const second = await startProxy({ paths: resolvePaths({ env: layout.env, socketPath: path.join(layout.dir, 'run', 'second.sock') }) });
    extra.push(second);
    const other = await ProxyClient.connect({ socketPath: second.socketPath });
    opened.push(other);
    expect(await other.call('get_api_key', { name: 'shared' })).toEqual({ key: 'sk-from-first' });

    await other.call('set_api_key', { name: 'shared', key: 'sk-from-second' });
    expect(await seenWithin(() => served('shared'), 'sk-from-second')).toBeLessThan(BOUND_MS);
    await other.call('remove_api_key', { name: 'shared' });
    expect(await seenWithin(() => served('shared'), `error:${ErrorCode.NOT_FOUND}`)).toBeLessThan(BOUND_MS);
    // And the other way round.
    await owner.call('set_api_key', { name: 'shared', key: 'sk-back-on-first' });
    expect(await seenWithin(async () => ((await other.call('get_api_key', { name: 'shared' }).catch(() => ({ key: '' }))) as { key: string }).key, 'sk-back-on-first')).toBeLessThan(BOUND_MS);
  });

  it('after one read the key is answered from memory, and stays there while nothing changes (keys/ is watched)', async () => {
    const { proxy, owner, served } = await setup();
    await owner.call('set_api_key', { name: 'hot', key: 'sk-hot' });
    expect(proxy.services.apiKeys.cached('hot')).toBeUndefined();
    expect(await served('hot')).toBe('sk-hot');
    expect(proxy.services.apiKeys.cached('hot')).toEqual({ key: 'sk-hot' });
    // Past the re-read interval used when watching is unavailable: the watch is live here.
    await new Promise((r) => setTimeout(r, KEY_RECHECK_MS + 100));
    expect(proxy.services.apiKeys.cached('hot')).toEqual({ key: 'sk-hot' });
  });

  it("the proxy's own key set and key remove are answered by the very next get_api_key", async () => {
    const { owner, served } = await setup();
    await owner.call('set_api_key', { name: 'own', key: 'sk-1' });
    expect(await served('own')).toBe('sk-1');
    await owner.call('set_api_key', { name: 'own', key: 'sk-2' });
    expect(await served('own')).toBe('sk-2');
    await owner.call('remove_api_key', { name: 'own' });
    expect(await served('own')).toBe(`error:${ErrorCode.NOT_FOUND}`);
  });

  it('keys/ made writable by others is refused on the next read even though the key was in memory (issue 9, item 10)', async () => {
    const { layout, owner, served } = await setup();
    await owner.call('set_api_key', { name: 'openai', key: 'sk-first' });
    expect(await served('openai')).toBe('sk-first');
    const keysDir = path.join(layout.dataDir, 'keys');
    await inAnotherProcess(`require('fs').chmodSync(process.argv[1], 0o777)`, keysDir);
    expect(await seenWithin(() => served('openai'), `error:${ErrorCode.FORBIDDEN}`)).toBeLessThan(BOUND_MS);
    await fs.chmod(keysDir, 0o700);
    expect(await seenWithin(() => served('openai'), 'sk-first')).toBeLessThan(BOUND_MS);
  });
});

import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigSource } from '../config/config-file.js';
import { RouteCatalog } from './route-catalog.js';

const dirs: string[] = [];
const catalogs: RouteCatalog[] = [];
afterEach(async () => {
  for (const c of catalogs.splice(0)) c.close();
  for (const d of dirs.splice(0)) await fs.rm(d, { recursive: true, force: true });
});

async function setup(): Promise<{ dir: string; file: string }> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'cprcat-'));
  dirs.push(dir);
  return { dir, file: path.join(dir, 'config.json') };
}

const config = (...names: string[]): string =>
  JSON.stringify({ routes: Object.fromEntries(names.map((n) => [n, { preset: 'openai', api_key: 'k' }])) });

/** The catalog's routes once it has seen `names` (a watched change lands within milliseconds). */
async function routesSettle(catalog: RouteCatalog, names: string[]): Promise<string[]> {
  let seen: string[] = [];
  for (let i = 0; i < 200; i++) {
    seen = [...(await catalog.all()).keys()].sort();
    if (JSON.stringify(seen) === JSON.stringify([...names].sort())) return seen;
    await new Promise((r) => setTimeout(r, 10));
  }
  return seen;
}

describe('RouteCatalog with the config directory watched', () => {
  it('sees a change another process writes, and a removal at the next request', async () => {
    const { file } = await setup();
    await fs.writeFile(file, config('a'));
    const catalog = new RouteCatalog(new ConfigSource(file), { watch: true });
    catalogs.push(catalog);
    expect([...(await catalog.all()).keys()]).toEqual(['a']);
    // Another process, as `credproxy route add` from a terminal would be.
    execFileSync(process.execPath, ['-e', `require('fs').writeFileSync(${JSON.stringify(file)}, ${JSON.stringify(config('a', 'b'))})`]);
    expect(await routesSettle(catalog, ['a', 'b'])).toEqual(['a', 'b']);
    await fs.writeFile(file, config('b'));
    expect(await routesSettle(catalog, ['b'])).toEqual(['b']);
    await fs.rm(file);
    expect(await routesSettle(catalog, [])).toEqual([]);
  });

  it('follows a config file that is a symbolic link to a file elsewhere (no event reaches the directory)', async () => {
    const { file } = await setup();
    const { file: target } = await setup();
    await fs.writeFile(target, config('a'));
    await fs.symlink(target, file);
    const catalog = new RouteCatalog(new ConfigSource(file), { watch: true });
    catalogs.push(catalog);
    expect([...(await catalog.all()).keys()]).toEqual(['a']);
    await new Promise((r) => setTimeout(r, 50));
    await fs.writeFile(target, config('c'));
    // No wait: the link is stat-ed on every request.
    expect([...(await catalog.all()).keys()]).toEqual(['c']);
  });

  it('reads a file that failed again at the next request, changed or not', async () => {
    const { file } = await setup();
    await fs.writeFile(file, JSON.stringify({ routes: { bad: { upstream: 'http://example.com', api_key: 'k' } } }));
    const catalog = new RouteCatalog(new ConfigSource(file), { watch: true });
    catalogs.push(catalog);
    await expect(catalog.all()).rejects.toThrow(/plain http/);
    await new Promise((r) => setTimeout(r, 50));
    await expect(catalog.all()).rejects.toThrow(/plain http/);
    await fs.writeFile(file, config('a'));
    expect(await routesSettle(catalog, ['a'])).toEqual(['a']);
  });
});

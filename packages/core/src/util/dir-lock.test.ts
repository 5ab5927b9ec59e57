import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { lockDir, LockedError } from './dir-lock.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await fs.rm(d, { recursive: true, force: true });
});

async function file(): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'cplock-'));
  dirs.push(dir);
  return path.join(dir, 'p.sock.pid');
}

const quiet = { staleMs: 10_000, updateMs: 5_000, onCompromised: (): void => undefined };

describe('lockDir', () => {
  it('excludes a second holder until released, then lets it in', async () => {
    const f = await file();
    const release = await lockDir(f, quiet);
    expect((await fs.stat(`${f}.lock`)).isDirectory()).toBe(true);
    const second = await lockDir(f, quiet).catch((e: unknown) => e);
    expect(second).toBeInstanceOf(LockedError);
    expect((second as LockedError).code).toBe('ELOCKED');
    await release();
    await expect(fs.stat(`${f}.lock`)).rejects.toMatchObject({ code: 'ENOENT' });
    const again = await lockDir(f, quiet);
    await again();
  });

  it('takes over a lock whose holder stopped refreshing it (older than staleMs)', async () => {
    const f = await file();
    await fs.mkdir(`${f}.lock`);
    const old = new Date(Date.now() - 60_000);
    await fs.utimes(`${f}.lock`, old, old);
    const release = await lockDir(f, quiet);
    expect(Date.now() - (await fs.stat(`${f}.lock`)).mtimeMs).toBeLessThan(10_000);
    await release();
  });

  it('keeps its mtime fresh while held, so it is never taken for stale', async () => {
    const f = await file();
    const release = await lockDir(f, { ...quiet, staleMs: 300, updateMs: 50 });
    const old = new Date(Date.now() - 60_000);
    await fs.utimes(`${f}.lock`, old, old);
    await new Promise((r) => setTimeout(r, 200));
    expect(Date.now() - (await fs.stat(`${f}.lock`)).mtimeMs).toBeLessThan(300);
    await expect(lockDir(f, { ...quiet, staleMs: 300 })).rejects.toBeInstanceOf(LockedError);
    await release();
  });

  it('reports a lock it cannot keep (its directory removed) as compromised, once', async () => {
    const f = await file();
    const seen: Error[] = [];
    const release = await lockDir(f, { staleMs: 300, updateMs: 30, onCompromised: (e) => seen.push(e) });
    await fs.rm(`${f}.lock`, { recursive: true });
    await new Promise((r) => setTimeout(r, 200));
    expect(seen.length).toBe(1);
    expect((seen[0] as NodeJS.ErrnoException).code).toBe('ENOENT');
    await release();
  });
});

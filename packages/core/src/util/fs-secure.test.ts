import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ErrorCode } from '../protocol/errors.js';
import { ensureDataDir, ensurePrivateDir, ensureUserDir, readFileIfExists, readSecretFile, removeFile, writeFileAtomic } from './fs-secure.js';

let dir: string;
beforeEach(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'cp-fs-'));
});
afterEach(async () => {
  await fs.chmod(dir, 0o700).catch(() => undefined);
  await fs.rm(dir, { recursive: true, force: true });
});

const mode = async (p: string): Promise<number> => (await fs.stat(p)).mode & 0o777;

describe('ensurePrivateDir', () => {
  it('creates missing directories 0700', async () => {
    const run = path.join(dir, 'a', 'b');
    await ensurePrivateDir(run);
    expect(await mode(run)).toBe(0o700);
  });

  it('accepts an existing 0700 directory', async () => {
    await expect(ensurePrivateDir(dir)).resolves.toBeUndefined();
  });

  it.each([0o770, 0o750, 0o707, 0o705])('refuses a directory with mode %s, naming the fix', async (m) => {
    const run = path.join(dir, 'run');
    await fs.mkdir(run);
    await fs.chmod(run, m);
    const err = await ensurePrivateDir(run).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: ErrorCode.FORBIDDEN });
    expect((err as Error).message).toContain(run);
    expect((err as Error).message).toContain('chmod 700');
    // It does not "fix" the mode behind the user's back.
    expect(await mode(run)).toBe(m);
  });

  it('refuses a path that is not a directory', async () => {
    const file = path.join(dir, 'f');
    await fs.writeFile(file, 'x');
    await expect(ensurePrivateDir(file)).rejects.toThrow();
  });
});

describe('ensureDataDir', () => {
  it('creates missing directories 0700', async () => {
    const data = path.join(dir, 'd', 'e');
    await ensureDataDir(data);
    expect(await mode(data)).toBe(0o700);
  });

  it('accepts an existing 0700 directory of ours', async () => {
    await expect(ensureDataDir(dir)).resolves.toBeUndefined();
  });

  // Issue 9, item 10: anyone who can write in a data dir can plant a key file or a symlink.
  it.each([0o777, 0o770, 0o707, 0o755, 0o750, 0o705])('refuses an existing directory with mode %s, naming the fix, without changing it', async (m) => {
    const data = path.join(dir, 'data');
    await fs.mkdir(data);
    await fs.chmod(data, m);
    const err = await ensureDataDir(data).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: ErrorCode.FORBIDDEN });
    expect((err as Error).message).toContain(`chmod 700 ${data}`);
    expect(await mode(data)).toBe(m);
  });

  it.runIf(process.getuid?.() === 0)('refuses a directory that belongs to another uid, naming chown', async () => {
    const data = path.join(dir, 'data');
    await fs.mkdir(data, { mode: 0o700 });
    await fs.chown(data, 4242, 4242);
    const err = await ensureDataDir(data).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: ErrorCode.FORBIDDEN });
    expect((err as Error).message).toMatch(/belongs to uid 4242.*chown/);
  });

  it('refuses a path that is not a directory', async () => {
    const file = path.join(dir, 'f');
    await fs.writeFile(file, 'x');
    await expect(ensureDataDir(file)).rejects.toThrow();
  });
});

describe('ensureUserDir', () => {
  it('creates missing directories 0700', async () => {
    const conf = path.join(dir, 'd', 'e');
    await ensureUserDir(conf);
    expect(await mode(conf)).toBe(0o700);
  });

  it('leaves the mode of an existing directory alone (it may be $HOME)', async () => {
    const home = path.join(dir, 'home');
    await fs.mkdir(home);
    await fs.chmod(home, 0o755);
    await ensureUserDir(home);
    expect(await mode(home)).toBe(0o755);
  });
});

describe('writeFileAtomic', () => {
  it('writes 0600 files, even over a wider existing file', async () => {
    const file = path.join(dir, 'secret.json');
    await fs.writeFile(file, 'old', { mode: 0o644 });
    await writeFileAtomic(file, 'new');
    expect(await fs.readFile(file, 'utf8')).toBe('new');
    expect(await mode(file)).toBe(0o600);
  });

  it('writes bytes as given', async () => {
    const file = path.join(dir, 'bin');
    await writeFileAtomic(file, new Uint8Array([0, 255, 1]));
    expect([...(await fs.readFile(file))]).toEqual([0, 255, 1]);
  });

  it('leaves no temp files behind', async () => {
    const file = path.join(dir, 'x.json');
    await Promise.all(Array.from({ length: 20 }, (_, i) => writeFileAtomic(file, `{"n":${i}}`)));
    expect(await fs.readdir(dir)).toEqual(['x.json']);
    expect(JSON.parse(await fs.readFile(file, 'utf8'))).toHaveProperty('n');
  });

  it('keeps the old content and cleans up when the write cannot happen', async () => {
    const file = path.join(dir, 'x.json');
    await writeFileAtomic(file, 'old');
    // The target is a directory: the rename fails after the temp file was written.
    const target = path.join(dir, 'sub');
    await fs.mkdir(path.join(target, 'child'), { recursive: true });
    await expect(writeFileAtomic(target, 'new')).rejects.toThrow();
    expect((await fs.readdir(dir)).sort()).toEqual(['sub', 'x.json']);
    expect(await fs.readFile(file, 'utf8')).toBe('old');
  });

  it('fails when the directory is missing (callers create it first)', async () => {
    await expect(writeFileAtomic(path.join(dir, 'nope', 'f'), 'x')).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

describe('readFileIfExists / removeFile', () => {
  it('reads or answers undefined', async () => {
    const file = path.join(dir, 'f');
    expect(await readFileIfExists(file)).toBeUndefined();
    await fs.writeFile(file, 'hé');
    expect(await readFileIfExists(file)).toBe('hé');
  });

  it('removes and says whether the file existed', async () => {
    const file = path.join(dir, 'f');
    await fs.writeFile(file, 'x');
    expect(await removeFile(file)).toBe(true);
    expect(await removeFile(file)).toBe(false);
  });

  it('passes other errors on', async () => {
    await expect(readFileIfExists(dir)).rejects.toMatchObject({ code: 'EISDIR' });
  });
});

describe('secret files are read without following links (issue 9, item 10)', () => {
  it('refuses a symlink, never returning its target', async () => {
    const target = path.join(dir, 'owners-file');
    await fs.writeFile(target, 'OWNER-PRIVATE-BYTES');
    const link = path.join(dir, 'openai.key');
    await fs.symlink(target, link);
    for (const read of [readFileIfExists, readSecretFile]) {
      const err = await read(link).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: ErrorCode.FORBIDDEN });
      expect((err as Error).message).toContain('symbolic link');
      expect((err as Error).message).not.toContain('OWNER-PRIVATE');
    }
  });

  it('refuses a dangling symlink instead of calling the file missing', async () => {
    const link = path.join(dir, 'k.key');
    await fs.symlink(path.join(dir, 'nowhere'), link);
    await expect(readFileIfExists(link)).rejects.toMatchObject({ code: ErrorCode.FORBIDDEN });
  });

  it('refuses a FIFO at once instead of hanging on it', async () => {
    const fifo = path.join(dir, 'k.key');
    execFileSync('mkfifo', [fifo]);
    await expect(readFileIfExists(fifo)).rejects.toThrow(/not a regular file/);
  });

  it.runIf(process.getuid?.() === 0)('refuses a file that belongs to another uid', async () => {
    const file = path.join(dir, 'k.key');
    await fs.writeFile(file, 'PLANTED');
    await fs.chown(file, 4242, 4242);
    await expect(readFileIfExists(file)).rejects.toThrow(/belongs to uid 4242/);
  });

  it.each([0o777, 0o770, 0o722])('readSecretFile refuses a file in a directory with mode %s', async (m) => {
    const keys = path.join(dir, 'keys');
    await fs.mkdir(keys);
    await fs.writeFile(path.join(keys, 'k.key'), 'x');
    await fs.chmod(keys, m);
    const err = await readSecretFile(path.join(keys, 'k.key')).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: ErrorCode.FORBIDDEN });
    expect((err as Error).message).toContain(`chmod 700 ${keys}`);
  });

  it('readSecretFile reads a file of ours in a directory others can only read, and answers undefined when either is missing', async () => {
    const keys = path.join(dir, 'keys');
    expect(await readSecretFile(path.join(keys, 'k.key'))).toBeUndefined();
    await fs.mkdir(keys, { mode: 0o755 });
    expect(await readSecretFile(path.join(keys, 'k.key'))).toBeUndefined();
    await fs.writeFile(path.join(keys, 'k.key'), 'v');
    expect(await readSecretFile(path.join(keys, 'k.key'))).toBe('v');
  });
});

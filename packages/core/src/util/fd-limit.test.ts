import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { connectionCap, DESCRIPTORS_RESERVED, readOpenFilesLimit } from './fd-limit.js';

const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => fs.rm(d, { recursive: true, force: true })));
});

async function limitsFile(line: string): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'cp-fd-'));
  dirs.push(dir);
  const file = path.join(dir, 'limits');
  await fs.writeFile(
    file,
    'Limit                     Soft Limit           Hard Limit           Units     \n' +
      'Max processes             63311                63311                processes \n' +
      `${line}\n` +
      'Max locked memory         8388608              8388608              bytes     \n',
  );
  return file;
}

describe('readOpenFilesLimit', () => {
  it('reads the soft limit, not the hard one', async () => {
    expect(readOpenFilesLimit(await limitsFile('Max open files            1024                 524288               files     '))).toBe(1024);
  });

  it('reads "unlimited" as no limit, and a missing or odd file as unknown', async () => {
    expect(readOpenFilesLimit(await limitsFile('Max open files            unlimited            unlimited            files     '))).toBe(Number.POSITIVE_INFINITY);
    expect(readOpenFilesLimit(await limitsFile('Max open files            lots                 lots                 files     '))).toBeUndefined();
    expect(readOpenFilesLimit('/nonexistent/limits')).toBeUndefined();
  });

  it('reads this process on Linux', () => {
    if (process.platform !== 'linux') return;
    expect(readOpenFilesLimit()).toBeGreaterThan(0);
  });
});

describe('connectionCap', () => {
  it('keeps the requested cap when the limit leaves room for it', () => {
    expect(connectionCap(1024, 20_000)).toBe(1024);
    expect(connectionCap(1024, Number.POSITIVE_INFINITY)).toBe(1024);
    expect(connectionCap(1024, undefined)).toBe(1024);
  });

  it('fits the cap under the limit, keeping descriptors for files and upstream requests', () => {
    expect(connectionCap(1024, 1024)).toBe(1024 - DESCRIPTORS_RESERVED);
    expect(connectionCap(1024, 256)).toBe(256 - DESCRIPTORS_RESERVED);
    expect(connectionCap(1024, 20)).toBe(16);
  });
});

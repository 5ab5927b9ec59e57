import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { GENESIS_PREV, lineHash, verifyAuditChain } from './audit-chain.js';
import { AuditLog } from './audit-log.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tempFile(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'cp-audit-'));
  dirs.push(dir);
  return path.join(dir, 'audit.log');
}

let now = Date.UTC(2026, 10, 30);
const clock = { now: () => (now += 7) };

async function writeLines(file: string, n: number, options: { maxBytes?: number; keep?: number } = {}): Promise<void> {
  const log = new AuditLog({ file, clock, ...options });
  for (let i = 0; i < n; i++) {
    if (i % 3 === 0) log.record({ event: 'connect', client: 'none', op: 'connect', outcome: 'ok', pid: i });
    else log.op(i % 2 ? 'agent' : 'owner', 'get_token', 'ok', 'github', 'default', i / 10, 1000 + i);
  }
  await log.close();
}

function lines(file: string): string[] {
  return readFileSync(file, 'utf8').split('\n').filter((l) => l !== '');
}

describe('the audit hash chain', () => {
  it('starts at 64 zeros and chains every line to the SHA-256 of the one before', async () => {
    const file = tempFile();
    await writeLines(file, 20);
    const rows = lines(file);
    expect(rows).toHaveLength(20);
    expect(JSON.parse(rows[0]!).prev).toBe(GENESIS_PREV);
    for (let i = 1; i < rows.length; i++) expect(JSON.parse(rows[i]!).prev).toBe(lineHash(rows[i - 1]!));
    expect(verifyAuditChain(file)).toMatchObject({ ok: true, lines: 20, fromGenesis: true });
  });

  it('goes on across a restart and across rotated files', async () => {
    const file = tempFile();
    await writeLines(file, 30, { maxBytes: 2048 });
    await writeLines(file, 30, { maxBytes: 2048 }); // a second proxy life, same files
    const report = verifyAuditChain(file);
    expect(report.files.length).toBeGreaterThan(1);
    expect(report).toMatchObject({ ok: true, lines: 60 });
    // The first line of each newer file chains to the last line of the file before it.
    const [older, newer] = report.files.slice(-2) as [string, string];
    expect(JSON.parse(lines(newer)[0]!).prev).toBe(lineHash(lines(older).at(-1)!));
  });

  it('names the file and line where a changed, removed or swapped line breaks the chain', async () => {
    const file = tempFile();
    await writeLines(file, 12);
    const original = lines(file);
    const put = (rows: string[]): void => writeFileSync(file, rows.map((r) => `${r}\n`).join(''));

    // Changed: line 5 says another client; the break shows at line 6, naming line 5.
    const edited = [...original];
    edited[4] = edited[4]!.replace(/"client":"[a-z]+"/, '"client":"mallory"');
    expect(edited[4]).not.toBe(original[4]);
    put(edited);
    const e = verifyAuditChain(file);
    expect(e.ok).toBe(false);
    expect(e.break).toMatchObject({ file, line: 6 });
    expect(e.break!.reason).toContain(`${file}:5`);

    // Removed: line 5 gone; the line now at 5 no longer chains to line 4.
    put(original.filter((_, i) => i !== 4));
    expect(verifyAuditChain(file).break).toMatchObject({ file, line: 5 });

    // Swapped: lines 7 and 8 exchanged.
    const swapped = [...original];
    [swapped[6], swapped[7]] = [swapped[7]!, swapped[6]!];
    put(swapped);
    expect(verifyAuditChain(file).break).toMatchObject({ file, line: 7 });

    put(original);
    expect(verifyAuditChain(file).ok).toBe(true);
  });

  it('a line torn by a crash is reported, and the next proxy starts its lines on a new line', async () => {
    const file = tempFile();
    await writeLines(file, 4);
    appendFileSync(file, '{"ts":"2026-11-30T00:00:00.000Z","prev":"ab');
    await writeLines(file, 2);
    const rows = lines(file);
    expect(rows).toHaveLength(7);
    expect(JSON.parse(rows[6]!).prev).toBe(lineHash(rows[5]!));
    expect(verifyAuditChain(file).break).toMatchObject({ file, line: 5 });
  });

  it('with older files rotated away, the oldest line left starts the chain', async () => {
    const file = tempFile();
    for (let i = 0; i < 10; i++) await writeLines(file, 20, { maxBytes: 2048, keep: 2 });
    const report = verifyAuditChain(file, 2);
    expect(report).toMatchObject({ ok: true, fromGenesis: false });
    expect(report.lines).toBeLessThan(200);
  });
});

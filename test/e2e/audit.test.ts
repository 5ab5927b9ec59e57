/**
 * The audit log as a hash chain (SPEC §9), through the built CLI: a real proxy writes it,
 * `credproxy audit verify` finds an edited, a deleted and a swapped line, `audit tail` reads it.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { BIN, cleanup, makeLayout, run, startServe, type Layout } from './cli-harness.js';

afterEach(cleanup);

/** A proxy that served a few ops, stopped, so its audit log is on disk. */
async function auditedLayout(): Promise<{ layout: Layout; file: string; original: string[] }> {
  const layout = makeLayout();
  const serve = await startServe(layout);
  for (const args of [['ping'], ['status'], ['key', 'list'], ['ping']]) {
    expect((await run(layout, args)).code).toBe(0);
  }
  expect((await run(layout, ['key', 'set', 'openai'], { input: 'sk-audit-secret-value\n' })).code).toBe(0);
  expect((await run(layout, ['stop'])).code).toBe(0);
  await serve.exited;
  const file = path.join(layout.dir, 'data', 'audit.log');
  const original = fs.readFileSync(file, 'utf8').split('\n').filter((l) => l !== '');
  expect(original.length).toBeGreaterThan(10);
  return { layout, file, original };
}

function put(file: string, rows: string[]): void {
  fs.writeFileSync(file, rows.map((r) => `${r}\n`).join(''));
}

describe('credproxy audit verify', () => {
  it('accepts the chain a proxy wrote, and names the file and line of an edited, a deleted and a swapped line', async () => {
    const { layout, file, original } = await auditedLayout();
    const intact = await run(layout, ['audit', 'verify']);
    expect(intact.code, intact.stderr).toBe(0);
    expect(intact.stdout).toMatch(new RegExp(`audit log intact: ${original.length} lines in 1 file\\(s\\), chained from the first line ever written`));
    expect(fs.readFileSync(file, 'utf8')).not.toContain('sk-audit-secret-value');

    const edited = [...original];
    edited[3] = edited[3]!.replace(/"outcome":"[^"]*"/, '"outcome":"FORBIDDEN"');
    expect(edited[3]).not.toBe(original[3]);
    put(file, edited);
    const e = await run(layout, ['audit', 'verify']);
    expect(e.code).toBe(1);
    expect(e.stderr).toContain(`breaks at ${file} line 5`);
    expect(e.stderr).toContain(`${file}:4`);

    put(file, original.filter((_, i) => i !== 6));
    const d = await run(layout, ['audit', 'verify', '--json']);
    expect(d.code).toBe(1);
    expect(JSON.parse(d.stdout)).toMatchObject({ ok: false, break: { file, line: 7 } });

    const swapped = [...original];
    [swapped[8], swapped[9]] = [swapped[9]!, swapped[8]!];
    put(file, swapped);
    const s = await run(layout, ['audit', 'verify']);
    expect(s.code).toBe(1);
    expect(s.stderr).toContain(`breaks at ${file} line 9`);
  });

  it('a restarted proxy continues the chain of the one before', async () => {
    const { layout } = await auditedLayout();
    const serve = await startServe(layout);
    expect((await run(layout, ['ping'])).code).toBe(0);
    expect((await run(layout, ['stop'])).code).toBe(0);
    await serve.exited;
    expect((await run(layout, ['audit', 'verify'])).code).toBe(0);
  });
});

describe('credproxy audit tail', () => {
  it('prints the last lines, filtered by client, as text or as the stored JSON', async () => {
    const { layout, original } = await auditedLayout();
    const text = await run(layout, ['audit', 'tail', '-n', '3']);
    expect(text.code).toBe(0);
    const rows = text.stdout.trim().split('\n');
    expect(rows).toHaveLength(3);
    expect(rows[0]).toMatch(/^\d{4}-\d\d-\d\dT.*Z {2}\S+ {2}/);
    const json = await run(layout, ['audit', 'tail', '--json', '--client', 'owner', '-n', '100']);
    const lines = json.stdout.trim().split('\n');
    expect(lines.length).toBeGreaterThan(3);
    for (const line of lines) expect(JSON.parse(line)).toMatchObject({ client: 'owner' });
    expect(lines.every((l) => original.includes(l))).toBe(true);
  });

  it('--follow prints lines as a running proxy writes them', async () => {
    const layout = makeLayout();
    await startServe(layout);
    const tail = spawn(process.execPath, [BIN, 'audit', 'tail', '--follow', '--json', '-n', '0'], { env: layout.env });
    let out = '';
    tail.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
    try {
      await new Promise((r) => setTimeout(r, 500));
      expect((await run(layout, ['ping'])).code).toBe(0);
      const deadline = Date.now() + 5_000;
      while (!/"op":"ping"/.test(out) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      expect(out).toMatch(/"op":"ping"/);
    } finally {
      tail.kill('SIGINT');
    }
    expect((await run(layout, ['stop'])).code).toBe(0);
  });
});

import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { AuditLog } from './audit-log.js';

let dir: string;
beforeEach(() => (dir = mkdtempSync(path.join(os.tmpdir(), 'cpa-'))));
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const clock = { now: () => Date.now() };
const event = (i: number) => ({ event: 'op', client: 'owner', op: 'get_token', outcome: 'ok', provider: 'p', bucket: 'b', n: i });

it('keeps writing across rotations under a steady stream, keeping N files of bounded size', async () => {
  const file = path.join(dir, 'audit.log');
  const log = new AuditLog({ file, clock, maxBytes: 50_000, keep: 3 });
  let n = 0;
  for (let round = 0; round < 40; round++) {
    for (let i = 0; i < 200; i++) log.record(event(n++));
    await new Promise((r) => setImmediate(r));
  }
  await log.flush();
  // The newest line is on disk: nothing stayed behind in memory after the rotations.
  const last = readFileSync(file, 'utf8').trim().split('\n').pop()!;
  expect(JSON.parse(last)).toMatchObject({ n: n - 1, event: 'op' });
  expect(readdirSync(dir).sort()).toEqual(['audit.log', 'audit.log.1', 'audit.log.2', 'audit.log.3']);
  for (const f of readdirSync(dir)) {
    expect(statSync(path.join(dir, f)).mode & 0o777).toBe(0o600);
    expect(statSync(path.join(dir, f)).size).toBeLessThanOrEqual(50_000 + 70_000);
  }
});

it('writes a lone line within the batch delay, as one JSON object per line', async () => {
  const file = path.join(dir, 'audit.log');
  const log = new AuditLog({ file, clock });
  log.record({ event: 'handshake', client: 'a"b', outcome: 'UNAUTHORIZED', pid: 7 });
  await new Promise((r) => setTimeout(r, 250));
  expect(JSON.parse(readFileSync(file, 'utf8'))).toMatchObject({ event: 'handshake', client: 'a"b', outcome: 'UNAUTHORIZED', pid: 7 });
});

it('op() writes the same bytes as record() of the same op event, whatever the fields', async () => {
  const fixed = { now: () => 1_790_000_000_123 };
  const opt = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: undefined });
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.tuple(fc.string(), fc.constantFrom('get_token', 'get_api_key'), fc.string(), opt(fc.string()), opt(fc.string()), opt(fc.double({ noNaN: true })), opt(fc.nat())), { minLength: 1, maxLength: 5 }),
      async (events) => {
        const a = path.join(dir, `a-${Math.random()}.log`);
        const b = path.join(dir, `b-${Math.random()}.log`);
        const viaRecord = new AuditLog({ file: a, clock: fixed });
        const viaOp = new AuditLog({ file: b, clock: fixed });
        for (const [client, op, outcome, provider, bucket, ms, pid] of events) {
          viaRecord.record({ event: 'op', client, op, outcome, provider, bucket, ms, pid });
          viaOp.op(client, op, outcome, provider, bucket, ms, pid);
        }
        await viaRecord.close();
        await viaOp.close();
        expect(readFileSync(b, 'utf8')).toBe(readFileSync(a, 'utf8'));
      },
    ),
    { numRuns: 200 },
  );
});

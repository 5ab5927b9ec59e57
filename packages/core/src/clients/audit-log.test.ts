import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmdirSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { verifyAuditChain } from './audit-chain.js';
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

/** Times for a sequence of lines: the same millisecond, the same second, later seconds, any year. */
const lineTimes = fc.array(fc.oneof(fc.constant(1_790_000_000_123), fc.integer({ min: 1_790_000_000_000, max: 1_790_000_002_999 }), fc.integer({ min: 0, max: 8_640_000_000_000_000 })), { minLength: 6, maxLength: 6 });
/** A clock that reads `times` in order, one per line. */
const replay = (times: number[]) => {
  let i = 0;
  return { now: () => times[i++ % times.length]! };
};
/** Mostly 'ok' (the lines' fast path), sometimes a failure code or any text. */
const outcomes = fc.oneof(fc.constant('ok'), fc.constant('ok'), fc.constantFrom('UNAUTHORIZED', 'RATE_LIMITED'), fc.string());

it('op() writes the same bytes as record() of the same op event, whatever the fields and the time', async () => {
  const opt = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: undefined });
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.tuple(fc.string(), fc.constantFrom('get_token', 'get_api_key'), outcomes, opt(fc.string()), opt(fc.string()), opt(fc.double({ noNaN: true })), opt(fc.nat())), { minLength: 1, maxLength: 6 }),
      lineTimes,
      async (events, times) => {
        const a = path.join(dir, `a-${Math.random()}.log`);
        const b = path.join(dir, `b-${Math.random()}.log`);
        const viaRecord = new AuditLog({ file: a, clock: replay(times) });
        const viaOp = new AuditLog({ file: b, clock: replay(times) });
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

const lines = (file: string) => readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);

it('caps every string at 64 characters and marks the cut, through record() and op() alike', async () => {
  const file = path.join(dir, 'audit.log');
  const log = new AuditLog({ file, clock });
  const huge = 'x'.repeat(3_900_000);
  log.record({ event: 'op', client: 'c', op: huge, outcome: 'UNAUTHORIZED', pid: 1 });
  log.op('c', huge, 'UNKNOWN_OP', huge, undefined, 1, 2);
  await log.close();
  expect(statSync(file).size).toBeLessThan(1000);
  const [a, b] = lines(file);
  expect(a!.op).toBe(`${'x'.repeat(64)}…(3900000 chars)`);
  expect(b).toMatchObject({ op: a!.op, provider: a!.op });
});

it('writes a repeated failure once, then one line with "repeat": N; successes are each written', async () => {
  const file = path.join(dir, 'audit.log');
  const log = new AuditLog({ file, clock });
  for (let i = 0; i < 1000; i++) log.op('box', 'client_list', 'FORBIDDEN', undefined, undefined, i / 100, 42);
  for (let i = 0; i < 1000; i++) log.record({ event: 'handshake', client: 'none', op: 'handshake', outcome: 'UNAUTHORIZED', pid: 43 });
  for (let i = 0; i < 5; i++) log.op('box', 'get_token', 'ok', 'gh', 'default', 0.1, 42);
  await new Promise((r) => setTimeout(r, 250));
  // Before the second is over, only the first of each failure is on disk.
  expect(lines(file).map((l) => l.outcome)).toEqual(['FORBIDDEN', 'UNAUTHORIZED', 'ok', 'ok', 'ok', 'ok', 'ok']);
  await new Promise((r) => setTimeout(r, 1000));
  const all = lines(file);
  expect(all).toHaveLength(9);
  expect(all.slice(7)).toEqual(
    expect.arrayContaining([
      expect.objectContaining({ event: 'op', client: 'box', op: 'client_list', outcome: 'FORBIDDEN', pid: 42, repeat: 999 }),
      expect.objectContaining({ event: 'handshake', outcome: 'UNAUTHORIZED', pid: 43, repeat: 999 }),
    ]),
  );
  await log.close();
});

it('writes the pending repeat counts on close', async () => {
  const file = path.join(dir, 'audit.log');
  const log = new AuditLog({ file, clock });
  for (let i = 0; i < 3; i++) log.op('box', 'x', 'UNKNOWN_OP', undefined, undefined, 1, 7);
  await log.close();
  expect(lines(file).map((l) => l.repeat)).toEqual([undefined, 2]);
});

it('chains the lines in the order recorded, each with the time it was recorded, also across a flush', async () => {
  const file = path.join(dir, 'audit.log');
  let now = 1_790_000_000_000;
  const log = new AuditLog({ file, clock: { now: () => now } });
  log.record({ event: 'connect', client: 'none', op: 'connect', outcome: 'ok', pid: 1, uid: 0 });
  now += 5;
  log.record({ event: 'handshake', client: 'owner', op: 'handshake', outcome: 'ok', pid: 1 });
  // flush() writes what was recorded so far; recording goes on.
  await log.flush();
  expect(lines(file).map((l) => l.event)).toEqual(['connect', 'handshake']);
  now += 5;
  log.op('owner', 'get_token', 'ok', 'gh', undefined, 0.1, 1);
  log.record({ event: 'handshake', client: 'none', op: 'handshake', outcome: 'UNAUTHORIZED', pid: 2 });
  now += 1000;
  await new Promise((r) => setImmediate(r));
  await log.close();
  const all = lines(file);
  expect(all.map((l) => [l.event, l.outcome])).toEqual([['connect', 'ok'], ['handshake', 'ok'], ['op', 'ok'], ['handshake', 'UNAUTHORIZED']]);
  expect(all.map((l) => Date.parse(l.ts as string) - 1_790_000_000_000)).toEqual([0, 5, 10, 10]);
  expect(verifyAuditChain(file)).toMatchObject({ ok: true, lines: 4, fromGenesis: true });
});

it('a burst of more lines than one batch holds is written in order, one chain', async () => {
  const file = path.join(dir, 'audit.log');
  const log = new AuditLog({ file, clock });
  for (let i = 0; i < 1000; i++) log.record(event(i));
  await new Promise((r) => setImmediate(r));
  await log.close();
  expect(lines(file).map((l) => l.n)).toEqual(Array.from({ length: 1000 }, (_, i) => i));
  expect(verifyAuditChain(file)).toMatchObject({ ok: true, lines: 1000 });
});

it('writes each line\'s time as toISOString() of the clock, whatever the time', async () => {
  const time = fc.oneof(
    fc.integer({ min: 0, max: 8_640_000_000_000_000 }),
    fc.integer({ min: 1_700_000_000_000, max: 1_700_000_003_000 }),
    fc.double({ min: -1e13, max: 1e13, noNaN: true }),
  );
  await fc.assert(
    fc.asyncProperty(fc.array(time, { minLength: 1, maxLength: 20 }), async (times) => {
      const file = path.join(dir, `t-${Math.random()}.log`);
      let i = 0;
      const log = new AuditLog({ file, clock: { now: () => times[i++]! } });
      for (let k = 0; k < times.length; k++) log.record(event(k));
      await log.close();
      expect(lines(file).map((l) => l.ts)).toEqual(times.map((t) => new Date(t).toISOString()));
    }),
    { numRuns: 200 },
  );
});

it('keeps the batches an append refused, in order, and writes them with the next batch', async () => {
  const file = path.join(dir, 'audit.log');
  const log = new AuditLog({ file, clock });
  // A directory where the log should be: every append fails (as on a full disk).
  mkdirSync(file);
  for (let i = 0; i < 3; i++) log.record(event(i));
  await log.flush();
  // The next batch reuses the buffer the refused one was encoded in.
  for (let i = 3; i < 6; i++) log.record(event(i));
  await log.flush();
  rmdirSync(file);
  log.record(event(6));
  await log.close();
  expect(lines(file).map((l) => l.n)).toEqual([0, 1, 2, 3, 4, 5, 6]);
  expect(verifyAuditChain(file)).toMatchObject({ ok: true, lines: 7, fromGenesis: true });
});

it('connection() writes the same bytes as record() of the same connect or handshake event, whatever the time', async () => {
  const opt = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: undefined });
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.tuple(fc.constantFrom('connect' as const, 'handshake' as const), fc.string(), outcomes, opt(fc.nat()), opt(fc.nat())), { minLength: 1, maxLength: 6 }),
      lineTimes,
      async (events, times) => {
        const a = path.join(dir, `a-${Math.random()}.log`);
        const b = path.join(dir, `b-${Math.random()}.log`);
        const viaRecord = new AuditLog({ file: a, clock: replay(times) });
        const viaConnection = new AuditLog({ file: b, clock: replay(times) });
        for (const [kind, client, outcome, pid, uid] of events) {
          viaRecord.record({ event: kind, client, op: kind, outcome, pid, uid });
          viaConnection.connection(kind, client, outcome, pid, uid);
        }
        await viaRecord.close();
        await viaConnection.close();
        expect(readFileSync(b, 'utf8')).toBe(readFileSync(a, 'utf8'));
      },
    ),
    { numRuns: 100 },
  );
});

// Many connections to a credproxy socket from one process: opens N at once, handshakes all of
// them as the owner, sends get_token on every one at once, then opens EXTRA more at once (to
// probe the connection cap) and holds everything open until told to close.
//
// argv: SOCKET N EXTRA RETRY_MS PROVIDER
//   RETRY_MS > 0: a connection refused with RESOURCE_EXHAUSTED among the first N is retried
//   (every 25 ms) for up to RETRY_MS, e.g. while the proxy is still seeing earlier ones hang up.
// stdout: "holding <json>"; then, after a line "close" on stdin, "closed" once all are closed.
import readline from 'node:readline';
import { FrameConn, outcome, sleep } from './frame-conn.mjs';

const [socketPath, nArg, extraArg, retryArg, provider] = process.argv.slice(2);
const N = Number(nArg);
const EXTRA = Number(extraArg);
const RETRY_MS = Number(retryArg);

const conns = [];
const count = (tally, key) => (tally[key] = (tally[key] ?? 0) + 1);
const result = {
  opened: 0,
  handshakes: {},
  refusedRetries: 0,
  tokens: {},
  tokenCodes: {},
  extra: { handshakes: {}, idNull: 0, closed: 0 },
  eagainRetries: 0,
  errors: [],
  openMs: 0,
  tokenMs: 0,
  maxTokenMs: 0,
};

/** Connect and handshake as the owner; the connection and the handshake answer. */
async function openOne() {
  const conn = await FrameConn.connect(socketPath, 10_000);
  conns.push(conn);
  conn.send({ v: 2, op: 'handshake', payload: { minVersion: 1, maxVersion: 2 } });
  return { conn, answer: await conn.next(8000) };
}

const t0 = performance.now();
const main = await Promise.all(
  Array.from({ length: N }, async () => {
    const end = Date.now() + RETRY_MS;
    for (;;) {
      try {
        const { conn, answer } = await openOne();
        if (outcome(answer) === 'RESOURCE_EXHAUSTED' && Date.now() < end) {
          result.refusedRetries += 1;
          conn.destroy();
          await sleep(25);
          continue;
        }
        count(result.handshakes, outcome(answer));
        return outcome(answer) === 'ok' ? conn : undefined;
      } catch (err) {
        count(result.handshakes, `error:${err.code ?? err.message}`);
        return undefined;
      }
    }
  }),
);
result.opened = main.filter(Boolean).length;
result.openMs = Math.round(performance.now() - t0);

const t1 = performance.now();
await Promise.all(
  main.map(async (conn, i) => {
    if (!conn) return;
    const started = performance.now();
    conn.send({ v: 2, id: `t${i}`, op: 'get_token', payload: { provider } });
    const answer = await conn.next(8000);
    result.maxTokenMs = Math.max(result.maxTokenMs, Math.round(performance.now() - started));
    count(result.tokenCodes, outcome(answer));
    if (outcome(answer) === 'ok' && answer.id === `t${i}`) count(result.tokens, answer.data.access_token);
  }),
);
result.tokenMs = Math.round(performance.now() - t1);

await Promise.all(
  Array.from({ length: EXTRA }, async () => {
    try {
      const { conn, answer } = await openOne();
      count(result.extra.handshakes, outcome(answer));
      if (typeof answer === 'object' && answer.id === null) result.extra.idNull += 1;
      if (outcome(answer) !== 'ok' && (await conn.closesWithin(3000))) result.extra.closed += 1;
    } catch (err) {
      count(result.extra.handshakes, `error:${err.code ?? err.message}`);
    }
  }),
);
result.eagainRetries = FrameConn.eagain;
process.stdout.write(`holding ${JSON.stringify(result)}\n`);

const lines = readline.createInterface({ input: process.stdin });
for await (const line of lines) {
  if (line.trim() === 'close') break;
}
for (const c of conns) c.destroy();
await Promise.all(conns.map((c) => c.closed));
process.stdout.write('closed\n');
process.exit(0);

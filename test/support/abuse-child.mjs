// Abuse traffic against a credproxy socket, from its own process (so the rate limiter sees one
// peer pid, and the test process stays responsive). Sends TOTAL bad frames over WORKERS
// connections at once, reconnecting whenever the proxy closes one, and tallies every answer.
//
// argv: SOCKET TOTAL WORKERS SEED [noslow]
// stdout: "started", then "sent <ms>" once every bad frame has been answered (slow frames still
// hanging), then "result <json>" once the proxy has closed every hanging slow frame.
import { FrameConn, frame, outcome, rng, sleep } from './frame-conn.mjs';

const [socketPath, totalArg, workersArg, seedArg, flag] = process.argv.slice(2);
const TOTAL = Number(totalArg);
const WORKERS = Number(workersArg);
const random = rng(Number(seedArg));
const noSlow = flag === 'noslow';
const MAX = 4 * 1024 * 1024;
/** The proxy's frame limit before a successful handshake (PRE_HANDSHAKE_MAX_FRAME_BYTES). */
const PRE_HANDSHAKE_MAX = 8 * 1024;
/** The proxy closes an incomplete frame after 5 s; allow scheduling slack on a loaded box. */
const SLOW_CLOSE_WAIT_MS = 12_000;

/** kind, share of TOTAL, the connection state it needs. */
const MIX = [
  ['malformed', 0.18, 'any'], // framed, not JSON
  ['garbage', 0.1, 'any'], // framed random bytes, not UTF-8
  ['nonobject', 0.05, 'any'], // JSON that is not an object
  ['prehandshake', 0.05, 'fresh'], // an op before the handshake
  ['badversion', 0.1, 'fresh'], // handshake offering versions other than 2
  ['wrongtoken', 0.1, 'fresh'], // handshake with a capability token nobody was given
  ['unknownop', 0.15, 'owner'],
  ['wrongv', 0.05, 'owner'], // a request whose v is not 2
  ['badpayload', 0.05, 'owner'], // a known op with an invalid payload
  ['oversized', 0.09, 'any'], // declared length > 4 MiB plus up to 16 KiB: INVALID_REQUEST and close
  ['oversizedbody', 0.01, 'any'], // declared length > 4 MiB, then 1 MiB of that body streamed
  ['prehandshakebig', 0.02, 'fresh'], // before the handshake, a declared length > 8 KiB: INVALID_REQUEST and close
  ['slow', 0.05, 'any'], // a truncated frame left hanging; the proxy must close it
];

const pick = (list) => list[Math.floor(random() * list.length)];
const int = (lo, hi) => lo + Math.floor(random() * (hi - lo + 1));

// The traffic: exact counts per kind (the remainder goes to `malformed`), shuffled.
const kinds = [];
const mix = noSlow ? MIX.filter(([k]) => k !== 'slow') : MIX;
const shareSum = mix.reduce((s, [, share]) => s + share, 0);
for (const [kind, share] of mix) for (let i = Math.floor((TOTAL * share) / shareSum); i > 0; i--) kinds.push(kind);
while (kinds.length < TOTAL) kinds.push('malformed');
for (let i = kinds.length - 1; i > 0; i--) {
  const j = Math.floor(random() * (i + 1));
  [kinds[i], kinds[j]] = [kinds[j], kinds[i]];
}
const need = new Map(MIX.map(([k, , n]) => [k, n]));

const stats = Object.fromEntries(mix.map(([k]) => [k, { sent: 0, codes: {}, idMismatch: 0, closedAfter: 0, samples: [] }]));
const result = {
  frames: 0,
  connections: 0,
  refused: 0,
  eagainRetries: 0,
  errors: [],
  kinds: stats,
  slow: { count: 0, refusedAtCap: 0, answeredSamples: [], closedByProxy: 0, notClosed: 0, answered: 0, minCloseMs: Infinity, maxCloseMs: 0 },
  sentMs: 0,
  totalMs: 0,
};
const hanging = [];
const started = performance.now();

function error(message) {
  if (result.errors.length < 20) result.errors.push(message);
  else result.errors.push('…');
}

async function open() {
  result.connections += 1;
  return FrameConn.connect(socketPath);
}

function tally(kind, answer, expectedId) {
  const s = stats[kind];
  const code = outcome(answer);
  s.codes[code] = (s.codes[code] ?? 0) + 1;
  if (typeof answer === 'object') {
    if (s.samples.length < 2 && typeof answer.error === 'string') s.samples.push(answer.error.slice(0, 120));
    // undefined: the answer must carry no id at all (a handshake sent without one).
    const idOk = expectedId === undefined ? !('id' in answer) : answer.id === expectedId;
    if (!idOk) s.idMismatch += 1;
  }
}

/** A connection in the state `kind` needs: fresh (no handshake yet), owner, or any open one. */
async function ready(conn, state) {
  if (conn && !conn.isClosed && random() < 0.03) {
    conn.destroy(); // churn: some connections just go away
    conn = undefined;
  }
  if (state === 'any') return conn && !conn.isClosed ? conn : open();
  if (conn && !conn.isClosed && conn.state === state) return conn;
  // Reuse only a fresh, open connection (to handshake it as the owner); otherwise start anew.
  if (!(conn && !conn.isClosed && conn.state === 'fresh' && state === 'owner')) {
    conn?.destroy();
    conn = await open();
  }
  if (state === 'owner') {
    conn.send({ v: 2, op: 'handshake', payload: { minVersion: 1, maxVersion: 2 } });
    const answer = await conn.next();
    if (outcome(answer) !== 'ok') {
      conn.destroy();
      if (outcome(answer) === 'RESOURCE_EXHAUSTED') result.refused += 1;
      else error(`owner handshake failed: ${JSON.stringify(answer)}`);
      return undefined;
    }
    conn.state = 'owner';
  }
  return conn;
}

/** Send one bad frame of `kind` on `conn`; returns the connection to use next (or undefined). */
async function abuse(kind, conn, i) {
  let bytes;
  let expectedId = null;
  switch (kind) {
    case 'malformed': {
      const body = pick(['{', '{"v":2,', '{"v":2,"op":"ping"', 'nul', '{"a":1}}', '{"v":2 "id":"x"}', "{'v':2}", '', ' ', 'undefined', 'NaN', '{"v":2,"id":"1","op":"ping","payload":{}']);
      // Before the handshake a frame over 8 KiB is fatal (that is `prehandshakebig`).
      const padMax = conn.state === 'fresh' ? PRE_HANDSHAKE_MAX - 16 : 64 * 1024;
      bytes = frame(random() < 0.1 ? `{"pad":"${'a'.repeat(int(1, padMax))}` : body);
      break;
    }
    case 'garbage': {
      const body = Buffer.allocUnsafe(int(1, 4096));
      for (let k = 0; k < body.length; k++) body[k] = Math.floor(random() * 256);
      body[0] = 0xff; // never valid UTF-8
      bytes = frame(body);
      break;
    }
    case 'nonobject':
      bytes = frame(pick(['[]', '[1,2,3]', '"handshake"', 'null', '42', 'true', '[{"v":2,"op":"ping"}]']));
      break;
    case 'prehandshake':
      expectedId = `p${i}`;
      bytes = frame(JSON.stringify({ v: 2, id: expectedId, op: pick(['get_token', 'get_api_key', 'ping', 'status', 'shutdown']), payload: { provider: 'gh', name: 'openai' } }));
      break;
    case 'badversion':
    case 'wrongtoken': {
      const payload =
        kind === 'badversion'
          ? pick([{ minVersion: 3, maxVersion: 4 }, { minVersion: 0, maxVersion: 1 }, { minVersion: '1', maxVersion: '2' }, { minVersion: 2, maxVersion: 1 }, { minVersion: 99 }])
          : { minVersion: 1, maxVersion: 2, capabilityToken: random() < 0.8 ? Array.from({ length: 64 }, () => '0123456789abcdef'[int(0, 15)]).join('') : pick(['', 'x', 'A'.repeat(64), 'f'.repeat(1000)]) };
      const withId = random() < 0.5;
      expectedId = withId ? `h${i}` : undefined;
      bytes = frame(JSON.stringify(withId ? { v: 2, id: expectedId, op: 'handshake', payload } : { v: 2, op: 'handshake', payload }));
      break;
    }
    case 'unknownop':
      expectedId = `u${i}`;
      bytes = frame(JSON.stringify({ v: 2, id: expectedId, op: pick(['nope', '__proto__', 'constructor', 'toString', 'hasOwnProperty', 'GET_TOKEN', 'get_token ', 'x'.repeat(300), 'handshake2']), payload: {} }));
      break;
    case 'wrongv': {
      expectedId = `v${i}`;
      const v = pick([1, 3, '2', null, 2.5, 'omit']);
      const req = { id: expectedId, op: 'ping', payload: {} };
      bytes = frame(JSON.stringify(v === 'omit' ? req : { v, ...req }));
      break;
    }
    case 'badpayload':
      expectedId = `b${i}`;
      bytes = frame(
        JSON.stringify({
          v: 2,
          id: expectedId,
          ...pick([
            { op: 'get_token', payload: { provider: '../etc' } },
            { op: 'get_token', payload: 'gh' },
            { op: 'get_token', payload: { provider: 'a'.repeat(65) } },
            { op: 'get_api_key', payload: { name: '..' } },
            { op: 'get_token', payload: [] },
            { op: 'cancel', payload: {} },
          ]),
        }),
      );
      break;
    case 'oversized':
    case 'oversizedbody': {
      const declared = pick([MAX + 1, MAX + int(2, 1 << 20), 0x7fffffff, 0x80000000, 0xffffffff]);
      // Up to 16 KiB fits in the socket buffer at once, so the answer is always read; 1 MiB
      // does not, and the proxy closes while we still write it (see the end of abuse()).
      const junk = Buffer.alloc(kind === 'oversized' ? int(0, 16 * 1024) : 1024 * 1024, 0x61);
      bytes = frame(junk, declared);
      break;
    }
    case 'prehandshakebig':
      bytes = frame(Buffer.alloc(int(0, 4096), 0x61), int(PRE_HANDSHAKE_MAX + 1, MAX));
      break;
    case 'slow': {
      // A partial header, or a header declaring up to 4 MiB followed by a short prefix.
      if (random() < 0.25) {
        bytes = Buffer.from([0x00, 0x00, 0x10].slice(0, int(1, 3)));
      } else {
        const prefix = Buffer.from(`{"v":2,"id":"s${i}","op":"ping","payload":{"pad":"${'a'.repeat(int(0, 4000))}`);
        // Always more than was sent, or the frame is complete (and answered) rather than slow;
        // before the handshake, within the 8 KiB limit (a larger one is refused at once).
        const declared = int(prefix.length + 1, conn.state === 'fresh' ? PRE_HANDSHAKE_MAX : MAX);
        bytes = frame(prefix, declared);
      }
      break;
    }
    default:
      throw new Error(`unknown kind ${kind}`);
  }
  conn.write(bytes);
  stats[kind].sent += 1;
  result.frames += 1;

  if (kind === 'slow') {
    result.slow.count += 1;
    conn.frames.length = 0;
    hanging.push({ conn, sentAt: performance.now() });
    return undefined; // left hanging; the worker carries on with a new connection
  }

  let answer = await conn.next(8000);
  if (outcome(answer) === 'RESOURCE_EXHAUSTED' && answer.id === null && conn.state === 'fresh') {
    // Refused at the connection cap before our frame was read: not an answer to it.
    stats[kind].sent -= 1;
    result.frames -= 1;
    result.refused += 1;
    conn.destroy();
    return 'retry';
  }
  if (kind === 'oversizedbody' && answer === 'closed' && (conn.errorCode === 'EPIPE' || conn.errorCode === 'ECONNRESET')) {
    // The proxy answered and closed while we were still writing the body: node destroys a
    // socket on EPIPE before reading what is already in its receive queue, so the answer can
    // be lost on our side (a C client reading after EPIPE gets it).
    answer = 'closed-mid-body';
  }
  tally(kind, answer, expectedId);
  if (typeof answer === 'object' && answer.ok === true) {
    error(`${kind} was accepted: ${JSON.stringify(answer).slice(0, 200)}`);
    if (kind === 'wrongtoken' || kind === 'badversion') conn.state = 'client';
  }
  if (kind === 'oversized' || kind === 'oversizedbody' || kind === 'prehandshakebig') {
    if (await conn.closesWithin(3000)) stats[kind].closedAfter += 1;
    conn.destroy();
    return undefined;
  }
  if (conn.isClosed) {
    error(`${kind}: the proxy closed the connection after answering ${outcome(answer)}`);
    return undefined;
  }
  return conn;
}

let next = 0;
async function worker() {
  let conn;
  for (;;) {
    const i = next++;
    if (i >= kinds.length) break;
    const kind = kinds[i];
    for (let attempt = 0; ; attempt++) {
      try {
        conn = await ready(conn, need.get(kind));
        if (!conn) {
          if (attempt > 50) throw new Error('could not get a connection');
          await sleep(20);
          continue;
        }
        const after = await abuse(kind, conn, i);
        if (after === 'retry') {
          conn = undefined;
          if (attempt > 50) throw new Error('refused 50 times');
          await sleep(20);
          continue;
        }
        conn = after;
      } catch (err) {
        error(`${kind}: ${err instanceof Error ? err.message : String(err)}`);
        conn?.destroy();
        conn = undefined;
      }
      break;
    }
  }
  conn?.destroy();
}

process.stdout.write('started\n');
await Promise.all(Array.from({ length: WORKERS }, worker));
result.sentMs = Math.round(performance.now() - started);
process.stdout.write(`sent ${result.sentMs}\n`);

await Promise.all(
  hanging.map(async ({ conn, sentAt }) => {
    const left = SLOW_CLOSE_WAIT_MS - (performance.now() - sentAt);
    const closed = await conn.closesWithin(Math.max(0, left));
    const first = conn.frames[0];
    if (conn.frames.length === 1 && typeof first === 'object' && first.id === null && outcome(first) === 'RESOURCE_EXHAUSTED') {
      // Refused at the connection cap when it was accepted (the flood holds hundreds of
      // connections): the slow frame was never read, so it says nothing about the 5 s timeout.
      result.slow.refusedAtCap += 1;
      conn.destroy();
      return;
    }
    if (closed) {
      result.slow.closedByProxy += 1;
      const ms = Math.round(conn.closedAt - sentAt);
      result.slow.minCloseMs = Math.min(result.slow.minCloseMs, ms);
      result.slow.maxCloseMs = Math.max(result.slow.maxCloseMs, ms);
    } else {
      result.slow.notClosed += 1;
    }
    if (conn.frames.length > 0) {
      result.slow.answered += 1;
      if (result.slow.answeredSamples.length < 5) result.slow.answeredSamples.push(JSON.stringify(conn.frames).slice(0, 300));
    }
    conn.destroy();
  }),
);
if (result.slow.count === 0) result.slow.minCloseMs = 0;
result.eagainRetries = FrameConn.eagain;
result.totalMs = Math.round(performance.now() - started);
process.stdout.write(`result ${JSON.stringify(result)}\n`);
process.exit(0);

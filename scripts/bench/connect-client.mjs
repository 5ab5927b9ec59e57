// Connection per request, in its own process: N callers, each a closed loop for a fixed time of
// what a process-per-call tool (`credproxy token`, a short-lived sandbox process) does — connect
// to the socket, handshake and wait for its answer, one get_token {provider: TARGET}, close.
// A call's latency runs from connect() to the get_token answer.
// Prints {requests, seconds, p50Ms, p99Ms, errors, clientCpuMs} as JSON (clientCpuMs: this
// process's own CPU time while measuring, to tell a load-bound run from a server-bound one).
// A capability token, when given, is presented in the handshake (a sandbox client's connection).
// usage: connect-client.mjs SOCKET CALLERS SECONDS [TARGET] [CAPABILITY_TOKEN]
import net from 'node:net';

const [socketPath, callersArg, secondsArg, target = 'bench', capabilityToken] = process.argv.slice(2);
const callers = Number(callersArg);
const seconds = Number(secondsArg);
if (!socketPath || !(callers > 0) || !(seconds > 0)) throw new Error('usage: connect-client.mjs SOCKET CALLERS SECONDS [TARGET] [CAPABILITY_TOKEN]');

function frame(obj) {
  const body = Buffer.from(JSON.stringify(obj));
  const head = Buffer.allocUnsafe(4);
  head.writeUInt32BE(body.length, 0);
  return Buffer.concat([head, body]);
}

const HANDSHAKE = frame({ v: 2, op: 'handshake', payload: { minVersion: 1, maxVersion: 2, ...(capabilityToken ? { capabilityToken } : {}) } });
const GET_TOKEN = frame({ v: 2, id: '1', op: 'get_token', payload: { provider: target } });

/** One call: resolves true when both the handshake and get_token were answered ok. */
function call() {
  return new Promise((resolve) => {
    const sock = net.connect(socketPath);
    let buf = Buffer.alloc(0);
    let step = 0;
    const done = (ok) => {
      step = 2;
      sock.destroy();
      resolve(ok);
    };
    sock.on('connect', () => sock.write(HANDSHAKE));
    sock.on('data', (chunk) => {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      while (step < 2 && buf.length >= 4) {
        const len = buf.readUInt32BE(0);
        if (buf.length - 4 < len) break;
        const msg = JSON.parse(buf.toString('utf8', 4, 4 + len));
        buf = buf.subarray(4 + len);
        if (!msg.ok) return done(false);
        if (step === 0) {
          step = 1;
          sock.write(GET_TOKEN);
        } else {
          return done(true);
        }
      }
    });
    sock.on('error', () => { if (step < 2) done(false); });
    sock.on('close', () => { if (step < 2) done(false); });
  });
}

const latencies = [];
let errors = 0;
// Warm up briefly, then measure.
const warmEnd = performance.now() + 300;
await Promise.all(Array.from({ length: callers }, async () => {
  while (performance.now() < warmEnd) await call();
}));
const cpu0 = process.cpuUsage();
const start = performance.now();
const end = start + seconds * 1000;
await Promise.all(Array.from({ length: callers }, async () => {
  while (performance.now() < end) {
    const t0 = performance.now();
    const ok = await call();
    latencies.push(performance.now() - t0);
    if (!ok) errors++;
  }
}));
const elapsed = (performance.now() - start) / 1000;
const cpu = process.cpuUsage(cpu0);
latencies.sort((a, b) => a - b);
const pct = (p) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))] ?? 0;
process.stdout.write(JSON.stringify({ requests: latencies.length, seconds: elapsed, p50Ms: pct(0.5), p99Ms: pct(0.99), errors, clientCpuMs: Math.round((cpu.user + cpu.system) / 1000) }) + '\n');

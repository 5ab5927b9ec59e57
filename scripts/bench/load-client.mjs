// A load generator in its own process: N connections, each a closed loop of requests for a fixed
// time — get_token {provider: TARGET}, or get_api_key {name: TARGET} when OP is get_api_key.
// Prints {requests, seconds, p50Ms, p99Ms, errors} as JSON.
// usage: load-client.mjs SOCKET CONNS SECONDS [TARGET] [OP]
import net from 'node:net';

const [socketPath, connsArg, secondsArg, target = 'bench', op = 'get_token'] = process.argv.slice(2);
if (op !== 'get_token' && op !== 'get_api_key') throw new Error(`unknown op ${op}: get_token or get_api_key`);
const conns = Number(connsArg);
const seconds = Number(secondsArg);

function frame(obj) {
  const body = Buffer.from(JSON.stringify(obj));
  const head = Buffer.allocUnsafe(4);
  head.writeUInt32BE(body.length, 0);
  return Buffer.concat([head, body]);
}

function connection() {
  return new Promise((resolve, reject) => {
    const sock = net.connect(socketPath);
    let buf = Buffer.alloc(0);
    let waiting;
    sock.on('data', (chunk) => {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      while (buf.length >= 4) {
        const len = buf.readUInt32BE(0);
        if (buf.length - 4 < len) break;
        const msg = JSON.parse(buf.toString('utf8', 4, 4 + len));
        buf = buf.subarray(4 + len);
        const w = waiting;
        waiting = undefined;
        w?.(msg);
      }
    });
    sock.on('error', reject);
    const request = (obj) => new Promise((res) => { waiting = res; sock.write(frame(obj)); });
    sock.on('connect', async () => {
      const hs = await request({ v: 2, op: 'handshake', payload: { minVersion: 1, maxVersion: 2 } });
      if (!hs.ok) reject(new Error(`handshake failed: ${JSON.stringify(hs)}`));
      resolve({ request, close: () => sock.destroy() });
    });
  });
}

const clients = await Promise.all(Array.from({ length: conns }, connection));
const latencies = [];
let errors = 0;
let id = 0;
const payload = op === 'get_api_key' ? { name: target } : { provider: target };
// Warm up briefly, then measure.
const warmEnd = performance.now() + 300;
await Promise.all(clients.map(async (c) => {
  while (performance.now() < warmEnd) await c.request({ v: 2, id: String(++id), op, payload });
}));
const start = performance.now();
const end = start + seconds * 1000;
await Promise.all(clients.map(async (c) => {
  while (performance.now() < end) {
    const t0 = performance.now();
    const msg = await c.request({ v: 2, id: String(++id), op, payload });
    latencies.push(performance.now() - t0);
    if (!msg.ok) errors++;
  }
}));
const elapsed = (performance.now() - start) / 1000;
latencies.sort((a, b) => a - b);
const pct = (p) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))] ?? 0;
for (const c of clients) c.close();
process.stdout.write(JSON.stringify({ requests: latencies.length, seconds: elapsed, p50Ms: pct(0.5), p99Ms: pct(0.99), errors }) + '\n');

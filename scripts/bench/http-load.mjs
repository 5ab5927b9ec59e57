// HTTP load for the routes bench: node http-load.mjs URL CONNS SECONDS [AUTH]
// CONNS keep-alive connections each send GET URL back to back for SECONDS; prints
// {requests, seconds, p50Ms, p99Ms, errors}.
import { Pool } from 'undici';

const [url, connsArg, secondsArg, auth] = process.argv.slice(2);
const conns = Number(connsArg);
const seconds = Number(secondsArg);
const u = new URL(url);
const pool = new Pool(u.origin, { connections: conns, pipelining: 1 });
const headers = auth ? { authorization: auth } : {};
const latencies = [];
let errors = 0;
const end = Date.now() + seconds * 1000;
const t0 = process.hrtime.bigint();
await Promise.all(
  Array.from({ length: conns }, async () => {
    while (Date.now() < end) {
      const s = process.hrtime.bigint();
      try {
        const res = await pool.request({ path: u.pathname + u.search, method: 'GET', headers });
        await res.body.dump();
        if (res.statusCode !== 200) errors++;
      } catch {
        errors++;
      }
      latencies.push(Number(process.hrtime.bigint() - s) / 1e6);
    }
  }),
);
const elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
latencies.sort((a, b) => a - b);
const at = (q) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * q))] ?? NaN;
process.stdout.write(JSON.stringify({ requests: latencies.length, seconds: elapsed, p50Ms: at(0.5), p99Ms: at(0.99), errors }) + '\n');
await pool.close();

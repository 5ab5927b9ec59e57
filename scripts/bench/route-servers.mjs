// Helpers for the routes bench, each in its own process:
//   node route-servers.mjs upstream   — a loopback HTTP upstream: /small (a JSON answer),
//                                       /sse (an event now, another 200 ms later), /large?mb=N
//   node route-servers.mjs floor URL  — the floor: node:http in front of an undici Pool to URL,
//                                       passing requests through with no checks, no injection
// Each prints its port as one line on stdout.
import http from 'node:http';
import { pipeline } from 'node:stream';
import { Pool } from 'undici';

const mode = process.argv[2];

if (mode === 'upstream') {
  const small = Buffer.from(JSON.stringify({ id: 'x', object: 'chat.completion', choices: [{ message: { content: 'hello' } }] }));
  const block = Buffer.alloc(64 * 1024, 'abcdefghijklmnopqrstuvwxyz0123456789\n');
  const server = http.createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
    const url = new URL(req.url, 'http://u');
    req.resume();
    req.on('end', () => {
      if (url.pathname.endsWith('/small')) {
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(small.length) });
        res.end(small);
      } else if (url.pathname.endsWith('/sse')) {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write(`data: ${Date.now()}\n\n`);
        setTimeout(() => res.end('data: done\n\n'), 200);
      } else if (url.pathname.endsWith('/large')) {
        const total = Number(url.searchParams.get('mb') ?? '1') * 1024 * 1024;
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(total) });
        let sent = 0;
        const pump = () => {
          while (sent < total) {
            sent += block.length;
            if (!res.write(block)) return void res.once('drain', pump);
          }
          res.end();
        };
        pump();
      } else {
        res.writeHead(404).end();
      }
    });
  });
  server.listen(0, '127.0.0.1', () => process.stdout.write(`${server.address().port}\n`));
} else if (mode === 'floor') {
  const pool = new Pool(process.argv[3], { connections: 1024, keepAliveTimeout: 30_000 });
  const server = http.createServer({ requestTimeout: 0, keepAliveTimeout: 5_000, noDelay: true }, async (req, res) => {
    try {
      const up = await pool.request({ method: req.method, path: req.url.replace(/^\/[^/]+/, ''), headers: { 'content-type': req.headers['content-type'] ?? 'application/octet-stream' }, body: req.method === 'GET' || req.method === 'HEAD' ? null : req });
      res.writeHead(up.statusCode, up.headers);
      res.flushHeaders();
      pipeline(up.body, res, () => undefined);
    } catch {
      res.writeHead(502).end();
    }
  });
  server.listen(0, '127.0.0.1', () => process.stdout.write(`${server.address().port}\n`));
} else {
  process.stderr.write('usage: route-servers.mjs upstream | floor URL\n');
  process.exit(2);
}
process.on('SIGTERM', () => process.exit(0));

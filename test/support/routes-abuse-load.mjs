// Load for routes-abuse.test.ts from a process of its own (its open-files limit raised by the
// test, so a thousand sockets fit and the test process stays responsive):
// - an SSE upstream on 127.0.0.1: GET /stream?events=N&gap=MS sends N events MS apart, then
//   `data: [DONE]`; event 1 echoes the request's Authorization header (the injected credential,
//   which the proxy must scrub); GET /quick answers at once. It counts the streams open at once.
// - on stdin, one JSON command per line:
//   {"cmd":"streams", targets:[{port,token}], perTarget, events, gapMs, forms:[...], maskedLength, deadlineMs}
//     opens perTarget streams on every target at once through the route `sse`; prints
//     "streams-open <json>" once every stream has its first event, "streams <json>" at the end.
//   {"cmd":"slowloris", port, count, byteEveryMs, deadlineMs}
//     opens count connections that send a request head one byte at a time and never finish it;
//     prints "slowloris-open <json>" once all are connected, "slowloris <json>" once the proxy has
//     closed them all (or at the deadline, when the rest are counted as still open and closed).
// stdout: "upstream <port>" once listening.
import http from 'node:http';
import net from 'node:net';
import readline from 'node:readline';
import { dechunk } from './http-bytes.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const out = (word, data) => process.stdout.write(`${word} ${JSON.stringify(data)}\n`);

// ---- the SSE upstream -------------------------------------------------------------------------

const upstream = { requests: 0, open: 0, maxOpen: 0 };
const server = http.createServer((req, res) => {
  upstream.requests += 1;
  const url = new URL(req.url ?? '/', 'http://upstream');
  if (url.pathname === '/quick') {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '5' });
    res.end('quick');
    return;
  }
  if (url.pathname !== '/stream') {
    res.writeHead(404, { 'content-length': '0' });
    res.end();
    return;
  }
  const events = Number(url.searchParams.get('events') ?? 10);
  const gap = Number(url.searchParams.get('gap') ?? 200);
  upstream.open += 1;
  upstream.maxOpen = Math.max(upstream.maxOpen, upstream.open);
  let timer;
  res.once('close', () => {
    upstream.open -= 1;
    clearTimeout(timer);
  });
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  const credential = req.headers.authorization ?? '';
  const pad = 'p'.repeat(256);
  let i = 0;
  const tick = () => {
    if (i === events) {
      res.end('data: [DONE]\n\n');
      return;
    }
    res.write(`data: ${JSON.stringify(i === 1 ? { i, echo: credential } : { i, pad })}\n\n`);
    i += 1;
    timer = setTimeout(tick, gap);
  };
  tick();
});
server.keepAliveTimeout = 1000;
server.maxConnections = 4000;
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
out('upstream', server.address().port);

// ---- streams through the proxy -----------------------------------------------------------------

function oneStream(target, cmd, onFirstEvent) {
  return new Promise((resolve) => {
    const started = performance.now();
    const chunks = [];
    let first = false;
    let finished = false;
    const sock = net.connect(target.port, '127.0.0.1');
    const timer = setTimeout(() => finish('deadline'), cmd.deadlineMs);
    const finish = (why) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      sock.destroy();
      if (!first) onFirstEvent();
      resolve({ why, raw: Buffer.concat(chunks), ms: performance.now() - started });
    };
    sock.on('connect', () =>
      sock.write(
        `GET /sse/stream?events=${cmd.events}&gap=${cmd.gapMs} HTTP/1.1\r\nHost: listener\r\n` +
          `Proxy-Authorization: Bearer ${target.token}\r\nConnection: close\r\n\r\n`,
      ),
    );
    sock.on('data', (d) => {
      chunks.push(d);
      if (!first && d.includes('data: ')) {
        first = true;
        onFirstEvent();
      }
    });
    sock.on('error', (err) => finish(`error ${err.code ?? err.message}`));
    sock.on('close', () => finish('closed'));
  });
}

async function streams(cmd) {
  const total = cmd.targets.length * cmd.perTarget;
  const started = performance.now();
  upstream.maxOpen = upstream.open;
  let pendingFirst = total;
  const result = { total, ok: 0, failures: [], leaks: 0, maskedEcho: 0, maxOpenUpstream: 0, maxMs: 0, totalMs: 0, openMs: 0 };
  const runs = [];
  for (const target of cmd.targets) {
    for (let i = 0; i < cmd.perTarget; i++) {
      runs.push(
        oneStream(target, cmd, () => {
          pendingFirst -= 1;
          if (pendingFirst === 0) {
            result.openMs = Math.round(performance.now() - started);
            out('streams-open', { openMs: result.openMs, upstreamOpen: upstream.open });
          }
        }),
      );
    }
  }
  for (const r of await Promise.all(runs)) {
    result.maxMs = Math.max(result.maxMs, Math.round(r.ms));
    const text = r.raw.toString('latin1');
    if (cmd.forms.some((f) => text.includes(f))) result.leaks += 1;
    const split = r.raw.indexOf('\r\n\r\n');
    const head = split === -1 ? text : text.slice(0, split);
    const body = split === -1 ? Buffer.alloc(0) : /transfer-encoding: chunked/i.test(head) ? dechunk(r.raw.subarray(split + 4)) : r.raw.subarray(split + 4);
    const events = body.toString('latin1').split('\n\n').filter((e) => e.startsWith('data: '));
    const done = events.at(-1) === 'data: [DONE]';
    // The echoed credential arrives masked, byte for byte.
    const echo = events.find((e) => e.includes('"echo"'));
    if (echo !== undefined && echo.includes(`"echo":"${'*'.repeat(cmd.maskedLength)}"`)) result.maskedEcho += 1;
    if (r.why === 'closed' && head.startsWith('HTTP/1.1 200') && done && events.length === cmd.events + 1) result.ok += 1;
    else if (result.failures.length < 5) result.failures.push({ why: r.why, head: head.slice(0, 200), events: events.length });
  }
  result.maxOpenUpstream = upstream.maxOpen;
  result.totalMs = Math.round(performance.now() - started);
  out('streams', result);
}

// ---- slowloris ----------------------------------------------------------------------------------

async function slowloris(cmd) {
  const head = 'GET /up/echo HTTP/1.1\r\nHost: listener\r\nX-Slow: ';
  const started = performance.now();
  const conns = [];
  for (let i = 0; i < cmd.count; i++) {
    const c = { sock: net.connect(cmd.port, '127.0.0.1'), connectedAt: -1, closedAt: -1, sent: 0, answer: '', error: '' };
    conns.push(c);
    let timer;
    const drip = () => {
      if (c.closedAt >= 0 || c.sock.destroyed) return;
      c.sock.write(c.sent < head.length ? head[c.sent] : 'a');
      c.sent += 1;
      timer = setTimeout(drip, cmd.byteEveryMs * (0.5 + Math.random()));
    };
    c.sock.on('connect', () => {
      c.connectedAt = performance.now();
      timer = setTimeout(drip, Math.random() * cmd.byteEveryMs);
    });
    c.sock.on('data', (d) => (c.answer += d.toString('latin1')));
    c.sock.on('error', (err) => (c.error = err.code ?? err.message));
    c.sock.on('close', () => {
      c.closedAt = performance.now();
      clearTimeout(timer);
    });
  }
  // Every connection is either connected or already refused.
  const settled = () => conns.every((c) => c.connectedAt >= 0 || c.closedAt >= 0);
  while (!settled() && performance.now() - started < 10_000) await sleep(20);
  await sleep(1000);
  out('slowloris-open', { connected: conns.filter((c) => c.connectedAt >= 0).length, open: conns.filter((c) => c.closedAt < 0).length });

  while (conns.some((c) => c.closedAt < 0) && performance.now() - started < cmd.deadlineMs) await sleep(50);
  const result = { count: cmd.count, connected: 0, refusedAtAccept: 0, cutByProxy: 0, stillOpen: 0, answered2xx: 0, answers: {}, minLifeMs: Infinity, maxLifeMs: 0, maxBytesSent: 0 };
  for (const c of conns) {
    if (c.connectedAt >= 0) result.connected += 1;
    result.maxBytesSent = Math.max(result.maxBytesSent, c.sent);
    const status = /^HTTP\/1\.1 (\d{3})/.exec(c.answer)?.[1] ?? (c.answer === '' ? 'none' : 'other');
    result.answers[status] = (result.answers[status] ?? 0) + 1;
    if (status.startsWith('2')) result.answered2xx += 1;
    if (c.closedAt < 0) {
      result.stillOpen += 1;
      c.sock.destroy();
      continue;
    }
    const life = c.connectedAt >= 0 ? c.closedAt - c.connectedAt : 0;
    // Over the cap, node:http closes a connection as soon as it is accepted.
    if (life < 1000 && c.sent <= 2) result.refusedAtAccept += 1;
    else {
      result.cutByProxy += 1;
      result.minLifeMs = Math.min(result.minLifeMs, Math.round(life));
      result.maxLifeMs = Math.max(result.maxLifeMs, Math.round(life));
    }
  }
  out('slowloris', result);
}

const lines = readline.createInterface({ input: process.stdin });
lines.on('line', (line) => {
  const cmd = JSON.parse(line);
  const run = cmd.cmd === 'streams' ? streams(cmd) : cmd.cmd === 'slowloris' ? slowloris(cmd) : Promise.reject(new Error(`unknown command ${cmd.cmd}`));
  run.catch((err) => out('error', String(err?.stack ?? err)));
});
lines.on('close', () => process.exit(0));

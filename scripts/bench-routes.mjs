#!/usr/bin/env node
// npm run bench (after bench.mjs), or node scripts/bench-routes.mjs [--json] [--seconds N]
//
// Routes (SPEC §6, issue 11) against a floor measured in the same run: a minimal pass-through
// proxy (node:http in front of an undici Pool, no checks, no injection), and direct calls to the
// same loopback upstream. Rounds alternate proxy/floor/direct; ratios are medians of the rounds'.
//  - forwarded requests at 1, 16 and 64 connections: credproxy ≥ 0.8× the floor's throughput,
//    with p50/p99 of all three and the latency each proxy adds over direct;
//  - latency credproxy adds over direct ≤ 1.25× what the floor adds (p50 at 1 connection);
//  - first SSE byte delayed < 5 ms against direct (median of 20);
//  - proxy RSS growth while streaming 1 GiB through a route < 30 MB.
// The upstream is plain http on 127.0.0.1 (allowed for loopback upstreams), so the figures
// measure the proxy, not TLS.
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { request } from 'undici';
import { rssMb } from './bench/children.mjs';
import { benchContext, ROUNDS } from './bench/context.mjs';
import { median, medianRound, pairedRatio } from './bench/stats.mjs';

// Storage encryption needs a key source; a key file keeps the bench off any OS keyring.
const { json, seconds: SECONDS, here, bin: BIN, say, dir, env, children, start } = benchContext('cpbr-', (d) => ({ CREDPROXY_KEY_FILE: path.join(d, 'store.key') }));

/** A helper process that prints its port first. */
function startServer(args) {
  const child = start(args);
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${args.join(' ')} printed no port: ${child.output}`)), 10_000);
    child.stdout.on('data', () => {
      const m = /^(\d+)\n/.exec(child.output);
      if (m) {
        clearTimeout(t);
        resolve({ child, port: Number(m[1]) });
      }
    });
  });
}

function cli(args, input) {
  const r = spawnSync(process.execPath, [BIN, ...args], { env, encoding: 'utf8', input: input ?? '' });
  if (r.status !== 0) throw new Error(`credproxy ${args.join(' ')} failed: ${r.stderr}`);
  return r;
}


function load(url, conns, auth) {
  const r = spawnSync(process.execPath, [path.join(here, 'bench', 'http-load.mjs'), url, String(conns), String(SECONDS), ...(auth ? [auth] : [])], { encoding: 'utf8', env });
  if (r.status !== 0) throw new Error(`load failed: ${r.stderr}`);
  const out = JSON.parse(r.stdout);
  return { rps: out.requests / out.seconds, p50Ms: out.p50Ms, p99Ms: out.p99Ms, errors: out.errors };
}

const CONNS = [1, 16, 64];
/** A side's figure: its median round, with the median p50 and p99 of its rounds. */
const medianOf = (samples) => ({
  ...medianRound(samples),
  p50Ms: median(samples.map((x) => x.p50Ms)),
  p99Ms: median(samples.map((x) => x.p99Ms)),
});
const ms = (v) => Number(v.toFixed(3));

/** Time to the first body byte of /sse, ms. */
async function firstSseByte(url, auth) {
  const t0 = process.hrtime.bigint();
  const res = await request(url, { headers: auth ? { authorization: auth } : {} });
  for await (const _chunk of res.body) {
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    res.body.destroy();
    return ms;
  }
  return NaN;
}

try {
  const { port: upPort } = await startServer([path.join(here, 'bench', 'route-servers.mjs'), 'upstream']);
  const upstream = `http://127.0.0.1:${upPort}`;
  const { child: floorChild, port: floorPort } = await startServer([path.join(here, 'bench', 'route-servers.mjs'), 'floor', upstream]);
  spawnSync('sh', ['-c', `head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n' > '${env.CREDPROXY_KEY_FILE}'; chmod 600 '${env.CREDPROXY_KEY_FILE}'`]);
  const serve = start([BIN, 'serve']);
  for (let i = 0; spawnSync(process.execPath, [BIN, 'ping'], { env }).status !== 0; i++) {
    if (i > 100) throw new Error(`credproxy serve did not start: ${serve.output}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  cli(['key', 'set', 'bench'], 'bench-api-key-0123456789abcdef0123456789abcdef\n');
  cli(['route', 'add', 'bench', '--upstream', upstream, '--api-key', 'bench']);
  const added = JSON.parse(cli(['client', 'add', 'bench', '--route', 'bench', '--http', '127.0.0.1:0', '--json']).stdout);
  const auth = `Bearer ${added.capability_token}`;
  const proxyBase = `http://${added.http}/bench`;
  const floorBase = `http://127.0.0.1:${floorPort}/bench`;
  say(`routes bench: ${SECONDS} s per round, ${ROUNDS} rounds; upstream ${upstream}, credproxy ${added.http}, floor :${floorPort}`);

  // Each connection count: rounds alternate credproxy / floor / direct. A ratio is the median of
  // the rounds' own ratios (scripts/bench/stats.mjs); the latency each proxy adds is its p50
  // (p99) minus direct's in the same round.
  const throughput = {};
  for (const conns of CONNS) {
    const proxy = [];
    const floor = [];
    const direct = [];
    for (let r = 0; r < ROUNDS; r++) {
      proxy.push(load(`${proxyBase}/small`, conns, auth));
      floor.push(load(`${floorBase}/small`, conns));
      direct.push(load(`${upstream}/small`, conns));
    }
    const p = medianOf(proxy);
    const f = medianOf(floor);
    const d = medianOf(direct);
    const addedIn = (xs, q) => xs.map((x, i) => Math.max(x[q] - direct[i][q], 0.001));
    const added = (xs) => ({ p50: median(addedIn(xs, 'p50Ms')), p99: median(addedIn(xs, 'p99Ms')) });
    const addedRatio = (q) => median(addedIn(proxy, q).map((v, i) => v / addedIn(floor, q)[i]));
    throughput[conns] = {
      proxy: p, floor: f, direct: d, ratio: pairedRatio(proxy, floor),
      proxyAdded: added(proxy), floorAdded: added(floor), addedRatio: { p50: addedRatio('p50Ms'), p99: addedRatio('p99Ms') },
    };
    const t = throughput[conns];
    say(
      `  ${String(conns).padStart(2)} conn: credproxy ${Math.round(p.rps)} req/s (p50 ${p.p50Ms.toFixed(2)} / p99 ${p.p99Ms.toFixed(2)} ms), ` +
        `floor ${Math.round(f.rps)} (p50 ${f.p50Ms.toFixed(2)} / p99 ${f.p99Ms.toFixed(2)}), direct ${Math.round(d.rps)} (p50 ${d.p50Ms.toFixed(2)} / p99 ${d.p99Ms.toFixed(2)}) → ${t.ratio.toFixed(2)}× the floor; ` +
        `added p50 ${t.proxyAdded.p50.toFixed(3)} ms vs the floor's ${t.floorAdded.p50.toFixed(3)} (${t.addedRatio.p50.toFixed(2)}×)${p.errors ? ` (${p.errors} errors)` : ''}`,
    );
  }
  const proxyAdded = throughput[1].proxyAdded.p50;
  const floorAdded = throughput[1].floorAdded.p50;
  const addedRatio1 = throughput[1].addedRatio.p50;

  const sseDirect = [];
  const sseProxy = [];
  for (let i = 0; i < 20; i++) {
    sseDirect.push(await firstSseByte(`${upstream}/sse`));
    sseProxy.push(await firstSseByte(`${proxyBase}/sse`, auth));
  }
  const sseDelay = median(sseProxy) - median(sseDirect);
  say(`  first SSE byte: direct ${median(sseDirect).toFixed(2)} ms, through credproxy ${median(sseProxy).toFixed(2)} ms → +${sseDelay.toFixed(2)} ms`);

  // 1 GiB down, read as fast as the client can, with the RSS of the process in between sampled.
  const stream1GiB = async (url, pid, headers) => {
    const before = rssMb(pid);
    let max = before;
    const sampler = setInterval(() => (max = Math.max(max, rssMb(pid))), 50);
    const t0 = Date.now();
    const res = await request(url, { headers });
    let bytes = 0;
    for await (const chunk of res.body) bytes += chunk.length;
    clearInterval(sampler);
    return { bytes, seconds: (Date.now() - t0) / 1000, before, max };
  };
  const floorStream = await stream1GiB(`${floorBase}/large?mb=1024`, floorChild.pid, {});
  const { bytes, seconds: streamSeconds, before: rssBefore, max: rssMax } = await stream1GiB(`${proxyBase}/large?mb=1024`, serve.pid, { authorization: auth });
  const rssGrowth = rssMax - rssBefore;
  say(`  1 GiB through the route: ${(bytes / 2 ** 30).toFixed(2)} GiB in ${streamSeconds.toFixed(1)} s, proxy RSS ${rssBefore.toFixed(1)} → max ${rssMax.toFixed(1)} MB (+${rssGrowth.toFixed(1)}); the floor: ${floorStream.seconds.toFixed(1)} s, +${(floorStream.max - floorStream.before).toFixed(1)} MB`);

  const targets = [
    ...CONNS.map((c) => ({ name: `forwarded throughput @${c} conn${c > 1 ? 's' : ''} vs floor`, value: throughput[c].ratio, unit: '× (≥ 0.8)', met: throughput[c].ratio >= 0.8 })),
    { name: "added p50 latency over direct @1 conn vs the floor's", value: addedRatio1, unit: '× (≤ 1.25)', met: addedRatio1 <= 1.25 },
    { name: 'first SSE byte delay', value: sseDelay, unit: 'ms (< 5)', met: sseDelay < 5 },
    { name: 'RSS growth streaming 1 GiB', value: rssGrowth, unit: 'MB (< 30)', met: rssGrowth < 30 && bytes === 2 ** 30 },
  ];
  const report = {
    machine: { cpus: os.cpus().length, node: process.version, seconds_per_round: SECONDS, rounds: ROUNDS },
    throughput: Object.fromEntries(Object.entries(throughput).map(([c, t]) => [c, {
      proxy_rps: Math.round(t.proxy.rps), floor_rps: Math.round(t.floor.rps), direct_rps: Math.round(t.direct.rps), ratio: Number(t.ratio.toFixed(3)),
      proxy_p50_ms: ms(t.proxy.p50Ms), proxy_p99_ms: ms(t.proxy.p99Ms),
      floor_p50_ms: ms(t.floor.p50Ms), floor_p99_ms: ms(t.floor.p99Ms),
      direct_p50_ms: ms(t.direct.p50Ms), direct_p99_ms: ms(t.direct.p99Ms),
      proxy_added_p50_ms: ms(t.proxyAdded.p50), floor_added_p50_ms: ms(t.floorAdded.p50), added_p50_ratio: ms(t.addedRatio.p50),
      proxy_added_p99_ms: ms(t.proxyAdded.p99), floor_added_p99_ms: ms(t.floorAdded.p99), added_p99_ratio: ms(t.addedRatio.p99),
      errors: t.proxy.errors,
    }])),
    latency: { direct_p50_ms: ms(throughput[1].direct.p50Ms), proxy_added_ms: ms(proxyAdded), floor_added_ms: ms(floorAdded) },
    sse: { direct_first_byte_ms: Number(median(sseDirect).toFixed(2)), proxy_first_byte_ms: Number(median(sseProxy).toFixed(2)) },
    stream_1gib: {
      bytes, seconds: streamSeconds, rss_before_mb: Number(rssBefore.toFixed(1)), rss_max_mb: Number(rssMax.toFixed(1)),
      floor_seconds: floorStream.seconds, floor_rss_growth_mb: Number((floorStream.max - floorStream.before).toFixed(1)),
    },
    targets: targets.map((t) => ({ name: t.name, value: Number(Number(t.value).toFixed(3)), unit: t.unit, met: t.met })),
  };
  if (json) process.stdout.write(JSON.stringify({ routes: report }, null, 2) + '\n');
  else for (const t of targets) process.stdout.write(`${t.met ? 'met   ' : 'MISSED'}  routes: ${t.name}: ${Number(t.value).toFixed(2)} ${t.unit}\n`);
} finally {
  await children.stopAll();
  rmSync(dir, { recursive: true, force: true });
}

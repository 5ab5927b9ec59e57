// The Redis store in `npm run bench` (issue 13): a cached get_token from a Redis-backed proxy
// against the file-backed one in the same run (the store is not on the hot path: ≥ 0.9×), and
// the time of 300 concurrent get_token on an expired token spread over a fleet of three proxies
// on one Redis against the same on one file-backed proxy (< 2×). Needs `redis-server`; without
// it this part is skipped and says so.
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';

function hasRedis() {
  return spawnSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' }).status === 0;
}

async function redisAnswers(socket) {
  return new Promise((resolve) => {
    const c = net.createConnection(socket);
    c.on('connect', () => c.write('PING\r\n'));
    c.on('data', (d) => {
      c.destroy();
      resolve(d.toString().startsWith('+PONG'));
    });
    c.on('error', () => resolve(false));
  });
}

/**
 * @param o.start       start(args, {env}) → child (tracked and stopped by bench.mjs)
 * @param o.load        load(socketPath, conns, op) → {rps, p50Ms, p99Ms}
 */
export async function benchRedis(o) {
  const { BIN, dir, baseEnv, fileSocket, as, start, load, medianRound, pairedRatio, waitForSocket, say, ProxyClient, createScriptedUser, rounds } = o;
  if (!hasRedis()) {
    say('redis-server is not installed: skipping the Redis store figures (apt-get install -y redis-server)');
    return undefined;
  }
  const rdir = path.join(dir, 'redis');
  mkdirSync(rdir, { mode: 0o700 });
  const socket = path.join(rdir, 'r.sock');
  start(['-e', `const r = require('child_process').spawn('redis-server', ['--port', '0', '--unixsocket', ${JSON.stringify(socket)}, '--unixsocketperm', '700', '--save', '', '--appendonly', 'no', '--dir', ${JSON.stringify(rdir)}], { stdio: 'inherit' }); r.on('exit', (c) => process.exit(c ?? 0)); process.on('SIGTERM', () => r.kill('SIGTERM'));`]);
  for (let i = 0; !(await redisAnswers(socket)); i++) {
    if (i > 200) throw new Error('redis-server did not start');
    await new Promise((r) => setTimeout(r, 50));
  }
  const keyFile = path.join(dir, 'fleet.key');
  writeFileSync(keyFile, randomBytes(32).toString('hex'), { mode: 0o600 });
  const configFile = path.join(dir, 'redis-config.json');
  writeFileSync(
    configFile,
    JSON.stringify({
      store: { type: 'redis', url: `unix://${socket}`, prefix: 'bench:' },
      providers: { rt: { issuer: as.issuer, client_id: 'paste', scopes: ['openid', 'offline_access'], flow: 'browser_redirect', redirect_uri: as.clients.paste.redirectUri } },
    }),
  );
  const members = ['r1', 'r2', 'r3'].map((n) => ({
    socket: path.join(dir, `${n}.sock`),
    env: { ...baseEnv, CREDPROXY_SOCKET: path.join(dir, `${n}.sock`), CREDPROXY_DATA_DIR: path.join(dir, `${n}-data`), CREDPROXY_CONFIG: configFile, CREDPROXY_KEY_FILE: keyFile },
  }));
  say('starting three proxies on one Redis…');
  for (const m of members) start([BIN, 'serve'], { env: m.env });
  const owners = await Promise.all(members.map((m) => waitForSocket(m.socket)));
  await owners[0].call('save_token', { provider: 'bench', token: { access_token: 'bench-access-token', refresh_token: 'bench-refresh', expiry: Math.floor(Date.now() / 1000) + 86_400 } });
  await owners[0].call('set_api_key', { name: 'bench', key: 'bench-api-key-0123456789abcdef0123456789abcdef' });

  const cached = {};
  for (const conns of [1, 16]) {
    const file = [];
    const redis = [];
    for (let round = 0; round < rounds; round++) {
      file.push(load(fileSocket, conns, 'get_token'));
      redis.push(load(members[0].socket, conns, 'get_token'));
    }
    const f = medianRound(file);
    const r = medianRound(redis);
    const ratio = pairedRatio(redis, file);
    cached[conns] = { file_rps: Math.round(f.rps), redis_rps: Math.round(r.rps), ratio: Number(ratio.toFixed(3)), redis_p99_ms: Number(r.p99Ms.toFixed(3)) };
    say(`get_token (cached) @${String(conns).padStart(2)} conns: Redis store ${Math.round(r.rps)} req/s vs file store ${Math.round(f.rps)} req/s → ${ratio.toFixed(2)}×`);
  }

  // Fleet refresh against one proxy's: in each of three rounds, log an account in on both, let
  // the 2 s access tokens expire and send 300 concurrent get_token to each (30 connections × 10).
  // They ask for a token that is valid now (min_valid_seconds 0): with the default 60 s — or even
  // 1 s, expiry being whole seconds — a token the provider issues for 2 s can be too short the
  // moment it arrives, and a request answered after its member's refresh ended would start another
  // one by design. The ratio is the median round's.
  say('300 concurrent get_token on an expired token: one file-backed proxy, then a fleet of three on Redis…');
  const loginVia = async (socketPath, bucket) => {
    const c = await ProxyClient.connect({ socketPath });
    const init = await c.call('oauth_initiate', { provider: 'rt', bucket });
    const user = createScriptedUser();
    await c.call('oauth_exchange', { session_id: init.session_id, code: await user.readPastedCode(await user.authorize(init.auth_url)) });
    c.close();
  };
  // Each member's first refresh loads the OAuth client code and opens its connection to the
  // provider (~100 ms once per process). The file-backed proxy did its first one above (the
  // 100-request refresh test); the members do theirs now, so the rounds compare the refreshes
  // themselves and not whichever member happens to lead a round for the first time.
  for (const [i, m] of members.entries()) {
    await loginVia(m.socket, `warm${i}`);
    const c = await ProxyClient.connect({ socketPath: m.socket });
    await c.call('refresh_token', { provider: 'rt', bucket: `warm${i}` });
    await c.call('logout', { provider: 'rt', bucket: `warm${i}`, revoke: false });
    c.close();
  }
  const burst = async (sockets, bucket) => {
    const conns = await Promise.all(Array.from({ length: 30 }, (_, i) => ProxyClient.connect({ socketPath: sockets[i % sockets.length] })));
    as.resetCounts();
    const t0 = process.hrtime.bigint();
    const answers = await Promise.allSettled(Array.from({ length: 300 }, (_, i) => conns[i % 30].call('get_token', { provider: 'rt', bucket, min_valid_seconds: 0 })));
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    for (const c of conns) c.close();
    return { ms: Number(ms.toFixed(1)), served: answers.filter((a) => a.status === 'fulfilled').length, grants: as.grantCounts.refresh_token };
  };
  const rounds3 = [];
  for (let round = 0; round < 3; round++) {
    // Accounts of their own each round: a token used in a round is renewed in the background
    // before it expires, so it would not need a refresh in the next.
    await loginVia(fileSocket, `single${round}`);
    await loginVia(members[0].socket, `fleet${round}`);
    await new Promise((r) => setTimeout(r, 2_500)); // the 2 s access tokens have expired
    const single = await burst([fileSocket], `single${round}`);
    const fleet = await burst(members.map((m) => m.socket), `fleet${round}`);
    rounds3.push({ single, fleet, ratio: fleet.ms / single.ms });
    // Used accounts are renewed in the background: gone, they cannot add grants to the next round's count.
    for (const [socketPath, bucket] of [[fileSocket, `single${round}`], [members[0].socket, `fleet${round}`]]) {
      const c = await ProxyClient.connect({ socketPath });
      await c.call('logout', { provider: 'rt', bucket, revoke: false });
      c.close();
    }
    say(`  round ${round + 1}: one proxy ${single.ms} ms (${single.grants} grant), fleet of three ${fleet.ms} ms (${fleet.grants} grant${fleet.grants === 1 ? '' : 's'}) → ${(fleet.ms / single.ms).toFixed(2)}×`);
  }
  const mid = [...rounds3].sort((a, b) => a.ratio - b.ratio)[1];
  const worst = (side, field) => Math.max(...rounds3.map((r) => r[side][field]));
  const least = (side, field) => Math.min(...rounds3.map((r) => r[side][field]));
  const single = { ...mid.single, grants: worst('single', 'grants'), served: least('single', 'served') };
  const fleet = { ...mid.fleet, grants: worst('fleet', 'grants'), served: least('fleet', 'served') };
  say(`refresh of 300 concurrent requests (median of 3 rounds): one proxy ${single.ms} ms, fleet of three ${fleet.ms} ms → ${mid.ratio.toFixed(2)}× (most grants in a round: ${single.grants} / ${fleet.grants})`);
  for (const c of owners) c.close();
  return { cached, refresh: { single, fleet, ratio: Number(mid.ratio.toFixed(3)), rounds: rounds3.map((r) => ({ single_ms: r.single.ms, fleet_ms: r.fleet.ms, fleet_grants: r.fleet.grants })) } };
}

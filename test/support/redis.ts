/**
 * A real redis-server for tests, started by the test on a Unix socket in a fresh 0700 temp dir
 * (no TCP port: `--port 0`), with an append-only file synced on every write, so a Redis killed
 * with -9 and started again comes back with its data (as a production Redis with AOF would). Needs the `redis-server` binary
 * (Debian: `apt-get install -y redis-server`; .ci/run installs it).
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { tempDir } from './temp.js';

export interface TestRedis {
  /** `unix:///…/redis.sock`, for the config's `store.url`. */
  url: string;
  socket: string;
  /** Every key and value now stored, raw (for scanning the bytes at rest). */
  dump(): Promise<Array<{ key: string; bytes: Buffer }>>;
  /** Send one command (RESP) and answer its raw reply. */
  command(...args: string[]): Promise<string>;
  /** Stop it (kill -9: a crash, not a shutdown); start() brings it back on the same socket, with its data. */
  kill(): Promise<void>;
  start(): Promise<void>;
  close(): Promise<void>;
}

function redisBinary(): string {
  try {
    return execFileSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error('redis-server is not installed — these tests start a real Redis: `sudo apt-get install -y redis-server` (Debian/Ubuntu), or run .ci/run');
  }
}

function resp(args: string[]): Buffer {
  return Buffer.from(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`);
}

/** One request/reply on a fresh connection; the reply's bytes as they came (enough for tests). */
function rawCommand(socket: string, args: string[], settleMs = 30): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const conn = net.createConnection(socket);
    const chunks: Buffer[] = [];
    let timer: NodeJS.Timeout | undefined;
    conn.on('connect', () => conn.write(resp(args)));
    conn.on('data', (d) => {
      chunks.push(d);
      clearTimeout(timer);
      timer = setTimeout(() => {
        conn.destroy();
        resolve(Buffer.concat(chunks));
      }, settleMs);
    });
    conn.on('error', reject);
  });
}

export async function startTestRedis(): Promise<TestRedis> {
  const bin = redisBinary();
  const dir = await tempDir('cprd-');
  const socket = path.join(dir, 'redis.sock');
  let child: ChildProcess | undefined;

  const start = async (): Promise<void> => {
    await fs.rm(socket, { force: true });
    child = spawn(bin, ['--port', '0', '--unixsocket', socket, '--unixsocketperm', '700', '--save', '', '--appendonly', 'yes', '--appendfsync', 'always', '--dir', dir, '--notify-keyspace-events', ''], { stdio: 'ignore' });
    const end = Date.now() + 10_000;
    for (;;) {
      const pong = await rawCommand(socket, ['PING']).catch(() => undefined);
      if (pong?.toString().startsWith('+PONG')) return;
      if (Date.now() > end) throw new Error('redis-server did not answer within 10 s');
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  await start();

  const kill = async (): Promise<void> => {
    const c = child;
    if (!c || c.exitCode !== null) return;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill('SIGKILL');
    await exited;
  };

  const command = async (...args: string[]): Promise<string> => (await rawCommand(socket, args)).toString('utf8');

  return {
    url: `unix://${socket}`,
    socket,
    command,
    async dump() {
      const keysReply = await rawCommand(socket, ['KEYS', '*'], 60);
      const keys = [...keysReply.toString('utf8').matchAll(/\$\d+\r\n([^\r]*)\r\n/g)].map((m) => m[1]!);
      const out: Array<{ key: string; bytes: Buffer }> = [];
      for (const key of keys) {
        const type = (await command('TYPE', key)).trim();
        const bytes = type === '+hash' ? await rawCommand(socket, ['HGETALL', key]) : type === '+string' ? await rawCommand(socket, ['GET', key]) : await rawCommand(socket, ['DUMP', key]);
        out.push({ key, bytes });
      }
      return out;
    },
    kill,
    start,
    async close() {
      await kill();
    },
  };
}

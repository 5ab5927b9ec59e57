import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { encodeFrame, FrameDecoder } from '../protocol/codec.js';
import { ErrorCode, ProxyError } from '../protocol/errors.js';
import { checkSocketTrust, ProxyClient, ProxyUnavailableError, UntrustedSocketError } from './proxy-client.js';

type Frame = Record<string, unknown> & { id?: string; op?: string; payload?: Record<string, unknown> };
type Script = (frame: Frame, reply: (value: unknown) => void, socket: net.Socket) => void;

let dir: string;
let server: net.Server | undefined;
const received: Frame[] = [];
const clients: ProxyClient[] = [];

beforeEach(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'cp-pc-'));
  received.length = 0;
});
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  if (server) await new Promise<void>((r) => server!.close(() => r()));
  server = undefined;
  await fs.rm(dir, { recursive: true, force: true });
});

const HANDSHAKE_OK = { v: 2, ok: true, data: { version: 2, server: 'credproxy/test', client: 'owner', ops: [] } };

/** A stand-in proxy: answers the handshake, then runs `script` for every request. */
async function fakeProxy(script: Script, handshake: unknown = HANDSHAKE_OK): Promise<string> {
  const socketPath = path.join(dir, 'p.sock');
  server = net.createServer((socket) => {
    const decoder = new FrameDecoder();
    socket.on('error', () => undefined);
    socket.on('data', (chunk) => {
      for (const f of decoder.push(chunk)) {
        if (!f.ok) continue;
        const frame = f.value as Frame;
        received.push(frame);
        const reply = (value: unknown): void => void socket.write(encodeFrame(value));
        if (frame.op === 'handshake') reply(handshake);
        else script(frame, reply, socket);
      }
    });
  });
  await new Promise<void>((r) => server!.listen(socketPath, () => r()));
  await fs.chmod(socketPath, 0o600);
  return socketPath;
}

async function connect(socketPath: string, options: { timeoutMs?: number; capabilityToken?: string } = {}): Promise<ProxyClient> {
  const c = await ProxyClient.connect({ socketPath, ...options });
  clients.push(c);
  return c;
}

const ok = (id: unknown, data: unknown) => ({ v: 2, id, ok: true, data });
const waitFor = async (check: () => boolean): Promise<void> => {
  for (let i = 0; i < 200 && !check(); i++) await new Promise((r) => setTimeout(r, 10));
};

describe('checkSocketTrust', () => {
  it('answers ProxyUnavailableError when there is no socket', async () => {
    await expect(checkSocketTrust(path.join(dir, 'none.sock'))).rejects.toBeInstanceOf(ProxyUnavailableError);
  });

  it('refuses a path that is not a socket', async () => {
    const file = path.join(dir, 'file.sock');
    await fs.writeFile(file, '');
    await expect(checkSocketTrust(file)).rejects.toBeInstanceOf(UntrustedSocketError);
  });

  it('refuses a socket in a directory others can write to, naming the fix', async () => {
    const socketPath = await fakeProxy(() => undefined);
    await fs.chmod(dir, 0o777);
    const err = await checkSocketTrust(socketPath).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UntrustedSocketError);
    expect((err as Error).message).toContain('chmod go-w');
    await fs.chmod(dir, 0o700);
  });

  it('accepts a sticky shared directory such as /tmp', async () => {
    const socketPath = await fakeProxy(() => undefined);
    await fs.chmod(dir, 0o1777);
    await expect(checkSocketTrust(socketPath)).resolves.toBeUndefined();
    await fs.chmod(dir, 0o700);
  });

  it('refuses a socket owned by another uid', async () => {
    const socketPath = await fakeProxy(() => undefined);
    const me = process.getuid!();
    const err = await checkSocketTrust(socketPath, me + 1).catch((e: unknown) => e);
    // A socket owned by root is trusted by everyone (root can read our files anyway).
    if (me === 0) expect(err).toBeUndefined();
    else expect(err).toBeInstanceOf(UntrustedSocketError);
  });

  it('does not connect to an untrusted socket', async () => {
    const socketPath = await fakeProxy(() => undefined);
    await fs.chmod(dir, 0o777);
    await expect(ProxyClient.connect({ socketPath })).rejects.toBeInstanceOf(UntrustedSocketError);
    await fs.chmod(dir, 0o700);
    expect(received).toEqual([]);
  });
});

describe('ProxyClient', () => {
  it('handshakes with v2 and the token, and exposes the answer', async () => {
    const socketPath = await fakeProxy(() => undefined);
    const c = await connect(socketPath, { capabilityToken: 'ab'.repeat(32) });
    expect(c.handshake).toEqual(HANDSHAKE_OK.data);
    expect(received[0]).toEqual({ v: 2, op: 'handshake', payload: { minVersion: 2, maxVersion: 2, capabilityToken: 'ab'.repeat(32) } });
  });

  it('surfaces a refused handshake as a ProxyError with the code and retryAfter', async () => {
    const socketPath = await fakeProxy(() => undefined, { v: 2, ok: false, code: 'RATE_LIMITED', error: 'slow down', retryAfter: 30 });
    const err = await ProxyClient.connect({ socketPath }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProxyError);
    expect(err).toMatchObject({ code: 'RATE_LIMITED', message: 'slow down', retryAfter: 30 });
  });

  it('answers ProxyUnavailableError when the socket file is stale (nobody listening)', async () => {
    const socketPath = path.join(dir, 'stale.sock');
    // Bind in a child and kill it -9, so the socket file stays behind with nobody on it.
    const child = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(socketPath)}, () => console.log('up'))`], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((r) => child.stdout!.once('data', () => r()));
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    await fs.chmod(socketPath, 0o600);
    const err = await ProxyClient.connect({ socketPath }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProxyUnavailableError);
    expect((err as Error).message).toMatch(/nobody is listening.*credproxy serve/);
  });

  it('matches answers to requests by id, in any order', async () => {
    const pending: Array<[Frame, (v: unknown) => void]> = [];
    const socketPath = await fakeProxy((frame, reply) => {
      pending.push([frame, reply]);
      if (pending.length === 3) for (const [f, r] of pending.reverse()) r(ok(f.id, { echo: f.payload }));
    });
    const c = await connect(socketPath);
    const answers = await Promise.all([
      c.call('get_api_key', { name: 'a' }),
      c.call('get_api_key', { name: 'b' }),
      c.call('get_api_key', { name: 'c' }),
    ]);
    expect(answers).toEqual([{ echo: { name: 'a' } }, { echo: { name: 'b' } }, { echo: { name: 'c' } }]);
    const ids = received.filter((f) => f.op === 'get_api_key').map((f) => f.id);
    expect(new Set(ids).size).toBe(3);
    for (const f of received.slice(1)) expect(f.v).toBe(2);
  });

  it('turns an error frame into a ProxyError; an unknown code becomes INTERNAL_ERROR', async () => {
    const socketPath = await fakeProxy((frame, reply) => {
      if (frame.op === 'ping') reply({ v: 2, id: frame.id, ok: false, code: 'FORBIDDEN', error: 'not yours' });
      else reply({ v: 2, id: frame.id, ok: false, code: 'SOMETHING_NEW', error: 'hm' });
    });
    const c = await connect(socketPath);
    await expect(c.call('ping', {})).rejects.toMatchObject({ code: 'FORBIDDEN', message: 'not yours' });
    await expect(c.call('status', {})).rejects.toMatchObject({ code: ErrorCode.INTERNAL_ERROR });
  });

  it('ignores answers to ids it did not ask', async () => {
    const socketPath = await fakeProxy((frame, reply) => {
      reply(ok('999', { wrong: true }));
      reply(ok(null, { wrong: true }));
      reply(ok(frame.id, { right: true }));
    });
    const c = await connect(socketPath);
    expect(await c.call('ping', {})).toEqual({ right: true });
  });

  it('times out a request as UPSTREAM_UNAVAILABLE and cancels it on the proxy', async () => {
    const socketPath = await fakeProxy(() => undefined);
    const c = await connect(socketPath);
    const started = Date.now();
    await expect(c.call('get_token', { provider: 'gh' }, { timeoutMs: 100 })).rejects.toMatchObject({ code: ErrorCode.UPSTREAM_UNAVAILABLE });
    expect(Date.now() - started).toBeLessThan(2000);
    const target = received.find((f) => f.op === 'get_token')!;
    await waitFor(() => received.some((f) => f.op === 'cancel'));
    expect(received.find((f) => f.op === 'cancel')).toMatchObject({ v: 2, payload: { targetId: target.id } });
  });

  it('cancels a request when its signal aborts', async () => {
    const socketPath = await fakeProxy(() => undefined);
    const c = await connect(socketPath);
    const ac = new AbortController();
    const p = c.call('get_token', { provider: 'gh' }, { signal: ac.signal });
    await waitFor(() => received.some((f) => f.op === 'get_token'));
    ac.abort();
    await expect(p).rejects.toMatchObject({ code: ErrorCode.CANCELLED });
    await waitFor(() => received.some((f) => f.op === 'cancel'));
    expect(received.some((f) => f.op === 'cancel')).toBe(true);
  });

  it('with an already-aborted signal: rejects at once, sends nothing and leaves no timer behind', async () => {
    const socketPath = await fakeProxy(() => undefined);
    const c = await connect(socketPath);
    const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const before = timers();
    await expect(c.call('get_token', { provider: 'gh' }, { signal: AbortSignal.abort(), timeoutMs: 60_000 })).rejects.toMatchObject({ code: ErrorCode.CANCELLED });
    expect(timers()).toBe(before);
    await new Promise((r) => setTimeout(r, 30));
    expect(received.filter((f) => f.op === 'get_token')).toEqual([]);
  });

  it('rejects pending and later calls with ProxyUnavailableError when the proxy closes the connection', async () => {
    const socketPath = await fakeProxy((_f, _r, socket) => socket.destroy());
    const c = await connect(socketPath);
    await expect(c.call('ping', {})).rejects.toBeInstanceOf(ProxyUnavailableError);
    await expect(c.call('ping', {})).rejects.toBeInstanceOf(ProxyUnavailableError);
  });

  it('closes on a frame it cannot decode', async () => {
    const socketPath = await fakeProxy((_f, _r, socket) => {
      const header = Buffer.alloc(4);
      header.writeUInt32BE(3, 0);
      socket.write(Buffer.concat([header, Buffer.from('{{{')]));
    });
    const c = await connect(socketPath);
    await expect(c.call('ping', {})).rejects.toMatchObject({ code: ErrorCode.INVALID_REQUEST });
  });

  it('fails the handshake when the proxy does not answer in time', async () => {
    const socketPath = path.join(dir, 'mute.sock');
    server = net.createServer((s) => s.on('error', () => undefined).resume());
    await new Promise<void>((r) => server!.listen(socketPath, () => r()));
    await expect(ProxyClient.connect({ socketPath, timeoutMs: 100 })).rejects.toMatchObject({ code: ErrorCode.UPSTREAM_UNAVAILABLE });
  });
});

describe('ProxyClient.request (one round trip)', () => {
  /** A proxy that records how the bytes arrived: handshake and request must come together. */
  async function chunkRecordingProxy(handshake: unknown = HANDSHAKE_OK): Promise<{ socketPath: string; chunks: Frame[][]; closed: Promise<void> }> {
    const socketPath = path.join(dir, 'p.sock');
    const chunks: Frame[][] = [];
    let markClosed!: () => void;
    const closed = new Promise<void>((r) => (markClosed = r));
    server = net.createServer((socket) => {
      const decoder = new FrameDecoder();
      socket.on('error', () => undefined);
      socket.on('close', () => markClosed());
      socket.on('data', (chunk) => {
        const frames = decoder.push(chunk).flatMap((f) => (f.ok ? [f.value as Frame] : []));
        chunks.push(frames);
        for (const frame of frames) {
          if (frame.op === 'handshake') socket.write(encodeFrame(handshake));
          else if ((handshake as { ok: boolean }).ok) socket.write(encodeFrame(ok(frame.id, { access_token: 'AT' })));
          else socket.write(encodeFrame({ v: 2, id: frame.id, ok: false, code: 'INVALID_REQUEST', error: 'handshake first' }));
        }
      });
    });
    await new Promise<void>((r) => server!.listen(socketPath, () => r()));
    await fs.chmod(socketPath, 0o600);
    return { socketPath, chunks, closed };
  }

  it('sends the handshake and the request without waiting in between, answers, and closes', async () => {
    const { socketPath, chunks, closed } = await chunkRecordingProxy();
    const data = await ProxyClient.request({ socketPath, capabilityToken: 'cd'.repeat(32) }, 'get_token', { provider: 'gh' });
    expect(data).toEqual({ access_token: 'AT' });
    // Both frames were on the wire before the proxy answered anything.
    expect(chunks.flat().map((f) => f.op)).toEqual(['handshake', 'get_token']);
    expect(chunks[0]!.map((f) => f.op)).toEqual(['handshake', 'get_token']);
    expect(chunks[0]![0]!.payload).toMatchObject({ capabilityToken: 'cd'.repeat(32) });
    await closed;
  });

  it('reports a refused handshake as itself, not as the request it made pointless', async () => {
    const { socketPath, closed } = await chunkRecordingProxy({ v: 2, ok: false, code: 'UNAUTHORIZED', error: 'wrong capability token' });
    const err = await ProxyClient.request({ socketPath }, 'get_token', { provider: 'gh' }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'UNAUTHORIZED', message: 'wrong capability token' });
    await closed;
  });

  it('checks the socket before sending anything', async () => {
    await fs.chmod(dir, 0o777);
    const { socketPath, chunks } = await chunkRecordingProxy();
    await expect(ProxyClient.request({ socketPath }, 'get_token', { provider: 'gh' })).rejects.toBeInstanceOf(UntrustedSocketError);
    expect(chunks).toEqual([]);
    await fs.chmod(dir, 0o700);
  });
});

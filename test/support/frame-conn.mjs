// A minimal frame connection for the load-generating child processes (abuse-child.mjs,
// conn-swarm-child.mjs). Plain JS, no credproxy code: 4-byte big-endian length, then UTF-8 JSON.
import net from 'node:net';

export function frame(body, declaredLength) {
  const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  const header = Buffer.alloc(4);
  header.writeUInt32BE(declaredLength ?? bytes.length, 0);
  return Buffer.concat([header, bytes]);
}

export const json = (value) => frame(JSON.stringify(value));

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export class FrameConn {
  /** @param {net.Socket} socket */
  constructor(socket) {
    this.socket = socket;
    this.frames = [];
    this.isClosed = false;
    this.closedAt = 0;
    this.state = 'fresh';
    this.pending = Buffer.alloc(0);
    this.waiters = [];
    /** The code of the socket's first error (EPIPE, ECONNRESET…), if any. */
    this.errorCode = undefined;
    socket.on('error', (err) => (this.errorCode ??= err.code ?? 'error'));
    socket.on('data', (chunk) => {
      this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
      while (this.pending.length >= 4) {
        const length = this.pending.readUInt32BE(0);
        if (this.pending.length < 4 + length) break;
        const body = this.pending.subarray(4, 4 + length);
        this.pending = this.pending.subarray(4 + length);
        let value;
        try {
          value = JSON.parse(body.toString('utf8'));
        } catch {
          value = { unparsable: body.toString('latin1').slice(0, 80) };
        }
        this.frames.push(value);
      }
      this.wake();
    });
    this.closed = new Promise((resolve) =>
      socket.once('close', () => {
        this.isClosed = true;
        this.closedAt = performance.now();
        resolve();
        this.wake();
      }),
    );
  }

  /** Connect, retrying EAGAIN (a full listen backlog on a Unix socket) for up to `retryMs`. */
  static async connect(socketPath, retryMs = 5000) {
    const end = Date.now() + retryMs;
    for (let attempt = 0; ; attempt++) {
      try {
        return await new Promise((resolve, reject) => {
          const socket = net.connect(socketPath);
          socket.once('connect', () => {
            socket.off('error', reject);
            resolve(new FrameConn(socket));
          });
          socket.once('error', reject);
        });
      } catch (err) {
        if (err.code !== 'EAGAIN' || Date.now() > end) throw err;
        FrameConn.eagain += 1;
        await sleep(Math.min(50, 2 + attempt * 5));
      }
    }
  }

  wake() {
    for (const w of this.waiters.splice(0)) w();
  }

  write(bytes) {
    if (!this.socket.destroyed) this.socket.write(bytes);
  }

  send(value) {
    this.write(json(value));
  }

  /** The next frame, or 'closed' / 'timeout'. */
  async next(timeoutMs = 5000) {
    const end = Date.now() + timeoutMs;
    for (;;) {
      if (this.frames.length > 0) return this.frames.shift();
      if (this.isClosed) return 'closed';
      const left = end - Date.now();
      if (left <= 0) return 'timeout';
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** True once the peer has closed, within `timeoutMs`. */
  async closesWithin(timeoutMs) {
    if (this.isClosed) return true;
    let timer;
    const result = await Promise.race([this.closed.then(() => true), new Promise((r) => (timer = setTimeout(() => r(false), timeoutMs)))]);
    clearTimeout(timer);
    return result;
  }

  destroy() {
    this.socket.destroy();
  }
}
FrameConn.eagain = 0;

/** What a frame said, for tallies: its code, 'ok', or the non-frame outcome. */
export function outcome(f) {
  if (typeof f === 'string') return f;
  if (f.ok === true) return 'ok';
  if (f.ok === false && typeof f.code === 'string') return f.code;
  return 'malformed-answer';
}

/** mulberry32: a small seeded PRNG, so every run sends the same traffic. */
export function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

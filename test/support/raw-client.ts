/**
 * A raw frame client written from SPEC §2 alone — it shares no code with credproxy — so tests
 * can send exact bytes (split frames, bad lengths, bad JSON) and read exact bytes back.
 *
 * Frame: 4-byte unsigned big-endian length, then that many bytes of UTF-8 JSON.
 */
import net from 'node:net';

export interface RawFrame {
  /** The body exactly as received. */
  body: Buffer;
  /** The body parsed as JSON (undefined when it is not JSON). */
  value: any;
}

/** Header + body for one frame; `body` is sent verbatim. */
export function frameBytes(body: string | Buffer, declaredLength?: number): Buffer {
  const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  const header = Buffer.alloc(4);
  header.writeUInt32BE(declaredLength ?? bytes.length, 0);
  return Buffer.concat([header, bytes]);
}

/** One JSON value as a frame. */
export function jsonFrame(value: unknown): Buffer {
  return frameBytes(JSON.stringify(value));
}

export class RawClient {
  readonly socket: net.Socket;
  /** Every byte received, in order. */
  received: Buffer = Buffer.alloc(0);
  readonly frames: RawFrame[] = [];
  #pending = Buffer.alloc(0);
  #waiters: Array<() => void> = [];
  #closed = false;
  readonly closed: Promise<void>;
  #nextId = 1;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    this.closed = new Promise((resolve) => {
      socket.once('close', () => {
        this.#closed = true;
        resolve();
        this.#wake();
      });
    });
    socket.on('error', () => undefined);
    socket.on('data', (chunk: Buffer) => {
      this.received = Buffer.concat([this.received, chunk]);
      this.#pending = Buffer.concat([this.#pending, chunk]);
      while (this.#pending.length >= 4) {
        const length = this.#pending.readUInt32BE(0);
        if (this.#pending.length < 4 + length) break;
        const body = Buffer.from(this.#pending.subarray(4, 4 + length));
        this.#pending = this.#pending.subarray(4 + length);
        let value: unknown;
        try {
          value = JSON.parse(body.toString('utf8'));
        } catch {
          value = undefined;
        }
        this.frames.push({ body, value });
      }
      this.#wake();
    });
  }

  static connect(socketPath: string): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(socketPath);
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(new RawClient(socket));
      });
      socket.once('error', reject);
    });
  }

  /** Connect and complete an owner (or token) handshake. */
  static async open(socketPath: string, capabilityToken?: string): Promise<RawClient> {
    const client = await RawClient.connect(socketPath);
    const answer = await client.handshake(capabilityToken);
    if (answer.value?.ok !== true) {
      client.close();
      throw new Error(`handshake refused: ${answer.body.toString()}`);
    }
    return client;
  }

  get isClosed(): boolean {
    return this.#closed;
  }

  #wake(): void {
    for (const w of this.#waiters.splice(0)) w();
  }

  write(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  send(value: unknown): void {
    this.socket.write(jsonFrame(value));
  }

  /** The next frame not taken yet, in arrival order. */
  next(timeoutMs = 3000): Promise<RawFrame> {
    return this.take(() => true, timeoutMs);
  }

  /** The first untaken frame matching `match`; it is removed from `frames`. */
  async take(match: (f: RawFrame) => boolean, timeoutMs = 3000): Promise<RawFrame> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const i = this.frames.findIndex(match);
      if (i >= 0) return this.frames.splice(i, 1)[0]!;
      if (this.#closed) throw new Error(`connection closed while waiting for a frame; got ${this.frames.length} other frame(s)`);
      const left = end - Date.now();
      if (left <= 0) throw new Error(`no matching frame within ${timeoutMs} ms; frames: ${this.frames.map((f) => f.body.toString()).join(' | ')}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** The answer to request `id`. */
  answer(id: string, timeoutMs = 3000): Promise<RawFrame> {
    return this.take((f) => f.value?.id === id, timeoutMs);
  }

  handshake(capabilityToken?: string, id?: string): Promise<RawFrame> {
    const payload: Record<string, unknown> = { minVersion: 1, maxVersion: 2 };
    if (capabilityToken !== undefined) payload.capabilityToken = capabilityToken;
    const frame: Record<string, unknown> = { v: 2, op: 'handshake', payload };
    if (id !== undefined) frame.id = id;
    this.send(frame);
    return this.next();
  }

  /** Send one request with a fresh id and wait for its answer. */
  async request(op: string, payload: Record<string, unknown> = {}, timeoutMs = 3000): Promise<RawFrame> {
    const id = `r${this.#nextId++}`;
    this.send({ v: 2, id, op, payload });
    return this.answer(id, timeoutMs);
  }

  /** True when the peer closes within `timeoutMs`. */
  async closesWithin(timeoutMs: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs)));
    const result = await Promise.race([this.closed.then(() => true), timeout]);
    clearTimeout(timer);
    return result;
  }

  close(): void {
    this.socket.destroy();
  }
}

/**
 * The client side of the protocol: checks the socket before connecting (so a planted socket
 * cannot harvest a token), handshakes, and offers a typed `call(op, payload)` with a per-request
 * timeout that cancels the request on the proxy.
 */
import { lstatSync, statSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { encodeFrame, FrameDecoder, isPlainObject } from '../protocol/codec.js';
import { ErrorCode, isErrorCode, ProxyError } from '../protocol/errors.js';
import { PROTOCOL_VERSION } from '../protocol/limits.js';
import type { HandshakeResult, Op, OpPayload, OpResult } from '../protocol/ops.js';

/** The proxy is not there (no socket, nobody listening): the CLI exits 5. */
export class ProxyUnavailableError extends Error {
  constructor(readonly socketPath: string, reason: string) {
    super(`credproxy is not running on ${socketPath} (${reason}) — start it with \`credproxy serve\``);
    this.name = 'ProxyUnavailableError';
  }
}

/** The socket failed the ownership/permission check: refuse to talk to it. */
export class UntrustedSocketError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UntrustedSocketError';
  }
}

export interface ConnectOptions {
  socketPath: string;
  capabilityToken?: string;
  /** Default per-request timeout, ms. */
  timeoutMs?: number;
  /** Skip the owner/permission check (tests of the server's own checks only). */
  skipSocketCheck?: boolean;
}

export interface CallOptions {
  timeoutMs?: number;
  signal?: AbortSignal;
}

const DEFAULT_TIMEOUT_MS = 30_000;

/**
 * Refuse a socket that someone else could have planted: it must be a socket owned by us (or
 * root), in a directory owned by us (or root) that others cannot write to (unless sticky).
 * Two local stat calls, made synchronously: the async ones would start libuv's thread pool,
 * which costs a short-lived command like `credproxy token` several milliseconds.
 */
export async function checkSocketTrust(socketPath: string, uid = process.getuid?.()): Promise<void> {
  let st;
  try {
    st = lstatSync(socketPath);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ProxyUnavailableError(socketPath, code === 'ENOENT' ? 'no socket' : String(code));
  }
  if (!st.isSocket()) throw new UntrustedSocketError(`${socketPath} is not a socket — refusing to connect`);
  if (uid !== undefined && st.uid !== uid && st.uid !== 0) {
    throw new UntrustedSocketError(`${socketPath} belongs to uid ${st.uid}, not to you (uid ${uid}) — refusing to send credentials to it`);
  }
  const dir = path.dirname(socketPath);
  const dst = statSync(dir);
  if (uid !== undefined && dst.uid !== uid && dst.uid !== 0) {
    throw new UntrustedSocketError(`${dir} belongs to uid ${dst.uid} — refusing a socket in a directory someone else controls`);
  }
  const sticky = (dst.mode & 0o1000) !== 0;
  if ((dst.mode & 0o022) !== 0 && !sticky) {
    throw new UntrustedSocketError(`${dir} is writable by group or others, so the socket could be replaced — run \`chmod go-w ${dir}\``);
  }
}

interface Pending {
  resolve(value: unknown): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout | undefined;
  onAbort?: () => void;
  signal?: AbortSignal;
}

export class ProxyClient {
  readonly #socket: net.Socket;
  readonly #decoder = new FrameDecoder();
  readonly #pending = new Map<string, Pending>();
  readonly #timeoutMs: number;
  #nextId = 1;
  #handshake: HandshakeResult | undefined;
  #onHandshake: Pending | undefined;
  #closedError: Error | undefined;

  private constructor(socket: net.Socket, socketPath: string, timeoutMs: number) {
    this.#socket = socket;
    this.#timeoutMs = timeoutMs;
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    // A closed connection means the proxy is gone or stopped: not the same as an unreachable
    // OAuth provider (UPSTREAM_UNAVAILABLE), and the CLI exits 5 for it.
    socket.on('close', () => this.#onClose(new ProxyUnavailableError(socketPath, 'the connection closed')));
    socket.on('error', () => undefined);
  }

  /** Connect and handshake. */
  static async connect(options: ConnectOptions): Promise<ProxyClient> {
    const client = await ProxyClient.#open(options);
    try {
      await client.#doHandshake(options.capabilityToken);
    } catch (err) {
      client.close();
      throw err;
    }
    return client;
  }

  /**
   * One request on a fresh connection, in one round trip: the handshake and the request are
   * written together (the proxy reads frames in order), then the connection is closed. A refused
   * handshake is reported as such. For one-shot callers such as `credproxy token`.
   */
  static async request<O extends Op>(options: ConnectOptions, op: O, payload: OpPayload<O>, callOptions: CallOptions = {}): Promise<OpResult<O>> {
    const client = await ProxyClient.#open(options);
    try {
      // One write for both frames.
      client.#socket.cork();
      const handshake = client.#doHandshake(options.capabilityToken);
      const answer = client.call(op, payload, callOptions);
      client.#socket.uncork();
      // Whatever the handshake says comes first; the request's own answer is read only after it.
      answer.catch(() => undefined);
      await handshake;
      return await answer;
    } finally {
      client.close();
    }
  }

  static async #open(options: ConnectOptions): Promise<ProxyClient> {
    const { socketPath } = options;
    if (!options.skipSocketCheck) await checkSocketTrust(socketPath);
    const socket = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect(socketPath);
      s.once('connect', () => {
        s.off('error', reject);
        resolve(s);
      });
      s.once('error', (err: NodeJS.ErrnoException) => {
        reject(
          err.code === 'ENOENT' || err.code === 'ECONNREFUSED'
            ? new ProxyUnavailableError(socketPath, err.code === 'ENOENT' ? 'no socket' : 'nobody is listening')
            : err,
        );
      });
    });
    return new ProxyClient(socket, socketPath, options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  }

  get handshake(): HandshakeResult {
    if (!this.#handshake) throw new Error('not connected');
    return this.#handshake;
  }

  #doHandshake(capabilityToken: string | undefined): Promise<void> {
    const payload: Record<string, unknown> = { minVersion: PROTOCOL_VERSION, maxVersion: PROTOCOL_VERSION };
    if (capabilityToken !== undefined) payload.capabilityToken = capabilityToken;
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new ProxyError(ErrorCode.UPSTREAM_UNAVAILABLE, 'credproxy did not answer the handshake')), this.#timeoutMs);
      this.#onHandshake = {
        resolve: (data) => {
          this.#handshake = data as HandshakeResult;
          resolve();
        },
        reject,
        timer,
      };
      this.#socket.write(encodeFrame({ v: PROTOCOL_VERSION, op: 'handshake', payload }));
    });
  }

  /** Send one request and wait for its answer. */
  call<O extends Op>(op: O, payload: OpPayload<O>, options: CallOptions = {}): Promise<OpResult<O>> {
    if (this.#closedError) return Promise.reject(this.#closedError);
    const id = String(this.#nextId++);
    if (options.signal?.aborted) return Promise.reject(new ProxyError(ErrorCode.CANCELLED, `${op} was cancelled`));
    return new Promise<OpResult<O>>((resolve, reject) => {
      const timeoutMs = options.timeoutMs ?? this.#timeoutMs;
      const entry: Pending = { resolve: resolve as (v: unknown) => void, reject, timer: undefined };
      const giveUp = (err: Error): void => {
        if (!this.#pending.delete(id)) return;
        this.#settle(entry);
        this.#send({ v: PROTOCOL_VERSION, id: `${id}.cancel`, op: 'cancel', payload: { targetId: id } });
        reject(err);
      };
      if (timeoutMs > 0 && Number.isFinite(timeoutMs)) {
        entry.timer = setTimeout(
          () => giveUp(new ProxyError(ErrorCode.UPSTREAM_UNAVAILABLE, `no answer to ${op} from credproxy within ${Math.round(timeoutMs / 1000)} s`)),
          timeoutMs,
        );
      }
      if (options.signal) {
        entry.signal = options.signal;
        entry.onAbort = () => giveUp(new ProxyError(ErrorCode.CANCELLED, `${op} was cancelled`));
        options.signal.addEventListener('abort', entry.onAbort, { once: true });
      }
      this.#pending.set(id, entry);
      this.#send({ v: PROTOCOL_VERSION, id, op, payload });
    });
  }

  close(): void {
    this.#socket.end();
    this.#socket.destroy();
  }

  #send(frame: object): void {
    if (!this.#socket.destroyed) this.#socket.write(encodeFrame(frame));
  }

  #settle(entry: Pending): void {
    if (entry.timer) clearTimeout(entry.timer);
    if (entry.signal && entry.onAbort) entry.signal.removeEventListener('abort', entry.onAbort);
  }

  #onData(chunk: Buffer): void {
    for (const frame of this.#decoder.push(chunk)) {
      if (!frame.ok) {
        this.#onClose(new ProxyError(ErrorCode.INVALID_REQUEST, `credproxy sent a bad frame: ${frame.error.message}`));
        this.close();
        return;
      }
      this.#onFrame(frame.value);
    }
  }

  #onFrame(value: unknown): void {
    if (!isPlainObject(value) || typeof value.ok !== 'boolean') return;
    const error = (): ProxyError => {
      const code = isErrorCode(value.code) ? value.code : ErrorCode.INTERNAL_ERROR;
      const message = typeof value.error === 'string' ? value.error : 'credproxy returned an error';
      return new ProxyError(code, message, typeof value.retryAfter === 'number' ? { retryAfter: value.retryAfter } : {});
    };
    if (this.#onHandshake) {
      const pending = this.#onHandshake;
      this.#onHandshake = undefined;
      this.#settle(pending);
      if (value.ok && isPlainObject(value.data)) pending.resolve(value.data);
      else pending.reject(value.ok ? new ProxyError(ErrorCode.INVALID_REQUEST, 'malformed handshake answer') : error());
      return;
    }
    if (typeof value.id !== 'string') return;
    const pending = this.#pending.get(value.id);
    if (!pending) return;
    this.#pending.delete(value.id);
    this.#settle(pending);
    if (value.ok) pending.resolve(value.data);
    else pending.reject(error());
  }

  #onClose(err: Error): void {
    this.#closedError ??= err;
    if (this.#onHandshake) {
      this.#settle(this.#onHandshake);
      this.#onHandshake.reject(err);
      this.#onHandshake = undefined;
    }
    for (const pending of this.#pending.values()) {
      this.#settle(pending);
      pending.reject(err);
    }
    this.#pending.clear();
  }
}

/**
 * Hosts the proxy's listeners: the wire protocol's Unix sockets — the owner socket and one per
 * client registered with `--listen` — and, behind the same HostedListener interface, a client's
 * HTTP listener for routes (`--http`, http-listener.ts). Each listener has a binding that says who may use it. A connection cap covers
 * them all; its last slots are the owner's, and each client identity has a cap of its own.
 */
import { promises as fs } from 'node:fs';
import net from 'node:net';
import type { Identity } from '../clients/policy.js';
import { CLIENT_IDLE_TIMEOUT_MS, MAX_CONNECTIONS, MAX_CONNECTIONS_PER_CLIENT, MAX_FRAME_BYTES, OWNER_RESERVED_CONNECTIONS } from '../protocol/limits.js';
import { ErrorCode, ProxyError, toErrorFrame } from '../protocol/errors.js';
import { encodeFrame, FrozenJson } from '../protocol/codec.js';
import type { AuditSink } from '../clients/audit-log.js';
import { Connection, type HandshakeGate, type ListenerBinding, type ListenerShared } from './connection.js';
import { HandshakeAnswers } from './handshake.js';
import type { PeerInfo, ProxyServices } from './context.js';
import type { PeerCredentialReader } from './peer-credentials.js';

export interface ListenerHostOptions {
  services: ProxyServices;
  gate: HandshakeGate;
  readPeer: PeerCredentialReader;
  maxFrameBytes?: number;
  maxConnections?: number;
  /** Authenticated connections one client identity may hold, all listeners together. */
  maxConnectionsPerClient?: number;
  /** Client connections idle this long are closed (0: never); the owner's never are. */
  clientIdleTimeoutMs?: number;
  partialFrameTimeoutMs?: number;
  handshakeTimeoutMs?: number;
  /** Where connect, handshake and op lines go. */
  audit?: AuditSink;
}

/**
 * What the server knows of any listener it hosts — the wire protocol's Unix sockets and a
 * client's HTTP listener alike: where it listens, whose it is, and how to close it. A listener
 * knows its client; a client record knows no listener object, only the address.
 */
export interface HostedListener {
  readonly kind: 'wire' | 'http';
  /** A socket path, or `127.0.0.1:PORT`. */
  readonly address: string;
  /** The client it serves; undefined for the owner socket. */
  readonly clientName: string | undefined;
  close(): Promise<void>;
}

interface Listener {
  socketPath: string;
  server: net.Server;
  binding: ListenerBinding;
  connections: Set<Connection>;
  /** What its connections share (made once, here, not per connection). */
  shared: ListenerShared;
}

/** Probe a socket path: true when something answers a connect. */
export function socketAnswers(socketPath: string, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect(socketPath);
    const done = (answer: boolean): void => {
      clearTimeout(timer);
      sock.destroy();
      resolve(answer);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
  });
}

/** Remove a leftover socket nobody answers on; refuse one that is alive or is not a socket. */
export async function clearStaleSocket(socketPath: string): Promise<void> {
  let st;
  try {
    st = await fs.lstat(socketPath);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  if (!st.isSocket()) {
    throw new ProxyError(ErrorCode.INVALID_REQUEST, `${socketPath} exists and is not a socket — move it away or choose another path`);
  }
  if (await socketAnswers(socketPath)) {
    throw new ProxyError(ErrorCode.INVALID_REQUEST, `something is already listening on ${socketPath} — stop it or choose another path`);
  }
  await fs.unlink(socketPath).catch(() => undefined);
}

export class ListenerHost {
  readonly #options: ListenerHostOptions;
  readonly #listeners = new Map<string, Listener>();
  /** Listeners of other kinds (HTTP), by address. */
  readonly #hosted = new Map<string, HostedListener>();
  #connectionCount = 0;
  /** Authenticated connections per client name. */
  readonly #perClient = new Map<string, number>();
  readonly #json = new FrozenJson();
  readonly #answers = new HandshakeAnswers();

  constructor(options: ListenerHostOptions) {
    this.#options = options;
  }

  get connectionCount(): number {
    return this.#connectionCount;
  }

  /** Listen on `socketPath` (0600) for `binding`. */
  async listen(socketPath: string, binding: ListenerBinding): Promise<void> {
    if (this.#listeners.has(socketPath)) {
      throw new ProxyError(ErrorCode.INVALID_REQUEST, `credproxy already listens on ${socketPath}`);
    }
    await clearStaleSocket(socketPath);
    // Half-open: a connection decides when to end its side (connection.ts, #onPeerEnd).
    const connections = new Set<Connection>();
    const listener: Listener = { socketPath, server: net.createServer({ allowHalfOpen: true }), binding, connections, shared: this.#shared(socketPath, binding, connections) };
    listener.server.on('connection', (socket) => this.#accept(listener, socket));
    await new Promise<void>((resolve, reject) => {
      const fail = (err: NodeJS.ErrnoException): void =>
        reject(
          new ProxyError(
            ErrorCode.INVALID_REQUEST,
            `cannot listen on ${socketPath} (${err.code ?? err.message}) — check that its directory exists and is yours, or choose another path`,
            { cause: err },
          ),
        );
      listener.server.once('error', fail);
      listener.server.listen(socketPath, () => {
        listener.server.off('error', fail);
        resolve();
      });
    });
    listener.server.on('error', (err) => this.#options.services.logger.log('error', `listener ${socketPath}: ${err.message}`));
    await fs.chmod(socketPath, 0o600);
    this.#listeners.set(socketPath, listener);
  }

  #shared(socketPath: string, binding: ListenerBinding, connections: Set<Connection>): ListenerShared {
    const o = this.#options;
    const shared: ListenerShared = {
      binding,
      services: o.services,
      gate: o.gate,
      socketPath,
      admit: (identity) => this.#admit(binding, identity),
      clientIdleTimeoutMs: o.clientIdleTimeoutMs ?? CLIENT_IDLE_TIMEOUT_MS,
      maxFrameBytes: o.maxFrameBytes ?? MAX_FRAME_BYTES,
      json: this.#json,
      answers: this.#answers,
      closed: (connection) => this.#closed(connections, connection),
    };
    if (o.partialFrameTimeoutMs !== undefined) shared.partialFrameTimeoutMs = o.partialFrameTimeoutMs;
    if (o.handshakeTimeoutMs !== undefined) shared.handshakeTimeoutMs = o.handshakeTimeoutMs;
    if (o.audit) shared.audit = o.audit;
    return shared;
  }

  /** Connections clients may use, all listeners together: the cap less the owner's reserve. */
  #clientShare(): number {
    const cap = this.#options.maxConnections ?? MAX_CONNECTIONS;
    return Math.max(1, cap - Math.min(OWNER_RESERVED_CONNECTIONS, Math.floor(cap / 4)));
  }

  #accept(listener: Listener, socket: net.Socket): void {
    // Client sockets stop short of the cap: the last slots are the owner's.
    const max = listener.binding.kind === 'owner' ? (this.#options.maxConnections ?? MAX_CONNECTIONS) : this.#clientShare();
    if (this.#connectionCount >= max) {
      const frame = toErrorFrame(new ProxyError(ErrorCode.RESOURCE_EXHAUSTED, `credproxy has ${max} connections open — close idle ones and retry`), null);
      socket.end(encodeFrame(frame));
      setTimeout(() => socket.destroy(), 1000).unref();
      return;
    }
    let peer: PeerInfo = {};
    try {
      peer = this.#options.readPeer(socket);
    } catch {
      peer = {};
    }
    this.#connectionCount += 1;
    const connection = new Connection(socket, peer, listener.shared);
    this.#options.audit?.connection('connect', listener.binding.clientName ?? 'none', 'ok', peer.pid, peer.uid);
    listener.connections.add(connection);
  }

  /** A connection closed: its slot, and its client's, are free again. */
  #closed(connections: Set<Connection>, connection: Connection): void {
    this.#connectionCount -= 1;
    connections.delete(connection);
    const id = connection.identity;
    if (id?.kind === 'client') {
      const left = (this.#perClient.get(id.client.name) ?? 1) - 1;
      if (left > 0) this.#perClient.set(id.client.name, left);
      else this.#perClient.delete(id.client.name);
    }
  }

  /**
   * After a handshake: may this identity keep the connection? A client may hold at most its own
   * cap, and never one of the owner's reserved slots — a client token on the owner socket counts
   * against the clients' share, as if it had come in on a client socket.
   */
  #admit(binding: ListenerBinding, identity: Identity): ProxyError | undefined {
    if (identity.kind !== 'client') return undefined;
    const name = identity.client.name;
    const held = this.#perClient.get(name) ?? 0;
    const perClient = this.#options.maxConnectionsPerClient ?? MAX_CONNECTIONS_PER_CLIENT;
    if (held >= perClient) {
      return new ProxyError(ErrorCode.RESOURCE_EXHAUSTED, `client ${name} already has ${held} connections open, the most one client may hold — close idle ones and retry`);
    }
    const share = this.#clientShare();
    if (binding.kind === 'owner' && this.#connectionCount > share) {
      return new ProxyError(ErrorCode.RESOURCE_EXHAUSTED, `credproxy has ${share} connections open for clients; the rest are kept for the owner — close idle ones and retry`);
    }
    this.#perClient.set(name, held + 1);
    return undefined;
  }

  /** Host a listener of another kind (it is already listening); closed with the others. */
  adopt(listener: HostedListener): void {
    if (this.#listeners.has(listener.address) || this.#hosted.has(listener.address)) {
      void listener.close();
      throw new ProxyError(ErrorCode.INVALID_REQUEST, `credproxy already listens on ${listener.address}`);
    }
    this.#hosted.set(listener.address, listener);
  }

  /** Every listener, of every kind. */
  hosted(): HostedListener[] {
    const wire = [...this.#listeners.values()].map((l): HostedListener => ({
      kind: 'wire',
      address: l.socketPath,
      clientName: l.binding.kind === 'client' ? l.binding.clientName : undefined,
      close: () => this.close(l.socketPath),
    }));
    return [...wire, ...this.#hosted.values()];
  }

  /** Close one listener, its connections, and remove its socket file. */
  async close(socketPath: string): Promise<void> {
    const hosted = this.#hosted.get(socketPath);
    if (hosted) {
      this.#hosted.delete(socketPath);
      await hosted.close();
      return;
    }
    const listener = this.#listeners.get(socketPath);
    if (!listener) return;
    this.#listeners.delete(socketPath);
    for (const c of listener.connections) c.destroy();
    await new Promise<void>((resolve) => listener.server.close(() => resolve()));
    await fs.unlink(socketPath).catch(() => undefined);
  }

  /** Close every connection of one client, wherever it came in (its registration is gone). */
  dropClient(name: string): void {
    for (const listener of this.#listeners.values()) {
      for (const c of listener.connections) {
        const id = c.identity;
        if (id?.kind === 'client' && id.client.name === name) c.destroy();
      }
    }
  }

  async closeAll(): Promise<void> {
    await Promise.all([...this.#listeners.keys(), ...this.#hosted.keys()].map((p) => this.close(p)));
  }

  paths(): string[] {
    return [...this.#listeners.keys()];
  }
}

/**
 * One client connection: frames in, answers out. The order of checks follows ssh-agent: frame
 * size → decode → envelope → handshake gate → look up handler → access gate → in-flight limits →
 * validate → run. An unknown op gets an error and the connection stays open.
 */
import type { Socket } from 'node:net';
import { type Identity, identityName } from '../clients/policy.js';
import { capAuditString } from '../clients/audit-log.js';
import type { ClientRecord } from '../clients/registry.js';
import { encodeFrame, encodeOkFrame, FrameDecoder, FrozenJson } from '../protocol/codec.js';
import { ErrorCode, ProxyError, toErrorFrame } from '../protocol/errors.js';
import { GET_TOKEN_DEADLINE_MS, HANDSHAKE_TIMEOUT_MS, MAX_IN_FLIGHT_PER_CONNECTION, PARTIAL_FRAME_TIMEOUT_MS, PRE_HANDSHAKE_MAX_FRAME_BYTES, PROTOCOL_VERSION } from '../protocol/limits.js';
import { isPlainObject } from '../protocol/validate.js';
import type { PeerInfo, ProxyServices, RequestContext } from './context.js';
import { ALL_OPS, CLIENT_OPS, findHandler, type DispatchedOp, type Handler } from './dispatch.js';

/** Where a connection came in, and who may use it. */
export interface ListenerBinding {
  kind: 'owner' | 'client';
  /** For a client listener: the only client allowed on it. */
  clientName?: string;
}

/**
 * Decides whether an authenticated identity may keep this connection (connection caps); returns
 * the refusal, or undefined to admit it. Called once, after a successful handshake.
 */
export type AdmitIdentity = (identity: Identity) => ProxyError | undefined;

/** Decides a presented capability token; throws RATE_LIMITED/UNAUTHORIZED. */
export interface HandshakeGate {
  authenticate(binding: ListenerBinding, peer: PeerInfo, token: string | undefined): Identity;
}

export interface ConnectionOptions {
  socket: Socket;
  binding: ListenerBinding;
  peer: PeerInfo;
  services: ProxyServices;
  gate: HandshakeGate;
  /** The path of the listener this connection came in on (what ping tells a client). */
  socketPath: string;
  maxFrameBytes: number;
  partialFrameTimeoutMs?: number;
  handshakeTimeoutMs?: number;
  /** A client connection with nothing in flight and no frame for this long is closed; 0: never. */
  clientIdleTimeoutMs?: number;
  admit?: AdmitIdentity;
  onAudit?: (event: AuditEvent) => void;
  /** The op events of onAudit as arguments, without an event object (the get_token hot path). */
  onOpAudit?: OpAuditSink;
  /** Shared by a listener's connections, so a cached token is serialized once for all. */
  json?: FrozenJson;
}

export type OpAuditSink = (client: string, op: string, outcome: string, provider: string | undefined, bucket: string | undefined, ms: number | undefined, pid: number | undefined) => void;

export interface AuditEvent {
  event: 'connect' | 'handshake' | 'op';
  client: string;
  op: string;
  outcome: 'ok' | string;
  provider?: string;
  bucket?: string;
  ms?: number;
  /** The peer's pid and uid as the kernel reported them at connect(). */
  pid?: number;
  uid?: number;
}

/**
 * A peer-supplied value for an error message. Never String() or `${}` it: an object like
 * {"toString":1} from JSON.parse makes those throw.
 */
function describe(value: unknown): string {
  if (typeof value === 'number' || typeof value === 'boolean' || value === null || value === undefined) return String(value);
  if (typeof value === 'string') return JSON.stringify(value.slice(0, 32));
  return Array.isArray(value) ? '<array>' : '<object>';
}

/** Stop reading from a peer that does not read our answers. */
const MAX_UNREAD_OUTPUT_BYTES = 16 * 1024 * 1024;
/** setTimeout's longest delay; a longer wait is done in steps. */
const MAX_TIMER_MS = 2 ** 31 - 1;

class InFlight {
  #controller: AbortController | undefined;
  cancelled = false;
  constructor(readonly id: string) {}
  get signal(): AbortSignal {
    this.#controller ??= new AbortController();
    return this.#controller.signal;
  }
  abort(reason: ProxyError): void {
    this.#controller?.abort(reason);
  }
}

/**
 * What a handler sees. Its InFlight (and AbortController) is made only when the handler reads
 * `signal` or answers asynchronously: a cached token is answered without either.
 */
class Context implements RequestContext {
  #req: InFlight | undefined;
  constructor(
    readonly identity: Identity,
    readonly services: ProxyServices,
    readonly peer: PeerInfo,
    readonly listenerPath: string,
    readonly id: string,
  ) {}

  get signal(): AbortSignal {
    return this.inFlight().signal;
  }

  inFlight(): InFlight {
    return (this.#req ??= new InFlight(this.id));
  }
}

export class Connection {
  readonly #socket: Socket;
  readonly #binding: ListenerBinding;
  readonly #peer: PeerInfo;
  readonly #services: ProxyServices;
  readonly #gate: HandshakeGate;
  readonly #socketPath: string;
  readonly #admit: AdmitIdentity | undefined;
  readonly #clientIdleTimeoutMs: number;
  readonly #decoder: FrameDecoder;
  readonly #maxFrameBytes: number;
  readonly #partialTimeoutMs: number;
  readonly #onAudit: ((event: AuditEvent) => void) | undefined;
  readonly #onOpAudit: OpAuditSink | undefined;
  readonly #json: FrozenJson;
  #identity: Identity | undefined;
  readonly #inFlight = new Map<string, InFlight>();
  #partialTimer: NodeJS.Timeout | undefined;
  #handshakeTimer: NodeJS.Timeout | undefined;
  /** Client connections only: closes the connection after a quiet spell (refreshed per chunk). */
  #idleTimer: NodeJS.Timeout | undefined;
  /** Client connections with a TTL only: closes the connection when the client expires. */
  #expiryTimer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(options: ConnectionOptions) {
    this.#socket = options.socket;
    this.#binding = options.binding;
    this.#peer = options.peer;
    this.#services = options.services;
    this.#gate = options.gate;
    this.#socketPath = options.socketPath;
    this.#admit = options.admit;
    this.#clientIdleTimeoutMs = options.clientIdleTimeoutMs ?? 0;
    this.#maxFrameBytes = options.maxFrameBytes;
    // A peer that has not proven who it is cannot make us buffer more than a handshake needs.
    this.#decoder = new FrameDecoder(Math.min(options.maxFrameBytes, PRE_HANDSHAKE_MAX_FRAME_BYTES), ' before the handshake — send the handshake first');
    this.#partialTimeoutMs = options.partialFrameTimeoutMs ?? PARTIAL_FRAME_TIMEOUT_MS;
    this.#onAudit = options.onAudit;
    this.#onOpAudit = options.onOpAudit;
    this.#json = options.json ?? new FrozenJson();
    this.#socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    this.#socket.on('close', () => this.#onClose());
    this.#socket.on('error', () => undefined);
    // A peer that never completes a handshake must not hold a connection slot forever.
    this.#handshakeTimer = setTimeout(() => this.#socket.destroy(), options.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS);
    this.#handshakeTimer.unref();
  }

  get identity(): Identity | undefined {
    return this.#identity;
  }

  /** Close this connection, e.g. because its client was removed. */
  destroy(): void {
    this.#socket.destroy();
  }

  #onData(chunk: Buffer): void {
    if (this.#closed) return;
    this.#idleTimer?.refresh();
    this.#decoder.write(chunk);
    // Frames are taken one at a time: the handshake raises the frame limit for the frames after
    // it, also those in the same chunk.
    let first = true;
    for (let frame = this.#decoder.next(); frame !== undefined; frame = this.#decoder.next()) {
      // The slowloris clock measures the frame that is incomplete now, not an earlier one.
      if (first) {
        first = false;
        this.#clearPartialTimer();
      }
      if (!frame.ok) {
        this.#send(toErrorFrame(frame.error, null));
        if (frame.fatal) {
          this.#closeAfterAnswer();
          return;
        }
        continue;
      }
      try {
        this.#onFrame(frame.value);
      } catch (err) {
        // A bug here must cost this request, not the whole proxy (a throw in a 'data' handler
        // is an uncaught exception).
        this.#services.logger.log('error', `frame handling failed: ${err instanceof Error ? (err.stack ?? err.message) : 'unknown error'}`);
        const rawId = isPlainObject(frame.value) ? frame.value.id : undefined;
        this.#send(toErrorFrame(err, typeof rawId === 'string' ? rawId : null));
      }
      if (this.#closed) return;
    }
    this.#armPartialTimer();
  }

  /** A frame that stays incomplete for too long closes the connection (slowloris). */
  #armPartialTimer(): void {
    if (this.#decoder.hasPartialFrame) {
      this.#partialTimer ??= setTimeout(() => {
        this.#services.logger.log('warn', 'closing connection: incomplete frame timed out', {
          client: this.#identity ? identityName(this.#identity) : 'none',
          pid: this.#peer.pid,
        });
        this.#socket.destroy();
      }, this.#partialTimeoutMs);
    } else {
      this.#clearPartialTimer();
    }
  }

  /** Stop reading, let the answers already written go out, then close. */
  #closeAfterAnswer(): void {
    this.#closed = true;
    this.#socket.end();
    this.#socket.destroySoon?.();
    setTimeout(() => this.#socket.destroy(), 1000).unref();
  }

  #clearPartialTimer(): void {
    if (this.#partialTimer) {
      clearTimeout(this.#partialTimer);
      this.#partialTimer = undefined;
    }
  }

  #onClose(): void {
    this.#closed = true;
    if (this.#partialTimer) clearTimeout(this.#partialTimer);
    clearTimeout(this.#handshakeTimer);
    clearTimeout(this.#idleTimer);
    clearTimeout(this.#expiryTimer);
    const reason = new ProxyError(ErrorCode.CANCELLED, 'connection closed');
    for (const req of this.#inFlight.values()) {
      req.cancelled = true;
      req.abort(reason);
    }
    this.#inFlight.clear();
  }

  #send(frame: object): void {
    if (this.#socket.destroyed || !this.#socket.writable) return;
    let bytes: Buffer;
    try {
      bytes = encodeFrame(frame, this.#maxFrameBytes);
    } catch (err) {
      const id = (frame as { id?: string | null }).id ?? null;
      bytes = encodeFrame(toErrorFrame(err, id));
    }
    this.#write(bytes);
  }

  #write(bytes: Buffer): void {
    this.#socket.write(bytes);
    if (this.#socket.writableLength > MAX_UNREAD_OUTPUT_BYTES) {
      this.#services.logger.log('warn', 'closing connection: peer is not reading its answers', { pid: this.#peer.pid });
      this.#socket.destroy();
    }
  }

  #onFrame(value: unknown): void {
    if (!isPlainObject(value)) {
      this.#send(toErrorFrame(new ProxyError(ErrorCode.INVALID_REQUEST, 'a frame must hold a JSON object {v, id, op, payload}'), null));
      return;
    }
    const rawId = value.id;
    const id = typeof rawId === 'string' ? rawId : null;
    const op = value.op;
    if (typeof op !== 'string' || op.length === 0) {
      this.#send(toErrorFrame(new ProxyError(ErrorCode.INVALID_REQUEST, 'missing "op": every request is {v, id, op, payload}'), id));
      return;
    }
    const payload = value.payload === undefined ? {} : value.payload;
    if (!isPlainObject(payload)) {
      this.#send(toErrorFrame(new ProxyError(ErrorCode.INVALID_REQUEST, '"payload" must be a JSON object'), id));
      return;
    }
    if (op === 'handshake') {
      this.#handshake(rawId, payload);
      return;
    }
    if (!this.#identity) {
      this.#send(toErrorFrame(new ProxyError(ErrorCode.INVALID_REQUEST, 'handshake first: the first frame must be {"v":2,"op":"handshake","payload":{"minVersion":1,"maxVersion":2}}'), id));
      return;
    }
    if (value.v !== PROTOCOL_VERSION) {
      this.#send(toErrorFrame(new ProxyError(ErrorCode.UNKNOWN_VERSION, `this proxy speaks protocol v${PROTOCOL_VERSION}; the request said v${describe(value.v)}`), id));
      return;
    }
    if (id === null || id.length === 0 || id.length > 256) {
      this.#send(toErrorFrame(new ProxyError(ErrorCode.INVALID_REQUEST, '"id" must be a non-empty string of at most 256 characters'), null));
      return;
    }
    if (this.#identity.kind === 'client' && this.#services.clients.isExpired(this.#identity.client)) {
      // The TTL holds for open connections too, not only at the handshake (the expiry timer
      // closes them; this covers a clock that jumped). The op name is the peer's: capped.
      this.#audit(capAuditString(op), 'UNAUTHORIZED');
      this.#send(toErrorFrame(new ProxyError(ErrorCode.UNAUTHORIZED, `client ${this.#identity.client.name} has expired — ask the owner for a new one (\`credproxy client add\`)`), id));
      this.#closeAfterAnswer();
      return;
    }
    if (op === 'cancel') {
      this.#cancel(id, payload);
      return;
    }
    const handler = findHandler(op);
    if (!handler) {
      this.#audit(capAuditString(op), ErrorCode.UNKNOWN_OP);
      this.#send(toErrorFrame(new ProxyError(ErrorCode.UNKNOWN_OP, `unknown op "${op.slice(0, 64)}" — this proxy knows: ${ALL_OPS.join(', ')}`), id));
      return;
    }
    if (handler.access === 'owner' && this.#identity.kind !== 'owner') {
      this.#audit(op, 'FORBIDDEN');
      this.#send(toErrorFrame(new ProxyError(ErrorCode.FORBIDDEN, `${op} is for the owner only`), id));
      return;
    }
    if (this.#inFlight.has(id)) {
      this.#send(toErrorFrame(new ProxyError(ErrorCode.INVALID_REQUEST, `a request with id "${id.slice(0, 64)}" is already in flight — use a fresh id per request`), id));
      return;
    }
    if (this.#inFlight.size >= MAX_IN_FLIGHT_PER_CONNECTION) {
      this.#send(toErrorFrame(new ProxyError(ErrorCode.RESOURCE_EXHAUSTED, `at most ${MAX_IN_FLIGHT_PER_CONNECTION} requests may be in flight on one connection — wait for answers or open another connection`), id));
      return;
    }
    this.#run(id, op as DispatchedOp, handler, payload, this.#identity);
  }

  #handshake(rawId: unknown, payload: Record<string, unknown>): void {
    const echo = typeof rawId === 'string' ? rawId : undefined;
    const reply = (frame: Record<string, unknown>): void => {
      if (echo !== undefined) frame.id = echo;
      this.#send(frame);
    };
    const fail = (err: ProxyError): void => {
      const frame: Record<string, unknown> = { ...toErrorFrame(err, echo ?? null) };
      if (echo === undefined) delete frame.id;
      this.#send(frame);
    };
    if (this.#identity) {
      fail(new ProxyError(ErrorCode.INVALID_REQUEST, 'this connection has already completed its handshake'));
      return;
    }
    const min = payload.minVersion ?? PROTOCOL_VERSION;
    const max = payload.maxVersion ?? PROTOCOL_VERSION;
    if (typeof min !== 'number' || typeof max !== 'number' || !(min <= PROTOCOL_VERSION && PROTOCOL_VERSION <= max)) {
      this.#auditHandshake('UNKNOWN_VERSION');
      fail(new ProxyError(ErrorCode.UNKNOWN_VERSION, `this proxy speaks protocol v${PROTOCOL_VERSION}; the client offered v${describe(min)}..v${describe(max)} — upgrade the client or the proxy`));
      return;
    }
    const token = payload.capabilityToken;
    if (token !== undefined && typeof token !== 'string') {
      fail(new ProxyError(ErrorCode.INVALID_REQUEST, 'capabilityToken must be a string of 64 lowercase hex characters'));
      return;
    }
    let identity: Identity;
    try {
      identity = this.#gate.authenticate(this.#binding, this.#peer, token);
    } catch (err) {
      const proxyErr = err instanceof ProxyError ? err : new ProxyError(ErrorCode.INTERNAL_ERROR, 'handshake failed');
      this.#auditHandshake(proxyErr.code);
      fail(proxyErr);
      return;
    }
    const refusal = this.#admit?.(identity);
    if (refusal) {
      this.#auditHandshake(refusal.code, identityName(identity));
      fail(refusal);
      this.#closeAfterAnswer();
      return;
    }
    this.#identity = identity;
    clearTimeout(this.#handshakeTimer);
    this.#decoder.setMaxFrameBytes(this.#maxFrameBytes);
    if (identity.kind === 'client') this.#armClientTimers(identity.client);
    this.#auditHandshake('ok');
    reply({
      v: PROTOCOL_VERSION,
      ok: true,
      data: {
        version: PROTOCOL_VERSION,
        server: `credproxy/${this.#services.version}`,
        client: identityName(identity),
        ops: [...(identity.kind === 'owner' ? ALL_OPS : CLIENT_OPS)],
      },
    });
  }

  /**
   * A client's connection closes when the client expires — not only at its next request, so an
   * expired client keeps nothing open — and after a quiet spell (the owner's connections never
   * idle out: the owner is not the one who could starve the others).
   */
  #armClientTimers(client: ClientRecord): void {
    if (this.#clientIdleTimeoutMs > 0) {
      this.#idleTimer = setTimeout(() => {
        if (this.#inFlight.size > 0) {
          this.#idleTimer?.refresh();
          return;
        }
        this.#services.logger.log('info', 'closing idle client connection', { client: client.name, pid: this.#peer.pid });
        this.#socket.destroy();
      }, this.#clientIdleTimeoutMs);
      this.#idleTimer.unref();
    }
    if (client.expires_at === undefined) return;
    const expiresAtMs = client.expires_at * 1000;
    const arm = (): void => {
      const wait = Math.min(Math.max(expiresAtMs - this.#services.clock.now(), 0), MAX_TIMER_MS);
      this.#expiryTimer = setTimeout(() => {
        if (!this.#services.clients.isExpired(client)) {
          arm();
          return;
        }
        this.#services.logger.log('info', 'closing the connection of an expired client', { client: client.name, pid: this.#peer.pid });
        this.#socket.destroy();
      }, wait);
      this.#expiryTimer.unref();
    };
    arm();
  }

  #cancel(id: string, payload: Record<string, unknown>): void {
    const targetId = payload.targetId;
    if (typeof targetId !== 'string') {
      this.#send(toErrorFrame(new ProxyError(ErrorCode.INVALID_REQUEST, 'cancel needs payload.targetId: the id of a request in flight on this connection'), id));
      return;
    }
    const target = this.#inFlight.get(targetId);
    if (target && !target.cancelled) {
      target.cancelled = true;
      this.#inFlight.delete(targetId);
      const reason = new ProxyError(ErrorCode.CANCELLED, `request ${targetId.slice(0, 64)} was cancelled by the client`);
      target.abort(reason);
      this.#send(toErrorFrame(reason, targetId));
      this.#send({ v: PROTOCOL_VERSION, id, ok: true, data: { cancelled: true } });
    } else {
      this.#send({ v: PROTOCOL_VERSION, id, ok: true, data: { cancelled: false } });
    }
  }

  #run(id: string, op: DispatchedOp, handler: Handler<DispatchedOp>, raw: Record<string, unknown>, identity: Identity): void {
    const started = performance.now();
    const ctx = new Context(identity, this.#services, this.#peer, this.#socketPath, id);
    let validated: ReturnType<Handler<DispatchedOp>['validate']>;
    try {
      validated = handler.validate(raw);
    } catch (err) {
      this.#answerError(err, op, id, undefined, started);
      return;
    }
    const scope = validated as { provider?: string; bucket?: string };
    let result: unknown;
    try {
      result = handler.run(validated as never, ctx);
    } catch (err) {
      this.#answerError(err, op, id, scope, started);
      return;
    }
    if (!(result instanceof Promise)) {
      this.#answerOk(id, op, result, scope, started);
      return;
    }
    const inFlight = ctx.inFlight();
    this.#inFlight.set(id, inFlight);
    let deadline: NodeJS.Timeout | undefined;
    const settled = (): boolean => {
      if (deadline) clearTimeout(deadline);
      if (inFlight.cancelled) return false;
      this.#inFlight.delete(id);
      return true;
    };
    if (handler.slow) {
      deadline = setTimeout(() => {
        const err = new ProxyError(ErrorCode.UPSTREAM_UNAVAILABLE, `${op} did not finish within ${GET_TOKEN_DEADLINE_MS / 1000} s — the provider is slow or unreachable; try again`);
        inFlight.abort(err);
        if (settled()) this.#answerError(err, op, id, scope, started);
        inFlight.cancelled = true;
      }, GET_TOKEN_DEADLINE_MS);
      deadline.unref();
    }
    result.then(
      (data) => {
        if (settled()) this.#answerOk(id, op, data, scope, started);
      },
      (err: unknown) => {
        if (settled()) this.#answerError(err, op, id, scope, started);
      },
    );
  }

  #answerOk(id: string, op: string, data: unknown, scope: { provider?: string; bucket?: string }, started: number): void {
    this.#audit(op, 'ok', scope, performance.now() - started);
    if (this.#socket.destroyed || !this.#socket.writable) return;
    let bytes: Buffer;
    try {
      bytes = encodeOkFrame(id, data, this.#maxFrameBytes, this.#json);
    } catch (err) {
      bytes = encodeFrame(toErrorFrame(err, id));
    }
    this.#write(bytes);
  }

  #answerError(err: unknown, op: string, id: string, scope: { provider?: string; bucket?: string } | undefined, started: number): void {
    if (!(err instanceof ProxyError) || err.code === ErrorCode.INTERNAL_ERROR) {
      this.#services.logger.log('error', `op ${op} failed: ${err instanceof Error ? (err.stack ?? err.message) : `a thrown ${typeof err}`}`);
    }
    this.#audit(op, err instanceof ProxyError ? err.code : ErrorCode.INTERNAL_ERROR, scope, performance.now() - started);
    this.#send(toErrorFrame(err, id));
  }

  #audit(op: string, outcome: string, scope?: { provider?: string; bucket?: string }, ms?: number): void {
    const client = this.#identity ? identityName(this.#identity) : 'none';
    const rounded = ms === undefined ? undefined : Math.round(ms * 100) / 100;
    if (this.#onOpAudit) {
      this.#onOpAudit(client, op, outcome, scope?.provider, scope?.bucket, rounded, this.#peer.pid);
      return;
    }
    if (!this.#onAudit) return;
    const event: AuditEvent = { event: 'op', client, op, outcome };
    if (scope?.provider !== undefined) event.provider = scope.provider;
    if (scope?.bucket !== undefined) event.bucket = scope.bucket;
    if (rounded !== undefined) event.ms = rounded;
    if (this.#peer.pid !== undefined) event.pid = this.#peer.pid;
    this.#onAudit(event);
  }

  #auditHandshake(outcome: string, client = this.#identity ? identityName(this.#identity) : 'none'): void {
    if (!this.#onAudit) return;
    const event: AuditEvent = { event: 'handshake', client, op: 'handshake', outcome };
    if (this.#peer.pid !== undefined) event.pid = this.#peer.pid;
    this.#onAudit(event);
  }

}


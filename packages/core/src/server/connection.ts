/**
 * One client connection: frames in, answers out. The order of checks follows ssh-agent: frame
 * size → decode → envelope → handshake gate → look up handler → access gate → in-flight limits →
 * validate → run. An unknown op gets an error and the connection stays open.
 *
 * The envelope is read by protocol/envelope.ts, the handshake negotiated by handshake.ts, and
 * ops run by op-runner.ts; this class holds the socket, the timers and the order of the checks.
 */
import type { Socket } from 'node:net';
import { type AuditSink, capAuditString } from '../clients/audit-log.js';
import { type Identity, identityName } from '../clients/policy.js';
import type { ClientRecord } from '../clients/registry.js';
import { encodeFrame, FrameDecoder, type FrozenJson } from '../protocol/codec.js';
import { checkRequestEnvelope, isEnvelopeError, readEnvelope } from '../protocol/envelope.js';
import { ErrorCode, ProxyError, toErrorFrame } from '../protocol/errors.js';
import { HANDSHAKE_TIMEOUT_MS, PARTIAL_FRAME_TIMEOUT_MS, PRE_HANDSHAKE_MAX_FRAME_BYTES } from '../protocol/limits.js';
import { isPlainObject } from '../protocol/validate.js';
import type { PeerInfo, ProxyServices } from './context.js';
import { ALL_OPS, findHandler, type DispatchedOp } from './dispatch.js';
import { type AdmitIdentity, alreadyHandshaken, type HandshakeAnswers, type HandshakeGate, handshakeAnswerFrame, type ListenerBinding, negotiateHandshake } from './handshake.js';
import { LOCKED_OPS, lockedError } from './handlers/panic.js';
import { OpRunner } from './op-runner.js';

export type { AdmitIdentity, HandshakeGate, ListenerBinding } from './handshake.js';

/**
 * What the connections of one listener share: made once when the listener starts, not per
 * connection (a process-per-call client connects for every request).
 */
export interface ListenerShared {
  binding: ListenerBinding;
  services: ProxyServices;
  gate: HandshakeGate;
  /** The path of the listener (what ping tells a client). */
  socketPath: string;
  maxFrameBytes: number;
  partialFrameTimeoutMs?: number;
  handshakeTimeoutMs?: number;
  /** A client connection with nothing in flight and no frame for this long is closed; 0: never. */
  clientIdleTimeoutMs?: number;
  admit?: AdmitIdentity;
  audit?: AuditSink;
  /** Shared by a listener's connections, so a cached token is serialized once for all. */
  json: FrozenJson;
  /** Encoded handshake answers, shared by the connections of a listener host. */
  answers: HandshakeAnswers;
  /** Called once when a connection has closed (after its own cleanup). */
  closed?: (connection: Connection) => void;
}

/** An 'error' event is followed by 'close', where the connection cleans up. */
const ignoreError = (): void => undefined;

/** Stop reading from a peer that does not read our answers. */
const MAX_UNREAD_OUTPUT_BYTES = 16 * 1024 * 1024;
/** setTimeout's longest delay; a longer wait is done in steps. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export class Connection {
  readonly #socket: Socket;
  readonly #peer: PeerInfo;
  readonly #shared: ListenerShared;
  readonly #services: ProxyServices;
  readonly #decoder: FrameDecoder;
  readonly #ops: OpRunner;
  #identity: Identity | undefined;
  #partialTimer: NodeJS.Timeout | undefined;
  #handshakeTimer: NodeJS.Timeout | undefined;
  /** Client connections only: closes the connection after a quiet spell (refreshed per chunk). */
  #idleTimer: NodeJS.Timeout | undefined;
  /** Client connections with a TTL only: closes the connection when the client expires. */
  #expiryTimer: NodeJS.Timeout | undefined;
  #closed = false;
  /** The peer half-closed: it sends nothing more. */
  #peerEnded = false;

  constructor(socket: Socket, peer: PeerInfo, shared: ListenerShared) {
    this.#socket = socket;
    this.#peer = peer;
    this.#shared = shared;
    this.#services = shared.services;
    // A peer that has not proven who it is cannot make us buffer more than a handshake needs.
    this.#decoder = new FrameDecoder(Math.min(shared.maxFrameBytes, PRE_HANDSHAKE_MAX_FRAME_BYTES), ' before the handshake — send the handshake first');
    this.#ops = new OpRunner({
      services: shared.services,
      peer,
      listenerPath: shared.socketPath,
      maxFrameBytes: shared.maxFrameBytes,
      json: shared.json,
      send: (frame) => this.#send(frame),
      write: (bytes) => this.#write(bytes),
      writable: () => !this.#socket.destroyed && this.#socket.writable,
      audit: (op, outcome, scope, ms) => this.#auditOp(op, outcome, scope, ms),
    });
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('end', () => this.#onPeerEnd());
    socket.on('close', () => this.#onClose());
    socket.on('error', ignoreError);
    // A peer that never completes a handshake must not hold a connection slot forever.
    this.#handshakeTimer = setTimeout(() => this.#socket.destroy(), shared.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS);
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

  /**
   * The peer will send nothing more (its socket is half-open: the listener does not end ours for
   * it). With nothing in flight the connection closes at once — no shutdown round of its own for
   * a one-shot caller that has its answer; otherwise it stays open until the last answer went out.
   */
  #onPeerEnd(): void {
    this.#peerEnded = true;
    if (this.#ops.size === 0) this.#endAfterWrites();
  }

  /** Close now when every answer was written; else end after the buffered ones. */
  #endAfterWrites(): void {
    this.#closed = true;
    if (this.#socket.writableLength === 0) this.#socket.destroy();
    else this.#closeAfterAnswer();
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
      }, (this.#shared.partialFrameTimeoutMs ?? PARTIAL_FRAME_TIMEOUT_MS));
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
    // Most connections close with nothing in flight (a one-shot caller has its answer).
    if (this.#ops.size > 0) this.#ops.abortAll();
    this.#shared.closed?.(this);
  }

  #send(frame: object): void {
    if (this.#socket.destroyed || !this.#socket.writable) return;
    let bytes: Buffer;
    try {
      bytes = encodeFrame(frame, this.#shared.maxFrameBytes);
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
      return;
    }
    // A peer that half-closed after its requests gets every answer, then the connection ends.
    if (this.#peerEnded && this.#ops.size === 0) this.#endAfterWrites();
  }

  #refuse(error: ProxyError, id: string | null): void {
    this.#send(toErrorFrame(error, id));
  }

  #onFrame(value: unknown): void {
    const envelope = readEnvelope(value);
    if (isEnvelopeError(envelope)) {
      this.#refuse(envelope.error, envelope.id);
      return;
    }
    const { op, payload } = envelope;
    if (op === 'handshake') {
      this.#handshake(envelope.rawId, payload);
      return;
    }
    const identity = this.#identity;
    if (!identity) {
      this.#refuse(new ProxyError(ErrorCode.INVALID_REQUEST, 'handshake first: the first frame must be {"v":2,"op":"handshake","payload":{"minVersion":1,"maxVersion":2}}'), envelope.id);
      return;
    }
    const bad = checkRequestEnvelope(envelope);
    if (bad) {
      this.#refuse(bad.error, bad.id);
      return;
    }
    const id = envelope.id!;
    if (identity.kind === 'client' && this.#services.clients.isExpired(identity.client)) {
      // The TTL holds for open connections too, not only at the handshake (the expiry timer
      // closes them; this covers a clock that jumped). The op name is the peer's: capped.
      this.#auditOp(capAuditString(op), ErrorCode.UNAUTHORIZED);
      this.#refuse(new ProxyError(ErrorCode.UNAUTHORIZED, `client ${identity.client.name} has expired — ask the owner for a new one (\`credproxy client add\`)`), id);
      this.#closeAfterAnswer();
      return;
    }
    if (op === 'cancel') {
      this.#ops.cancel(id, payload);
      return;
    }
    const handler = findHandler(op);
    if (!handler) {
      this.#auditOp(capAuditString(op), ErrorCode.UNKNOWN_OP);
      this.#refuse(new ProxyError(ErrorCode.UNKNOWN_OP, `unknown op "${op.slice(0, 64)}" — this proxy knows: ${ALL_OPS.join(', ')}`), id);
      return;
    }
    if (this.#services.lockdown.locked && (identity.kind !== 'owner' || !LOCKED_OPS.has(op))) {
      this.#auditOp(op, ErrorCode.FORBIDDEN);
      this.#refuse(lockedError(op), id);
      return;
    }
    if (handler.access === 'owner' && identity.kind !== 'owner') {
      this.#auditOp(op, ErrorCode.FORBIDDEN);
      this.#refuse(new ProxyError(ErrorCode.FORBIDDEN, `${op} is for the owner only`), id);
      return;
    }
    const refusal = this.#ops.refusal(id);
    if (refusal) {
      this.#refuse(refusal, id);
      return;
    }
    this.#ops.run(id, op as DispatchedOp, handler, payload, identity);
  }

  #handshake(rawId: unknown, payload: Record<string, unknown>): void {
    if (this.#identity) {
      this.#send(handshakeAnswerFrame(rawId, { ok: false, error: alreadyHandshaken() }));
      return;
    }
    const outcome = negotiateHandshake({
      payload,
      binding: this.#shared.binding,
      peer: this.#peer,
      gate: this.#shared.gate,
      admit: this.#shared.admit,
      serverVersion: this.#services.version,
    });
    if (!outcome.ok) {
      if (outcome.audit) this.#auditHandshake(outcome.audit.outcome, outcome.audit.client);
      this.#send(handshakeAnswerFrame(rawId, outcome));
      if (outcome.close) this.#closeAfterAnswer();
      return;
    }
    const { identity } = outcome;
    this.#identity = identity;
    clearTimeout(this.#handshakeTimer);
    this.#decoder.setMaxFrameBytes(this.#shared.maxFrameBytes);
    if (identity.kind === 'client') this.#armClientTimers(identity.client);
    if (!this.#socket.destroyed && this.#socket.writable) this.#write(this.#shared.answers.encode(rawId, outcome));
    // After the answer, as for ops: the caller does not wait for the line.
    this.#auditHandshake('ok', identityName(identity));
  }

  /**
   * A client's connection closes when the client expires — not only at its next request, so an
   * expired client keeps nothing open — and after a quiet spell (the owner's connections never
   * idle out: the owner is not the one who could starve the others).
   */
  #armClientTimers(client: ClientRecord): void {
    if ((this.#shared.clientIdleTimeoutMs ?? 0) > 0) {
      this.#idleTimer = setTimeout(() => {
        if (this.#ops.size > 0) {
          this.#idleTimer?.refresh();
          return;
        }
        this.#services.logger.log('info', 'closing idle client connection', { client: client.name, pid: this.#peer.pid });
        this.#socket.destroy();
      }, (this.#shared.clientIdleTimeoutMs ?? 0));
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

  #auditOp(op: string, outcome: string, scope?: { provider?: string; bucket?: string }, ms?: number): void {
    if (!this.#shared.audit) return;
    const client = this.#identity ? identityName(this.#identity) : 'none';
    const rounded = ms === undefined ? undefined : Math.round(ms * 100) / 100;
    this.#shared.audit.op(client, op, outcome, scope?.provider, scope?.bucket, rounded, this.#peer.pid);
  }

  #auditHandshake(outcome: string, client: string): void {
    if (!this.#shared.audit) return;
    this.#shared.audit.connection('handshake', client, outcome, this.#peer.pid, undefined);
  }
}

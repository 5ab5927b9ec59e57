/**
 * The first frame of a connection (SPEC §2): version negotiation, then the capability token
 * through the listener's gate, then the connection caps. The answer's `data.version` is what
 * llxprt-code's client reads; a handshake id is echoed only when the client sent one.
 */
import { type Identity, identityName } from '../clients/policy.js';
import { describePeerValue } from '../protocol/envelope.js';
import { encodeFrame } from '../protocol/codec.js';
import { ErrorCode, ProxyError, toErrorFrame } from '../protocol/errors.js';
import { PROTOCOL_VERSION } from '../protocol/limits.js';
import type { HandshakeResult } from '../protocol/ops.js';
import type { PeerInfo } from './context.js';
import { ALL_OPS, CLIENT_OPS } from './dispatch.js';

/** Where a connection came in, and who may use it. */
export interface ListenerBinding {
  kind: 'owner' | 'client';
  /** For a client listener: the only client allowed on it. */
  clientName?: string;
}

/** Decides a presented capability token; throws RATE_LIMITED/UNAUTHORIZED. */
export interface HandshakeGate {
  authenticate(binding: ListenerBinding, peer: PeerInfo, token: string | undefined): Identity;
}

/**
 * Decides whether an authenticated identity may keep this connection (connection caps); returns
 * the refusal, or undefined to admit it. Called once, after a successful handshake.
 */
export type AdmitIdentity = (identity: Identity) => ProxyError | undefined;

export interface HandshakeInput {
  payload: Record<string, unknown>;
  binding: ListenerBinding;
  peer: PeerInfo;
  gate: HandshakeGate;
  admit?: AdmitIdentity | undefined;
  serverVersion: string;
}

export type HandshakeOutcome =
  | { ok: true; identity: Identity; data: HandshakeResult }
  | {
      ok: false;
      error: ProxyError;
      /** The audit line's outcome, when this refusal is audited. */
      audit?: { outcome: string; client: string };
      /** Close the connection after answering (the peer was authenticated but not admitted). */
      close: boolean;
    };

/** The ops a handshake answer lists, one frozen array per kind (not a copy per connection). */
const OWNER_ANSWER_OPS = Object.freeze([...ALL_OPS]) as string[];
const CLIENT_ANSWER_OPS = Object.freeze([...CLIENT_OPS]) as string[];

export function negotiateHandshake(input: HandshakeInput): HandshakeOutcome {
  const { payload } = input;
  const min = payload.minVersion ?? PROTOCOL_VERSION;
  const max = payload.maxVersion ?? PROTOCOL_VERSION;
  if (typeof min !== 'number' || typeof max !== 'number' || !(min <= PROTOCOL_VERSION && PROTOCOL_VERSION <= max)) {
    return {
      ok: false,
      close: false,
      audit: { outcome: ErrorCode.UNKNOWN_VERSION, client: 'none' },
      error: new ProxyError(ErrorCode.UNKNOWN_VERSION, `this proxy speaks protocol v${PROTOCOL_VERSION}; the client offered v${describePeerValue(min)}..v${describePeerValue(max)} — upgrade the client or the proxy`),
    };
  }
  const token = payload.capabilityToken;
  if (token !== undefined && typeof token !== 'string') {
    return { ok: false, close: false, error: new ProxyError(ErrorCode.INVALID_REQUEST, 'capabilityToken must be a string of 64 lowercase hex characters') };
  }
  let identity: Identity;
  try {
    identity = input.gate.authenticate(input.binding, input.peer, token);
  } catch (err) {
    const error = err instanceof ProxyError ? err : new ProxyError(ErrorCode.INTERNAL_ERROR, 'handshake failed');
    return { ok: false, close: false, audit: { outcome: error.code, client: 'none' }, error };
  }
  const refusal = input.admit?.(identity);
  if (refusal) {
    return { ok: false, close: true, audit: { outcome: refusal.code, client: identityName(identity) }, error: refusal };
  }
  return {
    ok: true,
    identity,
    data: {
      version: PROTOCOL_VERSION,
      server: `credproxy/${input.serverVersion}`,
      client: identityName(identity),
      ops: identity.kind === 'owner' ? OWNER_ANSWER_OPS : CLIENT_ANSWER_OPS,
    },
  };
}

/** The frame that answers a handshake: the id echoed only when the client sent a string id. */
export function handshakeAnswerFrame(rawId: unknown, outcome: { ok: true; data: HandshakeResult } | { ok: false; error: ProxyError }): Record<string, unknown> {
  const echo = typeof rawId === 'string' ? rawId : undefined;
  if (outcome.ok) {
    const frame: Record<string, unknown> = { v: PROTOCOL_VERSION, ok: true, data: outcome.data };
    if (echo !== undefined) frame.id = echo;
    return frame;
  }
  const frame: Record<string, unknown> = { ...toErrorFrame(outcome.error, echo ?? null) };
  if (echo === undefined) delete frame.id;
  return frame;
}

/**
 * The encoded answers to successful handshakes: the same bytes as encodeFrame of
 * handshakeAnswerFrame. Without an id to echo, an answer depends only on the server (one per
 * process), the identity's kind (which ops) and its name, so it is encoded once per identity —
 * kept by the owner's identity or by the client's record, so no key is built per connection (a
 * process-per-call client connects for every request) — rather than once per connection. A
 * client whose record is replaced (reloaded) gets a new entry; the old goes with the record. A
 * cached buffer is only ever written. One per listener host.
 */
export class HandshakeAnswers {
  readonly #cache = new WeakMap<object, { server: string; client: string; bytes: Buffer }>();

  encode(rawId: unknown, outcome: { ok: true; identity: Identity; data: HandshakeResult }): Buffer {
    if (typeof rawId === 'string') return encodeFrame(handshakeAnswerFrame(rawId, outcome));
    const { identity, data } = outcome;
    const key: object = identity.kind === 'owner' ? identity : identity.client;
    let entry = this.#cache.get(key);
    if (entry === undefined || entry.server !== data.server || entry.client !== data.client) {
      entry = { server: data.server, client: data.client, bytes: encodeFrame(handshakeAnswerFrame(undefined, outcome)) };
      this.#cache.set(key, entry);
    }
    return entry.bytes;
  }
}

export function alreadyHandshaken(): ProxyError {
  return new ProxyError(ErrorCode.INVALID_REQUEST, 'this connection has already completed its handshake');
}

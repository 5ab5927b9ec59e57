/**
 * The request envelope `{v, id, op, payload}` (SPEC §2), read from a decoded frame. Two steps,
 * because the handshake is looser than the requests after it: `readEnvelope` for every frame,
 * `checkRequestEnvelope` once the connection is authenticated.
 */
import { ErrorCode, ProxyError } from './errors.js';
import { PROTOCOL_VERSION } from './limits.js';
import { isPlainObject } from './validate.js';

export interface Envelope {
  /** The id as sent (any JSON value); the handshake echoes it only when it is a string. */
  rawId: unknown;
  /** The id when it is a string, else null (what an error frame then carries). */
  id: string | null;
  op: string;
  payload: Record<string, unknown>;
  v: unknown;
}

/** A frame that is not an envelope: the error to answer, and the id to answer it with. */
export interface EnvelopeError {
  error: ProxyError;
  id: string | null;
}

/** Longest request id accepted (ids are echoed, and keyed in the in-flight table). */
export const MAX_REQUEST_ID_CHARS = 256;

/**
 * A peer-supplied value for an error message. Never String() or `${}` it: an object like
 * {"toString":1} from JSON.parse makes those throw.
 */
export function describePeerValue(value: unknown): string {
  if (typeof value === 'number' || typeof value === 'boolean' || value === null || value === undefined) return String(value);
  if (typeof value === 'string') return JSON.stringify(value.slice(0, 32));
  return Array.isArray(value) ? '<array>' : '<object>';
}

/** The envelope of a decoded frame, or the error that answers it. */
export function readEnvelope(value: unknown): Envelope | EnvelopeError {
  if (!isPlainObject(value)) {
    return { error: new ProxyError(ErrorCode.INVALID_REQUEST, 'a frame must hold a JSON object {v, id, op, payload}'), id: null };
  }
  const rawId = value.id;
  const id = typeof rawId === 'string' ? rawId : null;
  const op = value.op;
  if (typeof op !== 'string' || op.length === 0) {
    return { error: new ProxyError(ErrorCode.INVALID_REQUEST, 'missing "op": every request is {v, id, op, payload}'), id };
  }
  const payload = value.payload === undefined ? {} : value.payload;
  if (!isPlainObject(payload)) {
    return { error: new ProxyError(ErrorCode.INVALID_REQUEST, '"payload" must be a JSON object'), id };
  }
  return { rawId, id, op, payload, v: value.v };
}

export function isEnvelopeError(read: Envelope | EnvelopeError): read is EnvelopeError {
  return 'error' in read;
}

/**
 * What a request after the handshake must also have: this protocol's version and a usable id.
 * Returns the error to answer (with the id to answer it with), or undefined.
 */
export function checkRequestEnvelope(envelope: Envelope): EnvelopeError | undefined {
  if (envelope.v !== PROTOCOL_VERSION) {
    return {
      error: new ProxyError(ErrorCode.UNKNOWN_VERSION, `this proxy speaks protocol v${PROTOCOL_VERSION}; the request said v${describePeerValue(envelope.v)}`),
      id: envelope.id,
    };
  }
  const { id } = envelope;
  if (id === null || id.length === 0 || id.length > MAX_REQUEST_ID_CHARS) {
    return { error: new ProxyError(ErrorCode.INVALID_REQUEST, `"id" must be a non-empty string of at most ${MAX_REQUEST_ID_CHARS} characters`), id: null };
  }
  return undefined;
}

/**
 * The one error table of the wire protocol (SPEC §2). The code is the API; the message is for
 * people and names the fix.
 */
export const ErrorCode = {
  INVALID_REQUEST: 'INVALID_REQUEST',
  UNKNOWN_VERSION: 'UNKNOWN_VERSION',
  UNKNOWN_OP: 'UNKNOWN_OP',
  UNAUTHORIZED: 'UNAUTHORIZED',
  FORBIDDEN: 'FORBIDDEN',
  NOT_FOUND: 'NOT_FOUND',
  PROVIDER_NOT_CONFIGURED: 'PROVIDER_NOT_CONFIGURED',
  NOT_LOGGED_IN: 'NOT_LOGGED_IN',
  REAUTH_REQUIRED: 'REAUTH_REQUIRED',
  FLOW_INITIATION_FAILED: 'FLOW_INITIATION_FAILED',
  SESSION_NOT_FOUND: 'SESSION_NOT_FOUND',
  SESSION_EXPIRED: 'SESSION_EXPIRED',
  SESSION_ALREADY_USED: 'SESSION_ALREADY_USED',
  STATE_MISMATCH: 'STATE_MISMATCH',
  EXCHANGE_FAILED: 'EXCHANGE_FAILED',
  ACCESS_DENIED: 'ACCESS_DENIED',
  REFRESH_FAILED: 'REFRESH_FAILED',
  UPSTREAM_UNAVAILABLE: 'UPSTREAM_UNAVAILABLE',
  RATE_LIMITED: 'RATE_LIMITED',
  RESOURCE_EXHAUSTED: 'RESOURCE_EXHAUSTED',
  CANCELLED: 'CANCELLED',
  RESPONSE_TOO_LARGE: 'RESPONSE_TOO_LARGE',
  INTERNAL_ERROR: 'INTERNAL_ERROR',
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

const KNOWN_CODES: ReadonlySet<string> = new Set(Object.values(ErrorCode));

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && KNOWN_CODES.has(value);
}

export interface ProxyErrorOptions {
  /** Seconds; only meaningful with RATE_LIMITED. */
  retryAfter?: number;
  cause?: unknown;
}

/**
 * The one error class that crosses the wire. Anything thrown that is not a ProxyError is an
 * internal fault and reaches the caller only as a generic INTERNAL_ERROR.
 */
export class ProxyError extends Error {
  readonly code: ErrorCode;
  readonly retryAfter: number | undefined;

  constructor(code: ErrorCode, message: string, options: ProxyErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ProxyError';
    this.code = code;
    this.retryAfter = options.retryAfter;
  }
}

export interface ErrorFrame {
  v: 2;
  id: string | null;
  ok: false;
  code: ErrorCode;
  error: string;
  retryAfter?: number;
}

export const INTERNAL_ERROR_MESSAGE =
  'internal error in credproxy — the proxy log (stderr of `credproxy serve`) has the details';

/**
 * The only function that turns an error into a frame. Errors that are not ProxyErrors are
 * replaced by a generic INTERNAL_ERROR so stack traces, paths and secrets never reach a client.
 */
export function toErrorFrame(err: unknown, id: string | null): ErrorFrame {
  if (err instanceof ProxyError && err.code !== ErrorCode.INTERNAL_ERROR) {
    const frame: ErrorFrame = { v: 2, id, ok: false, code: err.code, error: err.message };
    if (err.code === ErrorCode.RATE_LIMITED && err.retryAfter !== undefined) {
      frame.retryAfter = err.retryAfter;
    }
    return frame;
  }
  return { v: 2, id, ok: false, code: ErrorCode.INTERNAL_ERROR, error: INTERNAL_ERROR_MESSAGE };
}

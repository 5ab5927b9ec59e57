/**
 * Responses made by the proxy itself (SPEC §6), never by upstream: `x-credproxy-error: CODE` and
 * a JSON body `{"error": {"code", "message"}}`. The one place that turns an error into such a
 * response; anything that is not a ProxyError becomes a generic INTERNAL_ERROR.
 */
import type { ServerResponse } from 'node:http';
import { ErrorCode, INTERNAL_ERROR_MESSAGE, ProxyError } from '../protocol/errors.js';

export const PROXY_ERROR_HEADER = 'x-credproxy-error';
export const PROXY_AUTH_CHALLENGE = 'Basic realm="credproxy"';

const STATUS: ReadonlyMap<ErrorCode, number> = new Map<ErrorCode, number>([
  [ErrorCode.INVALID_REQUEST, 400],
  [ErrorCode.REAUTH_REQUIRED, 401],
  [ErrorCode.NOT_LOGGED_IN, 401],
  [ErrorCode.FORBIDDEN, 403],
  [ErrorCode.NOT_FOUND, 404],
  [ErrorCode.UNAUTHORIZED, 407],
  [ErrorCode.RATE_LIMITED, 429],
  [ErrorCode.CANCELLED, 499],
  [ErrorCode.UPSTREAM_UNAVAILABLE, 502],
  [ErrorCode.REFRESH_FAILED, 502],
  [ErrorCode.PROVIDER_NOT_CONFIGURED, 502],
  [ErrorCode.RESOURCE_EXHAUSTED, 503],
]);

export interface ProxyErrorBody {
  error: { code: ErrorCode; message: string };
}

export interface ProxyErrorResponse {
  status: number;
  code: ErrorCode;
  message: string;
  retryAfter?: number;
}

/** What the client is told about `err`: status, code and a message meant for it. */
export function describeProxyError(err: unknown): ProxyErrorResponse {
  if (err instanceof ProxyError && err.code !== ErrorCode.INTERNAL_ERROR) {
    const timeout = (err as { timeout?: unknown }).timeout === true;
    const status = err.code === ErrorCode.UPSTREAM_UNAVAILABLE && timeout ? 504 : (STATUS.get(err.code) ?? 500);
    const out: ProxyErrorResponse = { status, code: err.code, message: err.message };
    if (err.code === ErrorCode.RATE_LIMITED) out.retryAfter = Math.max(1, Math.ceil(err.retryAfter ?? 60));
    return out;
  }
  return { status: 500, code: ErrorCode.INTERNAL_ERROR, message: INTERNAL_ERROR_MESSAGE };
}

/**
 * Send the error response. When the request body has not been read, the connection is closed
 * after the answer instead of reading a body nobody wants (it may be 1 GiB).
 */
export function sendProxyError(res: ServerResponse, err: unknown, requestComplete: boolean): ProxyErrorResponse {
  const d = describeProxyError(err);
  if (res.headersSent) {
    res.destroy();
    return d;
  }
  const body = JSON.stringify({ error: { code: d.code, message: d.message } } satisfies ProxyErrorBody);
  const headers: Record<string, string> = {
    'content-type': 'application/json; charset=utf-8',
    'content-length': String(Buffer.byteLength(body)),
    'cache-control': 'no-store',
    [PROXY_ERROR_HEADER]: d.code,
  };
  if (d.status === 407) headers['proxy-authenticate'] = PROXY_AUTH_CHALLENGE;
  if (d.status === 401) headers['www-authenticate'] = 'credproxy realm="credproxy"';
  if (d.retryAfter !== undefined) headers['retry-after'] = String(d.retryAfter);
  if (!requestComplete) headers.connection = 'close';
  res.writeHead(d.status, headers);
  res.end(body);
  return d;
}

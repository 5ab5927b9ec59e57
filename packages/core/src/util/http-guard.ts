/**
 * Last-resort guards for the proxy's HTTP listeners. Whatever a peer sends — a request target
 * URL parsing rejects, bytes that are not HTTP, a connection dropped halfway — nothing may throw
 * out of a listener's callbacks: in a long-running process holding every token, one uncaught
 * exception is an outage. Handlers should not throw in the first place; these catch what they
 * miss, answer, and log one line that names no request data (targets carry codes and states).
 */
import type http from 'node:http';
import type { Duplex } from 'node:stream';
import { ErrorCode, ProxyError } from '../protocol/errors.js';
import type { Logger } from './logger.js';

export type HttpHandler = (req: http.IncomingMessage, res: http.ServerResponse) => void | Promise<void>;

export interface HttpGuardOptions {
  /** Names the listener in the log line, e.g. "github login callback". */
  name: string;
  logger?: Logger;
}

/** Errors that mean "the request was bad", not "the handler is broken". */
function isBadRequest(err: unknown): boolean {
  if (err instanceof ProxyError) return err.code === ErrorCode.INVALID_REQUEST;
  if (err instanceof URIError) return true;
  return (err as { code?: unknown } | null)?.code === 'ERR_INVALID_URL';
}

/** What a log line may say about an error: its class and code, never its message (it may quote input). */
function describeError(err: unknown): { error: string; code?: string } {
  const name = err instanceof Error ? err.name : typeof err;
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? { error: name, code } : { error: name };
}

function logSafely(options: HttpGuardOptions, level: 'warn' | 'error', message: string, fields: Record<string, string | undefined>): void {
  try {
    options.logger?.log(level, `${options.name}: ${message}`, fields);
  } catch {
    // A failing logger must not turn a handled request into an uncaught exception.
  }
}

/** Answer a request whose handler failed: 400 or 500 while the headers are unsent, else cut the connection. */
function answerFailure(req: http.IncomingMessage, res: http.ServerResponse, err: unknown, options: HttpGuardOptions): void {
  const bad = isBadRequest(err);
  logSafely(options, bad ? 'warn' : 'error', bad ? 'bad request' : 'request handler failed', { method: req.method, ...describeError(err) });
  try {
    if (res.headersSent || res.destroyed) {
      res.destroy();
      return;
    }
    const status = bad ? 400 : 500;
    res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store', connection: 'close' });
    res.end(bad ? 'Bad request.\n' : 'credproxy could not handle this request; see the proxy log.\n');
  } catch {
    try {
      res.destroy();
    } catch {
      // nothing left to do
    }
  }
}

/**
 * Wrap a request handler so that neither a synchronous throw nor a rejected promise escapes it.
 * The wrapper itself never throws.
 */
export function guardHttpHandler(handler: HttpHandler, options: HttpGuardOptions): (req: http.IncomingMessage, res: http.ServerResponse) => void {
  return (req, res) => {
    let result: void | Promise<void>;
    try {
      result = handler(req, res);
    } catch (err) {
      answerFailure(req, res, err, options);
      return;
    }
    if (result !== undefined && typeof (result as Promise<void>).then === 'function') {
      (result as Promise<void>).then(undefined, (err: unknown) => answerFailure(req, res, err, options));
    }
  };
}

const BAD_REQUEST = 'HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 13\r\nconnection: close\r\n\r\nBad request.\n';

/** Malformed HTTP (the parser gave up): 400 where nothing was answered yet on that connection, then close it. */
export function onClientError(options: HttpGuardOptions): (err: Error & { code?: string }, socket: Duplex) => void {
  return (err, socket) => {
    try {
      logSafely(options, 'warn', 'malformed request', describeError(err));
      const s = socket as Duplex & { bytesWritten?: number };
      if (err.code === 'ECONNRESET' || !s.writable || (s.bytesWritten ?? 0) > 0) {
        s.destroy();
        return;
      }
      s.end(BAD_REQUEST, () => s.destroy());
      // A peer that never reads must not keep the descriptor.
      setTimeout(() => s.destroy(), 1_000).unref();
    } catch {
      try {
        socket.destroy();
      } catch {
        // nothing left to do
      }
    }
  };
}

export interface HardenOptions extends HttpGuardOptions {
  /** At most this many open connections; more are closed at accept. */
  maxConnections?: number;
  /** Whole request (headers) must arrive within this, ms. */
  headersTimeoutMs?: number;
}

/**
 * Guard a server's non-request events: malformed requests (clientError), and server errors after
 * listen (an accept failing with EMFILE emits 'error' on the server — without a listener that
 * kills the process). Also bounds slow or numerous connections.
 */
export function hardenHttpServer(server: http.Server, options: HardenOptions): http.Server {
  server.on('clientError', onClientError(options));
  server.on('error', (err: Error) => logSafely(options, 'error', 'listener error', describeError(err)));
  if (options.maxConnections !== undefined) server.maxConnections = options.maxConnections;
  if (options.headersTimeoutMs !== undefined) {
    server.headersTimeout = options.headersTimeoutMs;
    server.requestTimeout = options.headersTimeoutMs;
  }
  return server;
}

/**
 * The exit codes of SPEC §5, defined here and nowhere else, and the one mapping from an error to
 * an exit code.
 */
import type { ErrorCode, OAuthPollResult, Op } from './core-client.js';
import type { CliIO } from './output.js';
import { isErrorCode, ProxyError, ProxyUnavailableError, UntrustedSocketError } from './core-client.js';

export const ExitCode = {
  OK: 0,
  ERROR: 1,
  USAGE: 2,
  /** A login session is not finished yet. */
  PENDING: 3,
  /** Denied, expired or failed. */
  FAILED: 4,
  /** The proxy is not running or not reachable (or, for `serve`, already running). */
  UNAVAILABLE: 5,
  /** Not logged in, or a new login is needed. */
  NOT_LOGGED_IN: 6,
  /** Interrupted with Ctrl-C (the shell's 128 + SIGINT). */
  INTERRUPTED: 130,
} as const;

export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** A login session's state as an exit code: 0 complete, 3 pending, 4 denied/expired/failed/cancelled. */
export function exitCodeForSession(status: OAuthPollResult['status']): ExitCode {
  if (status === 'complete') return ExitCode.OK;
  if (status === 'pending') return ExitCode.PENDING;
  return ExitCode.FAILED;
}

/** Exit codes by the proxy's error code; anything not listed is a plain error (1). */
const BY_ERROR_CODE: Partial<Record<ErrorCode, ExitCode>> = {
  NOT_LOGGED_IN: ExitCode.NOT_LOGGED_IN,
  REAUTH_REQUIRED: ExitCode.NOT_LOGGED_IN,
  ACCESS_DENIED: ExitCode.FAILED,
  SESSION_EXPIRED: ExitCode.FAILED,
  // A session swept after it ended answers SESSION_NOT_FOUND: for a CI poller it has expired.
  SESSION_NOT_FOUND: ExitCode.FAILED,
  SESSION_ALREADY_USED: ExitCode.FAILED,
  STATE_MISMATCH: ExitCode.FAILED,
  EXCHANGE_FAILED: ExitCode.FAILED,
  // The proxy checks every name and value the user typed; a refusal is a usage error.
  INVALID_REQUEST: ExitCode.USAGE,
};

/**
 * Where one code means something else for one op. get_token answers NOT_FOUND for a missing
 * account (what llxprt's sandbox client expects); for the CLI that is "not logged in".
 */
const BY_OP: { [O in Op]?: Partial<Record<ErrorCode, ExitCode>> } = {
  get_token: { NOT_FOUND: ExitCode.NOT_LOGGED_IN },
  refresh_token: { NOT_FOUND: ExitCode.NOT_LOGGED_IN },
};

export function exitCodeForErrorCode(code: ErrorCode, op?: Op): ExitCode {
  return (op !== undefined ? BY_OP[op]?.[code] : undefined) ?? BY_ERROR_CODE[code] ?? ExitCode.ERROR;
}

/** An expected failure of a command: its message names the fix and is printed without a stack. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = ExitCode.ERROR,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

/** The user typed something the command cannot use. */
export class UsageError extends CliError {
  constructor(message: string) {
    super(message, ExitCode.USAGE);
    this.name = 'UsageError';
  }
}

/** A ProxyError that remembers which op answered it (see BY_OP). */
export class OpError extends ProxyError {
  constructor(
    readonly op: Op,
    cause: ProxyError,
  ) {
    super(cause.code, cause.message, cause.retryAfter === undefined ? {} : { retryAfter: cause.retryAfter });
    this.name = 'OpError';
  }
}

interface CommanderErrorLike {
  code: string;
  exitCode: number;
}

/** Duck-typed so this module does not load commander (the fast `token` path skips it). */
function isCommanderError(err: unknown): err is CommanderErrorLike {
  if (!(err instanceof Error)) return false;
  const { code, exitCode } = err as Partial<CommanderErrorLike>;
  return typeof code === 'string' && code.startsWith('commander.') && typeof exitCode === 'number';
}

/**
 * A ProxyError from either copy of core's error class: the built CLI carries core's client part
 * in its own bundle, while `serve` and `provider` load the full @credproxy/core package.
 */
function isProxyError(err: unknown): err is ProxyError {
  if (err instanceof ProxyError) return true;
  return err instanceof Error && err.name === 'ProxyError' && isErrorCode((err as { code?: unknown }).code);
}

/** connect() failures other than "no socket"/"nobody listening" (EACCES, ENOTSOCK, ...). */
function isConnectError(err: unknown): err is NodeJS.ErrnoException & { address?: string } {
  return err instanceof Error && (err as NodeJS.ErrnoException).syscall === 'connect';
}

export interface ErrorReport {
  exitCode: number;
  /** What to print on stderr; undefined when commander already printed it. */
  message: string | undefined;
  /**
   * The error under `--json`: `{"error": {code, message}}` — the proxy's code (SPEC §2) when it
   * answered one, else USAGE, UNAVAILABLE, PENDING, FAILED, NOT_LOGGED_IN or ERROR by exit code.
   */
  code: string;
  /** The message without the `credproxy: ` prefix. */
  bare: string;
}

/** One format for every error line: `credproxy: <what happened> — <the fix>`. */
function prefixed(message: string): string {
  return message.startsWith('credproxy ') || message.startsWith('credproxy: ') ? message : `credproxy: ${message}`;
}

const CODE_BY_EXIT: Record<number, string> = {
  [ExitCode.ERROR]: 'ERROR',
  [ExitCode.USAGE]: 'USAGE',
  [ExitCode.PENDING]: 'PENDING',
  [ExitCode.FAILED]: 'FAILED',
  [ExitCode.UNAVAILABLE]: 'UNAVAILABLE',
  [ExitCode.NOT_LOGGED_IN]: 'NOT_LOGGED_IN',
  [ExitCode.INTERRUPTED]: 'INTERRUPTED',
};

function report(exitCode: number, message: string | undefined, code?: string): ErrorReport {
  const bare = message === undefined ? '' : message.replace(/^credproxy: /, '');
  return { exitCode, message: message === undefined ? undefined : prefixed(message), code: code ?? CODE_BY_EXIT[exitCode] ?? 'ERROR', bare };
}

/** An error as one JSON line for stderr under `--json`. */
export function errorJson(r: ErrorReport): string {
  return `${JSON.stringify({ error: { code: r.code, message: r.bare } })}\n`;
}

/** The only function that turns an error into an exit code and a message. */
export function describeError(err: unknown): ErrorReport {
  if (isCommanderError(err)) {
    // Help and --version exit 0; every other commander error is a usage error it has printed.
    return report(err.exitCode === 0 ? ExitCode.OK : ExitCode.USAGE, undefined);
  }
  if (err instanceof CliError) return report(err.exitCode, err.message);
  if (err instanceof ProxyUnavailableError || err instanceof UntrustedSocketError) {
    return report(ExitCode.UNAVAILABLE, err.message);
  }
  if (isProxyError(err)) {
    const op = err instanceof OpError ? err.op : undefined;
    return report(exitCodeForErrorCode(err.code, op), err.message, err.code);
  }
  if (isConnectError(err)) {
    return report(
      ExitCode.UNAVAILABLE,
      `cannot connect to ${String(err.address ?? 'the socket')} (${err.code ?? 'error'}) — check --socket, or start the proxy with \`credproxy serve\``,
    );
  }
  return report(ExitCode.ERROR, err instanceof Error ? err.message : String(err));
}

/**
 * Say what went wrong, on stderr, and return the exit code: the message (and the stack under
 * CREDPROXY_DEBUG), or one JSON line under `--json`. `usage` is what commander printed for a
 * usage error (kept back under `--json`, so it can go out as that JSON line instead).
 */
export function reportError(err: unknown, io: CliIO, options: { json: boolean; usage?: string }): number {
  const report = describeError(err);
  if (options.json && report.exitCode !== 0) {
    if (report.message === undefined) {
      report.bare = (options.usage ?? '').replace(/^credproxy: /, '').replace(/\n?\(add --help for usage\)\n?$/, '').trim();
    }
    io.stderr.write(errorJson(report));
    return report.exitCode;
  }
  if (report.message !== undefined) io.stderr.write(report.message + '\n');
  if (io.env.CREDPROXY_DEBUG && err instanceof Error && err.stack) io.stderr.write(err.stack + '\n');
  return report.exitCode;
}

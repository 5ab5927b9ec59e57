import { CommanderError } from 'commander';
import { describe, expect, it } from 'vitest';
import { ErrorCode, ProxyError, ProxyUnavailableError, UntrustedSocketError } from '@credproxy/core';
import { CliError, ExitCode, OpError, UsageError, describeError, exitCodeForErrorCode } from './exit-codes.js';

describe('exit codes', () => {
  it('are the numbers of SPEC §5', () => {
    expect(ExitCode).toMatchObject({ OK: 0, ERROR: 1, USAGE: 2, PENDING: 3, FAILED: 4, UNAVAILABLE: 5, NOT_LOGGED_IN: 6 });
  });

  it.each([
    [ErrorCode.NOT_LOGGED_IN, undefined, 6],
    [ErrorCode.REAUTH_REQUIRED, undefined, 6],
    [ErrorCode.REAUTH_REQUIRED, 'get_token', 6],
    [ErrorCode.NOT_FOUND, 'get_token', 6],
    [ErrorCode.NOT_FOUND, 'refresh_token', 6],
    [ErrorCode.NOT_FOUND, 'client_remove', 1],
    [ErrorCode.NOT_FOUND, undefined, 1],
    [ErrorCode.ACCESS_DENIED, 'oauth_poll', 4],
    [ErrorCode.SESSION_EXPIRED, undefined, 4],
    [ErrorCode.SESSION_NOT_FOUND, 'oauth_poll', 4],
    [ErrorCode.INVALID_REQUEST, 'set_api_key', 2],
    [ErrorCode.FORBIDDEN, 'get_token', 1],
    [ErrorCode.INTERNAL_ERROR, undefined, 1],
    [ErrorCode.UPSTREAM_UNAVAILABLE, 'get_token', 1],
  ] as const)('%s from %s → %d', (code, op, exit) => {
    expect(exitCodeForErrorCode(code, op)).toBe(exit);
  });
});

describe('describeError', () => {
  it('knows a ProxyError from the other copy of core (the bundled CLI carries its own) by name and code', () => {
    class OtherCopy extends Error {
      readonly code = ErrorCode.INVALID_REQUEST;
      constructor(message: string) {
        super(message);
        this.name = 'ProxyError';
      }
    }
    const err = new OtherCopy('the socket path is too long — use a shorter --socket');
    expect(err).not.toBeInstanceOf(ProxyError);
    expect(describeError(err)).toMatchObject({ exitCode: exitCodeForErrorCode(ErrorCode.INVALID_REQUEST), message: 'credproxy: the socket path is too long — use a shorter --socket' });
    const impostor = Object.assign(new Error('x'), { name: 'ProxyError', code: 'NOT_A_CODE' });
    expect(describeError(impostor).exitCode).toBe(ExitCode.ERROR);
  });

  it('maps a missing account behind get_token to 6 and keeps the message that names the fix', () => {
    const err = new OpError('get_token', new ProxyError(ErrorCode.NOT_FOUND, 'gh is not logged in — run `credproxy login gh`'));
    expect(describeError(err)).toMatchObject({ exitCode: 6, message: 'credproxy: gh is not logged in — run `credproxy login gh`' });
    expect(err).toBeInstanceOf(ProxyError);
  });

  it('maps "no proxy" to 5 with a message naming `credproxy serve`, without doubling the prefix', () => {
    const report = describeError(new ProxyUnavailableError('/tmp/x/proxy.sock', 'no socket'));
    expect(report.exitCode).toBe(5);
    expect(report.message).toMatch(/^credproxy is not running on \/tmp\/x\/proxy\.sock .*`credproxy serve`$/);
  });

  it('refuses an untrusted socket with 5', () => {
    expect(describeError(new UntrustedSocketError('/tmp/x is not a socket — refusing to connect')).exitCode).toBe(5);
  });

  it('maps a failed connect (EACCES) to 5', () => {
    const err = Object.assign(new Error('connect EACCES /tmp/s'), { code: 'EACCES', syscall: 'connect', address: '/tmp/s' });
    const report = describeError(err);
    expect(report.exitCode).toBe(5);
    expect(report.message).toContain('/tmp/s (EACCES)');
  });

  it('lets commander print its own errors: usage → 2, help and version → 0', () => {
    expect(describeError(new CommanderError(1, 'commander.unknownOption', "error: unknown option '--x'"))).toMatchObject({ exitCode: 2, message: undefined });
    expect(describeError(new CommanderError(1, 'commander.missingArgument', 'error'))).toMatchObject({ exitCode: 2, message: undefined });
    expect(describeError(new CommanderError(1, 'commander.help', '(outputHelp)')).exitCode).toBe(2);
    expect(describeError(new CommanderError(0, 'commander.helpDisplayed', '(outputHelp)')).exitCode).toBe(0);
    expect(describeError(new CommanderError(0, 'commander.version', '0.1.0')).exitCode).toBe(0);
  });

  it('uses the exit code a CliError carries', () => {
    expect(describeError(new UsageError('bad --ttl'))).toMatchObject({ exitCode: 2, message: 'credproxy: bad --ttl' });
    expect(describeError(new CliError('command not found: x', 127)).exitCode).toBe(127);
  });

  it('turns an unexpected error into its message and 1, with no stack trace', () => {
    const report = describeError(new TypeError('boom'));
    expect(report).toMatchObject({ exitCode: 1, message: 'credproxy: boom', code: 'ERROR', bare: 'boom' });
    expect(describeError('weird').message).toBe('credproxy: weird');
  });
});

/**
 * `credproxy session start|status|cancel`: logins for CI. `start` returns at once with the
 * session id and the URL or user code; `status` reads one state (exit 0 complete, 3 pending,
 * 4 denied/expired/failed) or waits for the end with a progress line.
 */
import type { Command } from 'commander';
import { parseSeconds } from '../args.js';
import { type CommandContext, type CommonOptions, dataOptions } from '../command-kit.js';
import type { OAuthPollResult, OpPayload, OpResult } from '../core-client.js';
import { ExitCode, exitCodeForSession } from '../exit-codes.js';
import { type CliIO, accountLabel, formatExpiry, formatTable, printResult } from '../output.js';
import { connectOrStart, initiateOrUndo, withProxy } from '../proxy.js';
import { assertFlow, describeEnded, sessionFailure, waitForSession } from './login.js';

export interface SessionStartOptions extends CommonOptions {
  provider: string;
  bucket?: string;
  flow?: string;
}

export async function handleSessionStart(options: SessionStartOptions, io: CliIO): Promise<number> {
  const payload: OpPayload<'oauth_initiate'> = { provider: options.provider };
  if (options.bucket !== undefined) payload.bucket = options.bucket;
  const flow = assertFlow(options.flow);
  if (flow !== undefined) payload.flow = flow;
  const proxy = await connectOrStart(options.socket, io);
  try {
    const data = await initiateOrUndo(proxy, options.provider, options.bucket, () => proxy.call('oauth_initiate', payload));
    printResult(io, options.json, data, (d) => {
      const rows: string[][] = [['session', d.session_id], ['flow', d.flow_type], ['url', d.auth_url]];
      if (d.user_code !== undefined) rows.push(['code', d.user_code]);
      if (d.verification_uri !== undefined) rows.push(['verify at', d.verification_uri]);
      rows.push(['expires', formatExpiry(d.expires_at)]);
      return rows.map(([k, v]) => `${(k ?? '').padEnd(10)}${v ?? ''}`).join('\n') + '\n';
    });
    return ExitCode.OK;
  } finally {
    proxy.client.close();
  }
}

export interface SessionStatusOptions extends CommonOptions {
  id: string;
  wait?: boolean;
  timeout?: string;
}

export function formatPoll(d: OAuthPollResult): string {
  if (d.status === 'complete') {
    return `complete: ${accountLabel(d.provider ?? '?', d.bucket)} — token valid until ${formatExpiry(d.expiry)}\n`;
  }
  return `${describeEnded(d.status, d.error)}\n`;
}

export async function handleSessionStatus(options: SessionStatusOptions, io: CliIO): Promise<number> {
  const timeoutS = options.timeout === undefined ? undefined : parseSeconds(options.timeout, '--timeout');
  return withProxy(options.socket, io.env, async (proxy) => {
    let result: OAuthPollResult;
    if (options.wait) {
      const started = Date.now();
      const deadline = timeoutS === undefined ? undefined : started + timeoutS * 1000;
      const tty = Boolean(io.stderr.isTTY);
      let lastLine = 0;
      result = await waitForSession(proxy, options.id, 1_000, {
        ...(deadline !== undefined ? { deadline } : {}),
        onTick: (r) => {
          if (r.status !== 'pending') return;
          const waited = Math.round((Date.now() - started) / 1000);
          // A progress line: redrawn in place on a terminal, one line every 10 s in a CI log.
          if (tty) io.stderr.write(`\rwaiting for login ${options.id.slice(0, 8)}… ${waited}s`);
          else if (waited - lastLine >= 10 || lastLine === 0) {
            lastLine = Math.max(waited, 1);
            io.stderr.write(`waiting for login ${options.id.slice(0, 8)}… ${waited}s\n`);
          }
        },
      });
      if (tty) io.stderr.write('\r\x1b[2K');
    } else {
      result = await proxy.call('oauth_poll', { session_id: options.id });
    }
    printResult(io, options.json, result, formatPoll);
    if (!options.json && result.status !== 'complete' && result.status !== 'pending') {
      io.stderr.write(`credproxy: ${sessionFailure(result, 'the provider').message}\n`);
    }
    return exitCodeForSession(result.status);
  });
}

export async function handleSessionCancel(options: CommonOptions & { id: string }, io: CliIO): Promise<number> {
  const data = await withProxy(options.socket, io.env, (proxy) => proxy.call('oauth_cancel', { session_id: options.id }));
  printResult(io, options.json, data, () => `cancelled\n`);
  return ExitCode.OK;
}

/** Pending logins as a table: what a CI script that lost its session id looks for. */
export function formatSessionList(sessions: OpResult<'session_list'>['sessions']): string {
  if (sessions.length === 0) return 'no pending logins\n';
  return formatTable(
    ['SESSION', 'ACCOUNT', 'FLOW', 'STARTED BY', 'EXPIRES', 'CODE'],
    sessions.map((s) => [s.session_id, accountLabel(s.provider, s.bucket), s.flow_type, s.started_by, formatExpiry(s.expires_at), s.user_code ?? '']),
  );
}

export async function handleSessionList(options: CommonOptions, io: CliIO): Promise<number> {
  const data = await withProxy(options.socket, io.env, (proxy) => proxy.call('session_list', {}));
  printResult(io, options.json, data, (d) => formatSessionList(d.sessions));
  return 0;
}

export function register(program: Command, ctx: CommandContext): void {
  const session = program.command('session').description('logins for CI: start, list, status, cancel');
  dataOptions(session.command('list').description('pending logins: their session ids, accounts and user codes')).action(async (opts: CommonOptions) => {
    ctx.exitCode = await handleSessionList(opts, ctx.io);
  });
  dataOptions(
    session
      .command('start')
      .description('start a login and return at once with the session id and the URL or user code')
      .argument('<provider>', 'provider name')
      .option('--bucket <bucket>', 'account bucket (default: default)')
      .option('--flow <flow>', 'login flow: pkce_redirect, device_code, browser_redirect'),
  ).action(async (provider: string, opts: Omit<SessionStartOptions, 'provider'>) => {
    ctx.exitCode = await handleSessionStart({ provider, ...opts }, ctx.io);
  });
  dataOptions(
    session
      .command('status')
      .description('the state of a login: exit 0 complete, 3 pending, 4 denied/expired/failed')
      .argument('<id>', 'session id from `session start`')
      .option('--wait', 'wait until the login ends, showing progress')
      .option('--timeout <seconds>', 'with --wait: give up after this long (exit 3)'),
  ).action(async (id: string, opts: Omit<SessionStatusOptions, 'id'>) => {
    ctx.exitCode = await handleSessionStatus({ id, ...opts }, ctx.io);
  });
  dataOptions(session.command('cancel').description('cancel a pending login').argument('<id>', 'session id')).action(
    async (id: string, opts: CommonOptions) => {
      ctx.exitCode = await handleSessionCancel({ id, ...opts }, ctx.io);
    },
  );
}

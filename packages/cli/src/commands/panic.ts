/**
 * `credproxy panic`: revoke every token at its provider, delete every token, remove every client
 * and close its listeners, cancel pending logins, and lock the proxy (only ping and status answer)
 * until `credproxy unlock`. Prints, per account, what was revoked and what could not be, and why.
 */
import type { Command } from 'commander';
import { type CommandContext, type CommonOptions, dataOptions } from '../command-kit.js';
import type { OpResult } from '../core-client.js';
import { accountLabel, type CliIO, printResult } from '../output.js';
import { withProxy } from '../proxy.js';

export function formatPanic(d: OpResult<'panic'>): string {
  const lines: string[] = [];
  for (const a of d.accounts) {
    lines.push(a.revoked ? `revoked and deleted  ${accountLabel(a.provider, a.bucket)}` : `deleted, NOT revoked ${accountLabel(a.provider, a.bucket)}: ${a.reason ?? 'no reason given'}`);
  }
  if (d.accounts.length === 0) lines.push('no accounts were logged in');
  lines.push(d.clients_removed.length > 0 ? `removed clients: ${d.clients_removed.join(', ')} (their sockets and ports are closed)` : 'no clients were registered');
  if (d.logins_cancelled > 0) lines.push(`cancelled ${d.logins_cancelled} pending login(s)`);
  lines.push('API keys are kept: revoke them at each provider if they may have leaked (`credproxy key list` names them)');
  lines.push('credproxy is locked: it answers only `ping` and `status` until `credproxy unlock` (or a restart)');
  return `${lines.join('\n')}\n`;
}

export async function handlePanic(options: CommonOptions, io: CliIO): Promise<number> {
  // Revocation goes to every provider: give it longer than an ordinary op.
  const data = await withProxy(options.socket, io.env, (proxy) => proxy.call('panic', {}, { timeoutMs: 120_000 }));
  printResult(io, options.json, data, formatPanic);
  return 0;
}

export async function handleUnlock(options: CommonOptions, io: CliIO): Promise<number> {
  const data = await withProxy(options.socket, io.env, (proxy) => proxy.call('unlock', {}));
  printResult(io, options.json, data, () => 'credproxy is unlocked: clients can be added and served again\n');
  return 0;
}

export function register(program: Command, ctx: CommandContext): void {
  dataOptions(
    program.command('panic').description('revoke and delete every token, remove every client, and lock the proxy until `credproxy unlock`'),
  ).action(async (opts: CommonOptions) => {
    ctx.exitCode = await handlePanic(opts, ctx.io);
  });
  dataOptions(program.command('unlock').description('serve again after `credproxy panic`')).action(async (opts: CommonOptions) => {
    ctx.exitCode = await handleUnlock(opts, ctx.io);
  });
}

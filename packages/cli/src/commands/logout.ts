/** `credproxy logout PROVIDER`: revoke at the provider (RFC 7009) when it can, then forget. */
import type { Command } from 'commander';
import { type CommandContext, type CommonOptions, dataOptions } from '../command-kit.js';
import type { OpPayload, OpResult } from '../core-client.js';
import { type CliIO, accountLabel, printResult } from '../output.js';
import { withProxy } from '../proxy.js';
import { explainMissingAccount } from '../suggest.js';
import { ProxyError } from '../core-client.js';
import { CliError, ExitCode } from '../exit-codes.js';

export interface LogoutOptions extends CommonOptions {
  provider: string;
  bucket?: string;
  /** false with --no-revoke: forget locally only. */
  revoke: boolean;
}

export function formatLogout(label: string, data: OpResult<'logout'>): string {
  return data.revoked
    ? `logged out of ${label} (token revoked at the provider)\n`
    : `logged out of ${label} (not revoked: ${data.reason ?? 'no reason given'})\n`;
}

export async function handleLogout(options: LogoutOptions, io: CliIO): Promise<number> {
  const payload: OpPayload<'logout'> = { provider: options.provider, revoke: options.revoke };
  if (options.bucket !== undefined) payload.bucket = options.bucket;
  const data = await withProxy(options.socket, io.env, (proxy) =>
    proxy.call('logout', payload).catch(async (err: unknown) => {
      // Removing what does not exist is exit 1, as for keys and clients — and "run credproxy login"
      // would be the wrong fix for a logout.
      if (!(err instanceof ProxyError) || err.code !== 'NOT_LOGGED_IN') throw err;
      await explainMissingAccount(err, proxy, options.provider, options.bucket, ExitCode.ERROR).catch((better: unknown) => {
        if (better instanceof CliError) throw better;
      });
      throw new CliError(`${accountLabel(options.provider, options.bucket)} is not logged in — nothing to log out (\`credproxy status\` lists the accounts)`);
    }),
  );
  printResult(io, options.json, data, (d) => formatLogout(accountLabel(options.provider, options.bucket), d));
  return 0;
}

export function register(program: Command, ctx: CommandContext): void {
  dataOptions(
    program
      .command('logout')
      .description('revoke the token at the provider and forget the account')
      .argument('<provider>', 'provider name')
      .option('--bucket <bucket>', 'account bucket (default: default)')
      .option('--no-revoke', 'forget the token without revoking it at the provider'),
  ).action(async (provider: string, opts: CommonOptions & { bucket?: string; revoke: boolean }) => {
    ctx.exitCode = await handleLogout({ provider, ...opts }, ctx.io);
  });
}

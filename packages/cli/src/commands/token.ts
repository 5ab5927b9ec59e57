/**
 * `credproxy token PROVIDER`: print an access token and nothing else, for `$(...)` and scripts.
 * Plain arguments never reach this module: main runs token-fast.ts first (no commander).
 */
import type { Command } from 'commander';
import { parseSeconds } from '../args.js';
import { type CommandContext, type CommonOptions, dataOptions } from '../command-kit.js';
import { handleToken, type TokenOptions } from './token-fast.js';

export { handleToken, parseTokenArgs, runFast, type TokenOptions } from './token-fast.js';

export function register(program: Command, ctx: CommandContext): void {
  dataOptions(
    program
      .command('token')
      .description('print an access token (for $(...) and scripts)')
      .argument('<provider>', 'provider name')
      .option('--bucket <bucket>', 'account bucket (default: default)')
      .option('--min-valid <seconds>', 'refresh first if the token expires within this many seconds (default 60)')
      .option('--token-fd <n>', "in a sandbox: read the client's capability token from this descriptor (else $CREDPROXY_CAPABILITY_TOKEN)")
      .addHelpText('after', '\nExamples:\n  credproxy token github\n  curl -H "Authorization: Bearer $(credproxy token github)" https://api.github.com/user\n  credproxy token github --token-fd 3 3< agent.token    # a sandbox client\n'),
  ).action(async (provider: string, opts: CommonOptions & { bucket?: string; minValid?: string; tokenFd?: string }) => {
    const { minValid, ...rest } = opts;
    const options: TokenOptions = { provider, ...rest };
    if (minValid !== undefined) options.minValid = parseSeconds(minValid, '--min-valid');
    ctx.exitCode = await handleToken(options, ctx.io);
  });
}

/**
 * `credproxy exec --provider P[:B] -- CMD...`: run CMD with an access token in its environment
 * (never on its command line), and exit as it exits.
 */
import { spawn } from 'node:child_process';
import os from 'node:os';
import type { Command } from 'commander';
import { assertEnvName, parseAccountSpec } from '../args.js';
import { type CommandContext, socketOption } from '../command-kit.js';
import type { OpPayload } from '../core-client.js';
import { CliError, UsageError } from '../exit-codes.js';
import type { CliIO } from '../output.js';
import { withProxy } from '../proxy.js';

export interface ExecOptions {
  provider: string;
  bucket?: string;
  /** The variable that carries the token (default ACCESS_TOKEN). */
  envName: string;
  command: readonly string[];
  socket?: string;
}

/** Signals a terminal sends to the whole process group reach the child anyway; these may not. */
const FORWARDED_SIGNALS: readonly NodeJS.Signals[] = ['SIGTERM', 'SIGHUP'];

export async function handleExec(options: ExecOptions, io: CliIO): Promise<number> {
  const [file, ...args] = options.command;
  if (file === undefined) throw new UsageError('no command to run — put it after `--`, e.g. `credproxy exec --provider github -- gh api user`');
  const payload: OpPayload<'get_token'> = { provider: options.provider };
  if (options.bucket !== undefined) payload.bucket = options.bucket;
  const token = await withProxy(options.socket, io.env, (proxy) => proxy.call('get_token', payload));

  const child = spawn(file, args, { stdio: 'inherit', env: { ...io.env, [options.envName]: token.access_token } });
  const forward = (signal: NodeJS.Signals): void => void child.kill(signal);
  // Ctrl-C goes to the child through the terminal; the CLI waits for it to finish.
  const ignore = (): void => undefined;
  process.on('SIGINT', ignore);
  for (const s of FORWARDED_SIGNALS) process.on(s, forward);
  try {
    return await new Promise<number>((resolve, reject) => {
      child.once('error', (err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') reject(new CliError(`command not found: ${file}`, 127));
        else if (err.code === 'EACCES') reject(new CliError(`permission denied: ${file}`, 126));
        else reject(err);
      });
      child.once('exit', (code, signal) => {
        resolve(code ?? 128 + (signal ? (os.constants.signals[signal] ?? 0) : 0));
      });
    });
  } finally {
    process.off('SIGINT', ignore);
    for (const s of FORWARDED_SIGNALS) process.off(s, forward);
  }
}

export function register(program: Command, ctx: CommandContext): void {
  socketOption(
    program
      .command('exec')
      .description('run CMD with an access token in $NAME (default ACCESS_TOKEN)')
      .requiredOption('--provider <provider[:bucket]>', 'the account whose token to pass')
      .option('--env <name>', 'environment variable for the token', 'ACCESS_TOKEN')
      .argument('<cmd...>', 'the command and its arguments (after --)')
      .passThroughOptions(),
  ).action(async (command: string[], opts: { provider: string; env: string; socket?: string }) => {
    const account = parseAccountSpec(opts.provider);
    const options: ExecOptions = { ...account, envName: assertEnvName(opts.env), command };
    if (opts.socket !== undefined) options.socket = opts.socket;
    ctx.exitCode = await handleExec(options, ctx.io);
  });
}

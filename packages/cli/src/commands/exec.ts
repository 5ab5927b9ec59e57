/**
 * `credproxy exec [--provider P[:B]] [--api-key NAME[=ENV]]... -- CMD...`: run CMD with an access
 * token and/or API keys in its environment (never on its command line), and exit as it exits.
 * In a sandbox it authenticates with the client's capability token, which the child never sees.
 */
import { spawn } from 'node:child_process';
import os from 'node:os';
import type { Command } from 'commander';
import { assertEnvName, parseAccountSpec } from '../args.js';
import { type CommandContext, socketOption } from '../command-kit.js';
import type { OpPayload } from '../core-client.js';
import { CliError, UsageError } from '../exit-codes.js';
import type { CliIO } from '../output.js';
import { CAPABILITY_TOKEN_ENV, withProxy, withTokenFromFd } from '../proxy.js';
import { explainMissingAccount, explainMissingKey } from '../suggest.js';

export interface ApiKeyEnv {
  name: string;
  env: string;
}

export interface ExecOptions {
  provider?: string;
  bucket?: string;
  /** API keys for the child, each in its own variable. */
  apiKeys?: readonly ApiKeyEnv[];
  /** Read the capability token of a sandbox client from this descriptor. */
  tokenFd?: string;
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
  if (options.provider === undefined && (options.apiKeys ?? []).length === 0) {
    throw new UsageError('nothing to pass — give --provider P[:BUCKET] for a token and/or --api-key NAME[=ENV] for a key');
  }
  const env = withTokenFromFd(io.env, options.tokenFd);
  const childEnv: NodeJS.ProcessEnv = { ...io.env };
  // The capability token is the CLI's, not the command's: the child gets what it was asked for only.
  delete childEnv[CAPABILITY_TOKEN_ENV];
  await withProxy(options.socket, env, async (proxy) => {
    if (options.provider !== undefined) {
      const payload: OpPayload<'get_token'> = { provider: options.provider };
      if (options.bucket !== undefined) payload.bucket = options.bucket;
      const token = await proxy.call('get_token', payload).catch((err: unknown) => explainMissingAccount(err, proxy, payload.provider, payload.bucket));
      childEnv[options.envName] = token.access_token;
    }
    for (const k of options.apiKeys ?? []) {
      childEnv[k.env] = (await proxy.call('get_api_key', { name: k.name }).catch((err: unknown) => explainMissingKey(err, proxy, k.name))).key;
    }
  });

  const child = spawn(file, args, { stdio: 'inherit', env: childEnv });
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

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** `openai` → OPENAI_API_KEY; `anthropic=ANTHROPIC_API_KEY` → as given. */
export function parseApiKeyEnv(spec: string): ApiKeyEnv {
  const eq = spec.indexOf('=');
  const name = eq === -1 ? spec : spec.slice(0, eq);
  if (name === '') throw new UsageError(`invalid --api-key '${spec}' — use NAME or NAME=ENV, e.g. openai or openai=OPENAI_API_KEY`);
  const env = eq === -1 ? `${name.toUpperCase().replace(/[^A-Z0-9_]/g, '_')}_API_KEY` : spec.slice(eq + 1);
  return { name, env: assertEnvName(env) };
}

export function register(program: Command, ctx: CommandContext): void {
  socketOption(
    program
      .command('exec')
      .description('run CMD with an access token in $NAME (default ACCESS_TOKEN)')
      .option('--provider <provider[:bucket]>', 'the account whose token to pass')
      .option('--env <name>', 'environment variable for the token', 'ACCESS_TOKEN')
      .option('--api-key <name[=ENV]>', 'an API key to pass, in $ENV (default NAME_API_KEY, upper case) (repeatable)', collect, [])
      .option('--token-fd <n>', "in a sandbox: read the client's capability token from this descriptor (else $CREDPROXY_CAPABILITY_TOKEN)")
      .addHelpText('after', '\nExamples:\n  credproxy exec --provider github -- gh api user\n  credproxy exec --api-key openai -- python agent.py        # $OPENAI_API_KEY\n  credproxy exec --api-key anthropic=ANTHROPIC_API_KEY -- claude\n')
      .argument('<cmd...>', 'the command and its arguments (after --)')
      .passThroughOptions(),
  ).action(async (command: string[], opts: { provider?: string; env: string; apiKey: string[]; tokenFd?: string; socket?: string }) => {
    const account = opts.provider === undefined ? {} : parseAccountSpec(opts.provider);
    const options: ExecOptions = { ...account, envName: assertEnvName(opts.env), command, apiKeys: opts.apiKey.map(parseApiKeyEnv) };
    if (opts.socket !== undefined) options.socket = opts.socket;
    if (opts.tokenFd !== undefined) options.tokenFd = opts.tokenFd;
    ctx.exitCode = await handleExec(options, ctx.io);
  });
}

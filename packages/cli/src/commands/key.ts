/** `credproxy key set|list|remove`: API keys the proxy hands to clients in scope. */
import type { Command } from 'commander';
import { type CommandContext, type CommonOptions, dataOptions } from '../command-kit.js';
import { CliError, UsageError } from '../exit-codes.js';
import { type CliIO, printResult } from '../output.js';
import { withProxy, withTokenFromFd } from '../proxy.js';
import { didYouMean, explainMissingKey } from '../suggest.js';
import { readSecret } from '../secret-input.js';

export interface KeyNameOptions extends CommonOptions {
  name: string;
}

/** The value comes from stdin only: argv would leak it to `ps` and shell history. */
/** Key names become file names: the rule of SPEC §3, checked before asking for the secret. */
const KEY_NAME = /^[A-Za-z0-9._@-]{1,64}$/;

export async function handleKeySet(options: KeyNameOptions, io: CliIO): Promise<number> {
  if (!KEY_NAME.test(options.name) || options.name === '.' || options.name === '..') {
    throw new UsageError(`invalid key name '${options.name}' — use 1 to 64 letters, digits, '.', '_', '@' or '-' (e.g. openai); nothing was asked or stored`);
  }
  const key = await readSecret(io, `API key for ${options.name}: `);
  if (key.length === 0) {
    throw new UsageError(`no API key given for ${options.name} — type it at the prompt or pipe it in: \`credproxy key set ${options.name} < key-file\``);
  }
  const data = await withProxy(options.socket, io.env, (proxy) => proxy.call('set_api_key', { name: options.name, key }));
  printResult(io, options.json, data, () => `saved API key ${options.name}\n`);
  return 0;
}

export async function handleKeyList(options: CommonOptions, io: CliIO): Promise<number> {
  const data = await withProxy(options.socket, io.env, (proxy) => proxy.call('list_api_keys', {}));
  if (!options.json && data.keys.length === 0) {
    // stdout stays empty so `for k in $(credproxy key list)` sees no names.
    io.stderr.write('no API keys — add one with `credproxy key set NAME`\n');
    return 0;
  }
  printResult(io, options.json, data, (d) => d.keys.map((k) => `${k}\n`).join(''));
  return 0;
}

export async function handleKeyRemove(options: KeyNameOptions, io: CliIO): Promise<number> {
  const data = await withProxy(options.socket, io.env, async (proxy) => {
    const answer = await proxy.call('remove_api_key', { name: options.name });
    if (!answer.removed && !options.json) {
      const { keys } = await proxy.call('list_api_keys', {});
      throw new CliError(`no API key named ${options.name}${didYouMean(options.name, keys, 'API key name', 'credproxy key list')}`);
    }
    return answer;
  });
  printResult(io, options.json, data, () => `removed API key ${options.name}\n`);
  return data.removed ? 0 : 1;
}

export interface KeyGetOptions extends KeyNameOptions {
  tokenFd?: string;
}

/** Print a key (owner, or a sandbox client in scope with its capability token). */
export async function handleKeyGet(options: KeyGetOptions, io: CliIO): Promise<number> {
  const env = withTokenFromFd(io.env, options.tokenFd);
  const data = await withProxy(options.socket, env, (proxy) => proxy.call('get_api_key', { name: options.name }).catch((err: unknown) => explainMissingKey(err, proxy, options.name)));
  printResult(io, options.json, data, (d) => `${d.key}\n`);
  return 0;
}

export function register(program: Command, ctx: CommandContext): void {
  const key = program.command('key').description('API keys: set (value from stdin), list, get, remove');
  dataOptions(key.command('set').description('store an API key; the value is read from stdin').argument('<name>', 'key name')).action(
    async (name: string, opts: CommonOptions) => {
      ctx.exitCode = await handleKeySet({ name, ...opts }, ctx.io);
    },
  );
  dataOptions(key.command('list').description('list API key names (never the values)').option('--token-fd <n>', "in a sandbox: read the client's capability token from this descriptor")).action(
    async (opts: CommonOptions & { tokenFd?: string }) => {
      ctx.exitCode = await handleKeyList(opts, { ...ctx.io, env: withTokenFromFd(ctx.io.env, opts.tokenFd) });
    },
  );
  dataOptions(
    key
      .command('get')
      .description('print one API key (for a sandbox client: one in its scope)')
      .argument('<name>', 'key name')
      .option('--token-fd <n>', "in a sandbox: read the client's capability token from this descriptor (else $CREDPROXY_CAPABILITY_TOKEN)"),
  ).action(async (name: string, opts: CommonOptions & { tokenFd?: string }) => {
    ctx.exitCode = await handleKeyGet({ name, ...opts }, ctx.io);
  });
  dataOptions(key.command('remove').description('delete an API key').argument('<name>', 'key name')).action(
    async (name: string, opts: CommonOptions) => {
      ctx.exitCode = await handleKeyRemove({ name, ...opts }, ctx.io);
    },
  );
}

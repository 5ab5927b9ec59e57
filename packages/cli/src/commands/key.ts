/** `credproxy key set|list|remove`: API keys the proxy hands to clients in scope. */
import type { Command } from 'commander';
import { type CommandContext, type CommonOptions, dataOptions } from '../command-kit.js';
import { CliError, UsageError } from '../exit-codes.js';
import { type CliIO, printResult } from '../output.js';
import { withProxy } from '../proxy.js';
import { readSecret } from '../secret-input.js';

export interface KeyNameOptions extends CommonOptions {
  name: string;
}

/** The value comes from stdin only: argv would leak it to `ps` and shell history. */
export async function handleKeySet(options: KeyNameOptions, io: CliIO): Promise<number> {
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
  const data = await withProxy(options.socket, io.env, (proxy) => proxy.call('remove_api_key', { name: options.name }));
  if (!data.removed && !options.json) {
    throw new CliError(`no API key named ${options.name} — \`credproxy key list\` shows the names`);
  }
  printResult(io, options.json, data, () => `removed API key ${options.name}\n`);
  return data.removed ? 0 : 1;
}

export function register(program: Command, ctx: CommandContext): void {
  const key = program.command('key').description('API keys: set (value from stdin), list, remove');
  dataOptions(key.command('set').description('store an API key; the value is read from stdin').argument('<name>', 'key name')).action(
    async (name: string, opts: CommonOptions) => {
      ctx.exitCode = await handleKeySet({ name, ...opts }, ctx.io);
    },
  );
  dataOptions(key.command('list').description('list API key names (never the values)')).action(async (opts: CommonOptions) => {
    ctx.exitCode = await handleKeyList(opts, ctx.io);
  });
  dataOptions(key.command('remove').description('delete an API key').argument('<name>', 'key name')).action(
    async (name: string, opts: CommonOptions) => {
      ctx.exitCode = await handleKeyRemove({ name, ...opts }, ctx.io);
    },
  );
}

/** `credproxy ping`: is the proxy there, which version, which pid. */
import type { Command } from 'commander';
import { type CommandContext, type CommonOptions, dataOptions } from '../command-kit.js';
import { type CliIO, printResult } from '../output.js';
import { withProxy } from '../proxy.js';

export async function handlePing(options: CommonOptions, io: CliIO): Promise<number> {
  const data = await withProxy(options.socket, io.env, (proxy) => proxy.call('ping', {}));
  printResult(io, options.json, data, (d) => `credproxy ${d.version} (pid ${d.pid}) on ${d.socket}\n`);
  return 0;
}

export function register(program: Command, ctx: CommandContext): void {
  dataOptions(program.command('ping').description('check that the proxy answers: version, pid, socket')).action(
    async (opts: CommonOptions) => {
      ctx.exitCode = await handlePing(opts, ctx.io);
    },
  );
}

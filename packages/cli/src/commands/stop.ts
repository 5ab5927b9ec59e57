/** `credproxy stop`: ask the proxy to shut down and wait until it has. */
import { promises as fs } from 'node:fs';
import type { Command } from 'commander';
import { type CommandContext, type CommonOptions, dataOptions } from '../command-kit.js';
import { isRunning } from '../core-client.js';
import { CliError } from '../exit-codes.js';
import { type CliIO, printResult } from '../output.js';
import { pingSocket, withProxy } from '../proxy.js';

const STOP_TIMEOUT_MS = 10_000;


async function socketGone(socketPath: string): Promise<boolean> {
  try {
    await fs.lstat(socketPath);
  } catch {
    return true;
  }
  return (await pingSocket(socketPath, 500)) === undefined;
}

/**
 * Stopped means the socket no longer answers and the process is gone, so its lock is released
 * and `credproxy serve` can start again at once.
 */
export async function waitUntilStopped(socketPath: string, pid: number, timeoutMs = STOP_TIMEOUT_MS): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if ((await socketGone(socketPath)) && (pid === process.pid || !isRunning(pid))) return true;
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export async function handleStop(options: CommonOptions, io: CliIO): Promise<number> {
  const { socketPath, pid, data } = await withProxy(options.socket, io.env, async (proxy) => {
    const { pid } = await proxy.call('ping', {});
    return { socketPath: proxy.socketPath, pid, data: await proxy.call('shutdown', {}) };
  });
  if (!(await waitUntilStopped(socketPath, pid))) {
    throw new CliError(`credproxy (pid ${pid}) did not stop within ${STOP_TIMEOUT_MS / 1000} s — end it with \`kill ${pid}\``);
  }
  printResult(io, options.json, data, () => 'credproxy stopped\n');
  return 0;
}

export function register(program: Command, ctx: CommandContext): void {
  dataOptions(program.command('stop').description('stop the proxy')).action(async (opts: CommonOptions) => {
    ctx.exitCode = await handleStop(opts, ctx.io);
  });
}


/**
 * `credproxy stop`: ask the proxy to shut down and wait until it has. The pid it reports is
 * waited on, and named in advice, only when it is the process that listens on the socket here.
 */
import { promises as fs } from 'node:fs';
import type { Command } from 'commander';
import { type CommandContext, type CommonOptions, dataOptions } from '../command-kit.js';
import { isRunning } from '../core-client.js';
import { CliError } from '../exit-codes.js';
import { type CliIO, printResult } from '../output.js';
import { pingSocket, withProxy } from '../proxy.js';
import { isProxyProcessHere } from '../socket-owner.js';

const STOP_TIMEOUT_MS = 10_000;


/** The pid that answers ping on the socket, or undefined when nothing does. */
async function answeringPid(socketPath: string): Promise<number | undefined> {
  try {
    await fs.lstat(socketPath);
  } catch {
    return undefined;
  }
  return (await pingSocket(socketPath, 500))?.pid;
}

export type StopWait = { stopped: true } | { stopped: false; timedOut: true } | { stopped: false; replacedBy: number };

/**
 * Stopped means the socket no longer answers and, when `pid` is given, that process is gone, so
 * its lock is released and `credproxy serve` can start again at once. Without a pid (one that is
 * not a process here, see isProxyProcessHere) only the socket can be watched. A socket that
 * answers with another pid than `pid` was taken over by a new proxy (a supervisor restarted it).
 */
export async function waitUntilStopped(socketPath: string, pid: number | undefined, timeoutMs = STOP_TIMEOUT_MS, reportedPid = pid): Promise<StopWait> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const answering = await answeringPid(socketPath);
    if (answering !== undefined && reportedPid !== undefined && answering !== reportedPid) return { stopped: false, replacedBy: answering };
    if (answering === undefined && (pid === undefined || pid === process.pid || !isRunning(pid))) return { stopped: true };
    if (Date.now() > deadline) return { stopped: false, timedOut: true };
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export async function handleStop(options: CommonOptions, io: CliIO): Promise<number> {
  const { socketPath, pid, here, data } = await withProxy(options.socket, io.env, async (proxy) => {
    const { pid } = await proxy.call('ping', {});
    // Asked while the proxy still listens: afterwards its socket is gone from /proc.
    const here = await isProxyProcessHere(proxy.socketPath, pid);
    return { socketPath: proxy.socketPath, pid, here, data: await proxy.call('shutdown', {}) };
  });
  const wait = await waitUntilStopped(socketPath, here ? pid : undefined, STOP_TIMEOUT_MS, pid);
  if ('replacedBy' in wait) {
    throw new CliError(
      `credproxy (pid ${pid}) was asked to stop, but a proxy reporting pid ${wait.replacedBy} now answers on ${socketPath}: something restarted it (a systemd unit, a supervisor?) — stop it there, e.g. \`systemctl --user stop credproxy\``,
    );
  }
  if (!wait.stopped) {
    if (here) throw new CliError(`credproxy (pid ${pid}) did not stop within ${STOP_TIMEOUT_MS / 1000} s — end it with \`kill ${pid}\``);
    // Never advise killing a pid that is not the proxy here: in a container, pid 1 is its init.
    throw new CliError(
      `credproxy did not stop within ${STOP_TIMEOUT_MS / 1000} s and ${socketPath} still answers. It reports pid ${pid}, which is not the process listening on that socket here (it runs in another pid namespace, e.g. a container) — do not kill pid ${pid}; stop it where it runs (\`credproxy stop\` inside the container, or stop the container), or find the process that listens with \`ss -xlp | grep ${socketPath}\``,
    );
  }
  printResult(io, options.json, data, (d) =>
    d.pending_logins ? `credproxy stopped — ${d.pending_logins} pending login(s) were cancelled with it\n` : 'credproxy stopped\n',
  );
  return 0;
}

export function register(program: Command, ctx: CommandContext): void {
  dataOptions(program.command('stop').description('stop the proxy')).action(async (opts: CommonOptions) => {
    ctx.exitCode = await handleStop(opts, ctx.io);
  });
}


/**
 * `credproxy serve`: run the proxy in this process, in the foreground, logging to stderr (no
 * re-exec). `--detach` starts it in the background instead and returns once the socket answers.
 */
import { spawn } from 'node:child_process';
import { closeSync, constants as fsConstants, openSync, promises as fs, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RunningProxy } from '@credproxy/core/server';
import type { Command } from 'commander';
import { type CommandContext, socketOption } from '../command-kit.js';
import { CliError, ExitCode } from '../exit-codes.js';
import type { CliIO } from '../output.js';
import type { OpResult } from '../core-client.js';
import { pingSocket, socketPathFor } from '../socket.js';
import { readHidden } from '../secret-input.js';
import { collectRelayedGarbage } from '../stream-garbage.js';
import { capYoungGeneration } from '../young-generation.js';

export interface ServeOptions {
  socket?: string;
  detach?: boolean;
}

const BIN = fileURLToPath(new URL('../bin.js', import.meta.url));
const START_TIMEOUT_MS = 10_000;
/** proxy.log starts over when it grows past this. */
const LOG_MAX_BYTES = 1024 * 1024;

function alreadyRunning(pid: number | undefined, socketPath: string): CliError {
  return new CliError(
    `credproxy is already running (pid ${pid ?? 'unknown'}) on ${socketPath} — stop it with \`credproxy stop\`, or pick another --socket`,
    ExitCode.UNAVAILABLE,
  );
}

export async function handleServe(options: ServeOptions, io: CliIO): Promise<number> {
  if (options.detach) return serveDetached(options, io);
  // The server: only `serve` loads it (its own entry — the main one loads every module).
  const core = await import('@credproxy/core/server');
  const paths = core.resolvePaths({ env: io.env, socketPath: options.socket });
  let proxy: RunningProxy;
  try {
    // In a terminal, a store whose data key a passphrase wraps asks for it (SPEC §8).
    const askPassphrase = io.stdin.isTTY && io.stdin.setRawMode ? { askPassphrase: () => readHidden(io, 'credproxy store passphrase: ') } : {};
    proxy = await core.startProxy({ paths, logger: core.streamLogger(io.stderr), env: io.env, relayed: collectRelayedGarbage(), ...askPassphrase });
  } catch (err) {
    if (err instanceof core.AlreadyRunningError) throw alreadyRunning(err.pid, err.socketPath);
    throw err;
  }
  // This process is now a long-running proxy: keep V8's young generation small.
  const stopWatching = capYoungGeneration();
  let onSignal = (): void => undefined;
  const signalled = new Promise<void>((resolve) => (onSignal = () => resolve()));
  // `once`: a second Ctrl-C while stopping kills the process the default way.
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    // Stopped by a signal, or by the `shutdown` op (`credproxy stop`).
    await Promise.race([signalled, proxy.stopped]);
    await proxy.stop();
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    stopWatching();
  }
  return ExitCode.OK;
}

interface DetachedLog {
  fd: number;
  file: string;
  offset: number;
}

/**
 * The background proxy's stdout/stderr go to proxy.log beside the socket — only when that
 * directory is private; otherwise they are dropped rather than written where others could swap
 * the file.
 */
async function openDetachedLog(runDir: string): Promise<DetachedLog | undefined> {
  const st = await fs.stat(runDir);
  if ((st.mode & 0o077) !== 0 || (process.getuid && st.uid !== process.getuid())) return undefined;
  const file = path.join(runDir, 'proxy.log');
  const size = await fs.lstat(file).then((s) => s.size, () => 0);
  const flags =
    fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_APPEND | fsConstants.O_NOFOLLOW | (size > LOG_MAX_BYTES ? fsConstants.O_TRUNC : 0);
  const fd = openSync(file, flags, 0o600);
  return { fd, file, offset: size > LOG_MAX_BYTES ? 0 : size };
}

async function readFrom(file: string, offset: number): Promise<string> {
  const text = await fs.readFile(file).catch(() => Buffer.alloc(0));
  return text.subarray(offset).toString('utf8');
}

async function serveDetached(options: ServeOptions, io: CliIO): Promise<number> {
  const socketPath = socketPathFor(options.socket, io.env);
  const running = await pingSocket(socketPath);
  if (running) throw alreadyRunning(running.pid, socketPath);
  const started = await startInBackground(socketPath, io);
  io.stdout.write(`credproxy started (pid ${started.pid}) on ${started.socket}\n`);
  return ExitCode.OK;
}

/** Where a proxy started in the background logs: proxy.log beside its socket (see openDetachedLog). */
export function detachedLogFile(socketPath: string): string | undefined {
  const runDir = path.dirname(socketPath);
  try {
    const st = statSync(runDir);
    if ((st.mode & 0o077) !== 0 || (process.getuid && st.uid !== process.getuid())) return undefined;
  } catch {
    return undefined;
  }
  return path.join(runDir, 'proxy.log');
}

/**
 * Start `credproxy serve` detached on `socketPath` and resolve once it answers ping (also used by
 * `login` and `session start` when no proxy runs). Throws with the child's own error output when
 * it exits early.
 */
export async function startInBackground(socketPath: string, io: CliIO): Promise<OpResult<'ping'>> {
  const runDir = path.dirname(socketPath);
  await fs.mkdir(runDir, { recursive: true, mode: 0o700 });
  const log = await openDetachedLog(runDir);
  const out = log?.fd ?? 'ignore';
  const child = spawn(process.execPath, [BIN, 'serve', '--socket', socketPath], {
    detached: true,
    stdio: ['ignore', out, out],
    env: io.env,
  });
  if (log) closeSync(log.fd);
  const exited = new Promise<number>((resolve) => {
    child.once('exit', (code) => resolve(code ?? ExitCode.ERROR));
    child.once('error', () => resolve(ExitCode.ERROR));
  });

  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    const code = await Promise.race([exited, new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 100))]);
    if (code !== undefined) {
      const why = log ? (await readFrom(log.file, log.offset)).trim() : '';
      throw new CliError(
        why ? why.replace(/^credproxy: /, '') : `the background proxy exited with code ${code} — run \`credproxy serve\` in the foreground to see why`,
        code === 0 ? ExitCode.ERROR : code,
      );
    }
    const pong = await pingSocket(socketPath);
    // Another proxy answering would be a race with a second `serve`; the child then exits 5.
    if (pong && pong.pid === child.pid) {
      child.unref();
      return pong;
    }
    if (Date.now() > deadline) {
      child.kill('SIGTERM');
      const where = log ? `see ${log.file}` : 'run `credproxy serve` in the foreground to see why';
      throw new CliError(`credproxy did not answer on ${socketPath} within ${START_TIMEOUT_MS / 1000} s — ${where}`);
    }
  }
}

/**
 * The plain forms — `serve`, `--detach`, `--socket P` (or `--socket=P`) — parsed here, so a
 * long-running proxy never loads commander (~3 MB of its idle memory). Anything else (help, a
 * typo) returns undefined and commander parses it and reports errors.
 */
export function runFast(args: readonly string[], io: CliIO): Promise<number> | undefined {
  const options: ServeOptions = {};
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--detach' && !options.detach) options.detach = true;
    else if (arg.startsWith('--socket=') && options.socket === undefined && arg.length > '--socket='.length) options.socket = arg.slice('--socket='.length);
    else if (arg === '--socket' && options.socket === undefined) {
      const value = args[++i];
      if (value === undefined || value === '' || value.startsWith('-')) return undefined;
      options.socket = value;
    } else return undefined;
  }
  return handleServe(options, io);
}

export function register(program: Command, ctx: CommandContext): void {
  socketOption(
    program
      .command('serve')
      .description('run the proxy in this process (foreground, logs to stderr)')
      .option('--detach', 'start the proxy in the background and return once it answers'),
  ).action(async (opts: ServeOptions) => {
    ctx.exitCode = await handleServe(opts, ctx.io);
  });
}

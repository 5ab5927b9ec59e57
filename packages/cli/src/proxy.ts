/** Talking to the proxy from a command: where the socket is, connect, call, close. */
import { readFileSync } from 'node:fs';
import { OpError, UsageError } from './exit-codes.js';
import { ProxyClient, ProxyError, ProxyUnavailableError, type Op, type OpPayload, type OpResult } from './core-client.js';
import type { CliIO } from './output.js';
import { socketPathFor } from './socket.js';

export { pingSocket, socketPathFor } from './socket.js';

/** The variable a sandboxed CLI finds its capability token in (SPEC §4). */
export const CAPABILITY_TOKEN_ENV = 'CREDPROXY_CAPABILITY_TOKEN';

/**
 * The capability token a sandboxed CLI presents: `--token-fd N` (read once from that descriptor,
 * as llxprt-code hands it over on fd 3), else $CREDPROXY_CAPABILITY_TOKEN. Undefined: the owner.
 */
export function capabilityTokenFrom(env: NodeJS.ProcessEnv): string | undefined {
  const token = env[CAPABILITY_TOKEN_ENV]?.trim();
  if (token === undefined || token === '') return undefined;
  if (!/^[0-9a-f]{64}$/.test(token)) {
    throw new UsageError(`${CAPABILITY_TOKEN_ENV} is not a capability token (64 lowercase hex characters) — use the token \`credproxy client add\` printed`);
  }
  return token;
}

/** `env` with the token read from descriptor `fd` (`--token-fd`), for capabilityTokenFrom. */
export function withTokenFromFd(env: NodeJS.ProcessEnv, fd: string | undefined): NodeJS.ProcessEnv {
  if (fd === undefined) return env;
  if (!/^\d+$/.test(fd)) throw new UsageError(`--token-fd takes a file descriptor number, e.g. --token-fd 3, not '${fd}'`);
  let text: string;
  try {
    text = readFileSync(Number(fd), 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read a capability token from descriptor ${fd} (${(err as NodeJS.ErrnoException).code ?? 'error'}) — pass it as \`3< token-file\``);
  }
  return { ...env, [CAPABILITY_TOKEN_ENV]: text.trim() };
}

function connectOptions(socketPath: string, env: NodeJS.ProcessEnv): { socketPath: string; capabilityToken?: string } {
  const capabilityToken = capabilityTokenFrom(env);
  return capabilityToken === undefined ? { socketPath } : { socketPath, capabilityToken };
}

/** An owner connection whose errors remember the op that answered them. */
export interface ProxyConnection {
  readonly socketPath: string;
  readonly client: ProxyClient;
  call<O extends Op>(op: O, payload: OpPayload<O>, options?: { timeoutMs?: number }): Promise<OpResult<O>>;
}

export async function withProxy<T>(
  socketOption: string | undefined,
  env: NodeJS.ProcessEnv,
  fn: (proxy: ProxyConnection) => Promise<T>,
): Promise<T> {
  const socketPath = socketPathFor(socketOption, env);
  const client = await ProxyClient.connect(connectOptions(socketPath, env));
  const connection: ProxyConnection = {
    socketPath,
    client,
    call: (op, payload, options) =>
      client.call(op, payload, options).catch((err: unknown) => {
        throw err instanceof ProxyError ? new OpError(op, err) : err;
      }),
  };
  try {
    return await fn(connection);
  } finally {
    client.close();
  }
}

/** One op on a fresh owner connection, in one round trip (`credproxy token`). */
export async function requestOnce<O extends Op>(socketOption: string | undefined, env: NodeJS.ProcessEnv, op: O, payload: OpPayload<O>): Promise<OpResult<O>> {
  return ProxyClient.request(connectOptions(socketPathFor(socketOption, env), env), op, payload).catch((err: unknown) => {
    throw err instanceof ProxyError ? new OpError(op, err) : err;
  });
}

/**
 * Connect to the proxy, starting it in the background first when none answers (login and
 * session start: "start the proxy if needed"). Says so on stderr.
 */
export async function connectOrStart(socketOption: string | undefined, io: CliIO): Promise<ProxyConnection & { started: boolean }> {
  const socketPath = socketPathFor(socketOption, io.env);
  let client: ProxyClient;
  let started = false;
  try {
    client = await ProxyClient.connect(connectOptions(socketPath, io.env));
  } catch (err) {
    if (!(err instanceof ProxyUnavailableError)) throw err;
    const { startInBackground, detachedLogFile } = await import('./commands/serve.js');
    const pong = await startInBackground(socketPath, io);
    const log = detachedLogFile(socketPath);
    io.stderr.write(`credproxy was not running — started it (pid ${pong.pid}) on ${pong.socket}${log ? `; it logs to ${log}` : ''}\n`);
    client = await ProxyClient.connect(connectOptions(socketPath, io.env));
    started = true;
  }
  return {
    socketPath,
    started,
    client,
    call: (op, payload, options) =>
      client.call(op, payload, options).catch((err: unknown) => {
        throw err instanceof ProxyError ? new OpError(op, err) : err;
      }),
  };
}

/**
 * An op of a command that may have started the proxy itself: when the op fails because the
 * provider does not exist, a proxy started only for it is stopped again instead of being left
 * running in the background, and the error says "did you mean".
 */
export async function initiateOrUndo<T>(proxy: ProxyConnection & { started: boolean }, provider: string, bucket: string | undefined, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    const { explainMissingAccount } = await import('./suggest.js');
    const better = await explainMissingAccount(err, proxy, provider, bucket).catch((e: unknown) => e);
    if (proxy.started && err instanceof ProxyError && err.code === 'PROVIDER_NOT_CONFIGURED') {
      await proxy.client.call('shutdown', {}).catch(() => undefined);
    }
    throw better;
  }
}

/** Talking to the proxy from a command: where the socket is, connect, call, close. */
import { OpError } from './exit-codes.js';
import { ProxyClient, ProxyError, ProxyUnavailableError, type Op, type OpPayload, type OpResult } from './core-client.js';
import type { CliIO } from './output.js';
import { socketPathFor } from './socket.js';

export { pingSocket, socketPathFor } from './socket.js';

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
  const client = await ProxyClient.connect({ socketPath });
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
  return ProxyClient.request({ socketPath: socketPathFor(socketOption, env) }, op, payload).catch((err: unknown) => {
    throw err instanceof ProxyError ? new OpError(op, err) : err;
  });
}

/**
 * Connect to the proxy, starting it in the background first when none answers (login and
 * session start: "start the proxy if needed"). Says so on stderr.
 */
export async function connectOrStart(socketOption: string | undefined, io: CliIO): Promise<ProxyConnection> {
  const socketPath = socketPathFor(socketOption, io.env);
  let client: ProxyClient;
  try {
    client = await ProxyClient.connect({ socketPath });
  } catch (err) {
    if (!(err instanceof ProxyUnavailableError)) throw err;
    const { startInBackground } = await import('./commands/serve.js');
    const started = await startInBackground(socketPath, io);
    io.stderr.write(`credproxy was not running — started it (pid ${started.pid}) on ${started.socket}\n`);
    client = await ProxyClient.connect({ socketPath });
  }
  return {
    socketPath,
    client,
    call: (op, payload, options) =>
      client.call(op, payload, options).catch((err: unknown) => {
        throw err instanceof ProxyError ? new OpError(op, err) : err;
      }),
  };
}

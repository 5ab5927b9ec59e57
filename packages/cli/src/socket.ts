/**
 * Where the owner socket is, and whether a proxy answers on it. No import of the commands: both
 * `serve` (which starts proxies) and the commands that connect use it.
 */
import path from 'node:path';
import { defaultSocketPath, ProxyClient, type OpResult } from './core-client.js';

/** `--socket` if given, else the default of SPEC §1 (the same rule as core's resolvePaths). */
export function socketPathFor(socketOption: string | undefined, env: NodeJS.ProcessEnv): string {
  return socketOption ? path.resolve(socketOption) : defaultSocketPath({ env });
}

/** Whether a proxy answers `ping` on this socket; its ping data if so. */
export async function pingSocket(socketPath: string, timeoutMs = 1_000): Promise<OpResult<'ping'> | undefined> {
  let client: ProxyClient | undefined;
  try {
    client = await ProxyClient.connect({ socketPath, timeoutMs });
    return await client.call('ping', {});
  } catch {
    return undefined;
  } finally {
    client?.close();
  }
}

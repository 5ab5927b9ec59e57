/**
 * A proxy with a temp config and data dir, providers added through the CLI's own
 * `provider add` handler (as `credproxy provider add … --preset P` does), and an owner client.
 */
import path from 'node:path';
import { ProxyClient, resolvePaths, startProxy, streamLogger, type RunningProxy } from '@credproxy/core';
import { handleProviderAdd, type ProviderAddOptions } from '../../packages/cli/src/commands/provider.js';
import type { CliIO } from '../../packages/cli/src/output.js';
import { tempDir, waitUntil } from './temp.js';

export interface PresetProxy {
  dir: string;
  env: NodeJS.ProcessEnv;
  proxy: RunningProxy;
  owner: ProxyClient;
  log: string[];
  /** Every op answer (and error message) the owner client received, as JSON. */
  responses: string[];
  /** `credproxy provider add NAME …` through the CLI handler; returns stdout and stderr. */
  addProvider(o: Omit<ProviderAddOptions, 'json' | 'socket'>): Promise<{ out: string; err: string }>;
  close(): Promise<void>;
}

export function captureIO(env: NodeJS.ProcessEnv): CliIO & { out: () => string; err: () => string } {
  const out: string[] = [];
  const err: string[] = [];
  return {
    stdout: { write: (s: string) => out.push(s) },
    stderr: { write: (s: string) => err.push(s) },
    stdin: process.stdin,
    env,
    out: () => out.join(''),
    err: () => err.join(''),
  } as CliIO & { out: () => string; err: () => string };
}

export async function startPresetProxy(secrets: Record<string, string> = {}, options: { fetch?: typeof fetch } = {}): Promise<PresetProxy> {
  const dir = await tempDir('cp-preset-');
  const env: NodeJS.ProcessEnv = {
    CREDPROXY_CONFIG: path.join(dir, 'config.json'),
    CREDPROXY_DATA_DIR: path.join(dir, 'data'),
    CREDPROXY_NO_KEYRING: '1',
    ...secrets,
  };
  const log: string[] = [];
  const proxy = await startProxy({
    paths: resolvePaths({ env, socketPath: path.join(dir, 'run', 'proxy.sock') }),
    env,
    ...(options.fetch ? { fetch: options.fetch } : {}),
    logger: streamLogger({ write: (line: string) => log.push(line) }, 'debug'),
  });
  const owner = await ProxyClient.connect({ socketPath: proxy.socketPath });
  const responses: string[] = [];
  const call = owner.call.bind(owner);
  owner.call = (async (...args: Parameters<typeof call>) => {
    try {
      const r = await call(...args);
      responses.push(JSON.stringify(r));
      return r;
    } catch (err) {
      responses.push(String((err as Error).message));
      throw err;
    }
  }) as typeof owner.call;
  return {
    responses,
    dir,
    env,
    proxy,
    owner,
    log,
    async addProvider(o) {
      const io = captureIO(env);
      // The discovery check at add time is tested in e2e/no-silent-acceptance; here it would send
      // a preset's default issuer (accounts.google.com) to DNS: no test may reach the internet.
      await handleProviderAdd({ check: false, ...o }, io);
      return { out: io.out(), err: io.err() };
    },
    async close() {
      owner.close();
      await proxy.stop();
    },
  };
}

/** Poll a login until it leaves pending. */
export async function pollUntilDone(owner: ProxyClient, sessionId: string, timeoutMs = 15_000): Promise<Awaited<ReturnType<ProxyClient['call']>> & Record<string, unknown>> {
  let last: Record<string, unknown> = {};
  await waitUntil(async () => {
    last = (await owner.call('oauth_poll', { session_id: sessionId })) as unknown as Record<string, unknown>;
    return last.status !== 'pending';
  }, timeoutMs, 25);
  return last as never;
}

/** What a browser does with the redirect to the loopback callback. */
export async function followToCallback(location: string): Promise<{ status: number; text: string }> {
  const res = await fetch(location, { redirect: 'manual' });
  return { status: res.status, text: await res.text() };
}

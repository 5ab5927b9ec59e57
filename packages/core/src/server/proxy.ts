/**
 * Start and stop one proxy: check the socket directory, take the lock, clear a stale socket,
 * wire the services, listen, write the pid file. One proxy per socket.
 */
import { promises as fs } from 'node:fs';
import { ClientRegistry } from '../clients/registry.js';
import { ConfigSource } from '../config/config-file.js';
import { OAuthLogins } from '../flows/login-service.js';
import type { FetchLike } from '../flows/oauth-provider.js';
import { ProviderDirectory } from '../flows/providers.js';
import { RefreshCoordinator } from '../flows/refresh.js';
import { AccessRequests, describeAccess } from '../clients/access-requests.js';
import { type AuditEvent, AuditLog, auditSinkOf } from '../clients/audit-log.js';
import type { AccessRequestInfo } from '../protocol/ops.js';
import { desktopNotifier } from '../util/desktop-notify.js';
import { assertSocketPathFits, type CredproxyPaths } from '../paths.js';
import { MAX_CONNECTIONS, MAX_FRAME_BYTES } from '../protocol/limits.js';
import { AccountService } from '../store/accounts.js';
import { ApiKeyService } from '../store/api-keys.js';
import { openConfiguredStorage } from '../store/storage.js';
import { RenewalScheduler } from '../store/renewal.js';
import type { TokenStore } from '../store/token-store.js';
import { type Clock, systemClock } from '../util/clock.js';
import { ensureDataDir, ensurePrivateDir, readFileIfExists, writeFileAtomic } from '../util/fs-secure.js';
import { type Logger, silentLogger } from '../util/logger.js';
import { isRunning } from '../util/process.js';
import { lockDir } from '../util/dir-lock.js';
import { CREDPROXY_VERSION } from '../version.js';
import type { ProxyServices } from './context.js';
import { connectionCap, readOpenFilesLimit } from '../util/fd-limit.js';
import { CapabilityGate } from './handshake-gate.js';
import { ListenerHost, socketAnswers } from './listener-host.js';
import { createPeerCredentialReader, type PeerCredentialReader } from './peer-credentials.js';
import type { UpstreamPool, UpstreamPoolOptions } from '../routes/upstream.js';
import { RouteCatalog } from '../routes/route-catalog.js';
import { parseHttpAddress } from './http-address.js';
import type { RouteGateway } from './route-gateway.js';

export interface ProxyOptions {
  paths: CredproxyPaths;
  clock?: Clock;
  logger?: Logger;
  /** Largest frame accepted, at most 4 MiB. */
  maxFrameBytes?: number;
  maxConnections?: number;
  /** Authenticated connections one client identity may hold at once (default 64). */
  maxConnectionsPerClient?: number;
  /** A client connection with nothing in flight and no frame this long is closed (default 5 min; 0: never). */
  clientIdleTimeoutMs?: number;
  /** The soft open-files limit (default: read from /proc/self/limits); the cap fits under it. */
  openFilesLimit?: number;
  partialFrameTimeoutMs?: number;
  handshakeTimeoutMs?: number;
  readPeer?: PeerCredentialReader;
  tokenStore?: TokenStore;
  /** Asks for the store's passphrase (`serve` in a terminal); without it a passphrase comes only from CREDPROXY_PASSPHRASE_FILE. */
  askPassphrase?: () => Promise<string>;
  /** fetch used for every upstream request (tests inject faults here). */
  fetch?: FetchLike;
  /** Environment for client_secret_env lookups. */
  env?: NodeJS.ProcessEnv;
  onAudit?: (event: AuditEvent) => void;
  /** The upstream pool of routes (tests: timeouts, a throwaway CA, name resolution). */
  upstream?: UpstreamPoolOptions;
  /**
   * Told the size of every body chunk a route relays, either way: `credproxy serve` bounds the
   * garbage of a large stream with it (packages/cli/src/stream-garbage.ts).
   */
  relayed?: (bytes: number) => void;
}

/** A second proxy on the same socket: the CLI exits 5 with this message. */
export class AlreadyRunningError extends Error {
  constructor(readonly pid: number | undefined, readonly socketPath: string) {
    super(`credproxy is already running (pid ${pid ?? 'unknown'}) on ${socketPath}`);
    this.name = 'AlreadyRunningError';
  }
}

export interface RunningProxy {
  readonly socketPath: string;
  readonly pid: number;
  readonly services: ProxyServices;
  readonly listeners: ListenerHost;
  readonly refresher: RefreshCoordinator;
  readonly logins: OAuthLogins;
  /** Resolves once the proxy has fully stopped. */
  readonly stopped: Promise<void>;
  stop(): Promise<void>;
}


async function readPid(pidFile: string): Promise<number | undefined> {
  const text = await readFileIfExists(pidFile);
  const pid = text === undefined ? NaN : Number.parseInt(text.trim(), 10);
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

/**
 * Take the per-socket lock (util/dir-lock.ts). A lock left by a proxy that died (kill -9) is
 * taken over at once when its pid is gone, instead of waiting for the staleness timeout.
 */
async function acquireLock(paths: CredproxyPaths, logger: Logger): Promise<() => Promise<void>> {
  const options = {
    staleMs: 10_000,
    updateMs: 5_000,
    onCompromised: (err: Error) => logger.log('error', `proxy lock compromised: ${err.message}`),
  };
  for (let attempt = 0; ; attempt++) {
    try {
      return await lockDir(paths.pidFile, options);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ELOCKED') throw err;
      const pid = await readPid(paths.pidFile);
      const alive = pid !== undefined && isRunning(pid) && pid !== process.pid;
      if (alive || (await socketAnswers(paths.socketPath)) || attempt >= 1) {
        throw new AlreadyRunningError(pid, paths.socketPath);
      }
      logger.log('warn', 'taking over the lock of a proxy that is no longer running', { pid });
      await fs.rm(`${paths.pidFile}.lock`, { recursive: true, force: true });
    }
  }
}

/** The connection cap, lowered (with a warning naming the fix) to fit the open-files limit. */
function fittedConnectionCap(options: ProxyOptions, logger: Logger): number {
  const requested = options.maxConnections ?? MAX_CONNECTIONS;
  const limit = options.openFilesLimit ?? readOpenFilesLimit();
  const cap = connectionCap(requested, limit);
  if (cap < requested) {
    logger.log('warn', `the open-files limit (ulimit -n ${limit}) leaves room for ${cap} connections, not ${requested} — raise it, e.g. \`ulimit -n 4096\` before \`credproxy serve\`, or LimitNOFILE= in a systemd unit`);
  }
  return cap;
}

export async function startProxy(options: ProxyOptions): Promise<RunningProxy> {
  const { paths } = options;
  const clock = options.clock ?? systemClock;
  const logger = options.logger ?? silentLogger;
  assertSocketPathFits(paths.socketPath);
  await ensurePrivateDir(paths.runDir);
  const releaseLock = await acquireLock(paths, logger);
  const closeOnFailure: Array<() => unknown> = [];
  try {
    await writeFileAtomic(paths.pidFile, `${process.pid}\n`);
    await ensureDataDir(paths.dataDir);
    // Refuse a tokens/ or keys/ that others could write at start, not at the first read.
    await ensureDataDir(paths.tokensDir);
    await ensureDataDir(paths.keysDir);
    // The backend and its data key (SPEC §8); a plaintext data dir is encrypted here.
    const storage = await openConfiguredStorage({ paths, env: options.env ?? process.env, logger, ...(options.askPassphrase ? { askPassphrase: options.askPassphrase } : {}) });
    closeOnFailure.push(() => storage.close());
    const clients = new ClientRegistry(storage.clients, clock);
    await clients.load();
    // A fleet member's `client add`/`client remove` reaches this one through the store's feed.
    const clientFeed = storage.kind === 'redis' ? storage.clients.watch?.(() => void clients.load().catch(() => undefined)) : undefined;
    closeOnFailure.push(() => clientFeed?.close());
    const store = options.tokenStore ?? storage.tokens;
    const apiKeys = new ApiKeyService({ store: storage.keys, clock });
    const configSource = new ConfigSource(paths.configFile);
    const providers = new ProviderDirectory({
      config: configSource,
      clock,
      ...(options.fetch ? { fetch: options.fetch } : {}),
      ...(options.env ? { env: options.env } : {}),
    });
    // Fail at start, naming the file and field, rather than at the first login.
    await providers.config();
    const routes = new RouteCatalog(configSource, { watch: true });
    closeOnFailure.push(() => routes.close());
    await routes.all();
    const refresher = new RefreshCoordinator({ providers, clock, logger });
    const accounts = new AccountService({ store, clock, refresher, logger });
    // A fleet member's refresh, import or logout reaches this one: its copy in memory is dropped.
    const tokenFeed = storage.kind === 'redis' && store === storage.tokens ? storage.tokens.watch?.((key) => (key ? accounts.forget(key) : accounts.forgetAll())) : undefined;
    closeOnFailure.push(() => tokenFeed?.close());
    const logins = new OAuthLogins({ accounts, providers, clock, logger });
    const renewal = new RenewalScheduler({ accounts, clock, logger });
    const audit = new AuditLog({ file: paths.auditLog, clock });
    const auditSink = options.onAudit ? auditSinkOf(options.onAudit) : audit;
    // The HTTP side of routes (node:http, the forwarder, scrubbing, undici) is loaded when the
    // first HTTP listener opens: most proxies never open one, and it is a good part of an idle
    // proxy's memory. One pool for every route listener: connections to an upstream are shared.
    let upstream: UpstreamPool | undefined;
    let gateway: Promise<RouteGateway> | undefined;
    const routeGateway = (): Promise<RouteGateway> =>
      (gateway ??= Promise.all([import('./route-gateway.js'), import('../routes/upstream.js')]).then(([{ RouteGateway }, { UpstreamPool }]) => {
        upstream = new UpstreamPool(options.upstream);
        return new RouteGateway({
          clients,
          accounts,
          apiKeys,
          catalog: routes,
          upstream,
          audit: auditSink,
          clock,
          logger,
          // Approved access requests for a route (SPEC §9), read on every request; called only once running.
          temporaryGrant: (client, route) => access.accessFor(client).allowsRoute(route),
          relayed: options.relayed,
        });
      }));
    const readPeer = options.readPeer ?? createPeerCredentialReader(logger);
    const notifier = desktopNotifier(options.env ?? process.env);
    const access = new AccessRequests({
      clock,
      ...(notifier
        ? { notify: (r: AccessRequestInfo) => notifier('credproxy: access requested', `${r.client} asks for ${describeAccess(r)}${r.reason ? ` — "${r.reason}"` : ''}. Answer: credproxy access approve ${r.request_id}`) }
        : {}),
    });
    const lockdown = { locked: false };
    closeOnFailure.push(() => access.close(), () => logins.sessions.close(), () => renewal.close(), () => apiKeys.close(), () => audit.close(), () => host?.closeAll(), () => upstream?.close());

    let host: ListenerHost | undefined;
    let stopping: Promise<void> | undefined;
    let markStopped!: () => void;
    const stopped = new Promise<void>((resolve) => (markStopped = resolve));
    const clientSockets = new Map<string, string>();
    const clientHttp = new Map<string, string>();
    const listenerExpiry = new Map<string, NodeJS.Timeout>();

    /**
     * A client's own socket closes when the client expires (its connections close themselves at
     * that moment). setTimeout waits at most ~24.8 days, so a longer TTL is waited out in steps.
     */
    const closeListenerAtExpiry = (name: string): void => {
      clearTimeout(listenerExpiry.get(name));
      const record = clients.get(name);
      if (record?.expires_at === undefined) return;
      const wait = Math.min(Math.max(record.expires_at * 1000 - clock.now(), 0), 2 ** 31 - 1);
      const timer = setTimeout(() => {
        listenerExpiry.delete(name);
        // Removed, or removed and added again: that path has its own timer.
        if (clients.get(name)?.token_sha256 !== record.token_sha256) return;
        if (!clients.isExpired(record)) {
          closeListenerAtExpiry(name);
          return;
        }
        logger.log('info', `client ${name} has expired: closing its listeners`, { client: name });
        void services.listeners.closeClientListener(name).catch((err: unknown) => {
          logger.log('error', `could not close the socket of expired client ${name}: ${err instanceof Error ? err.message : String(err)}`);
        });
      }, wait);
      timer.unref();
      listenerExpiry.set(name, timer);
    };

    const stop = (): Promise<void> => {
      stopping ??= (async () => {
        for (const timer of listenerExpiry.values()) clearTimeout(timer);
        listenerExpiry.clear();
        logins.sessions.close();
        access.close();
        renewal.close();
        apiKeys.close();
        routes.close();
        await host?.closeAll();
        await upstream?.close();
        // A refreshed token the disk refused so far gets one last write.
        await accounts.close();
        clientFeed?.close();
        tokenFeed?.close();
        await storage.close().catch(() => undefined);
        await audit.close();
        await fs.rm(paths.pidFile, { force: true });
        await releaseLock().catch(() => undefined);
        logger.log('info', 'credproxy stopped', { socket: paths.socketPath });
        markStopped();
      })();
      return stopping;
    };

    const services: ProxyServices = {
      version: CREDPROXY_VERSION,
      pid: process.pid,
      socketPath: paths.socketPath,
      clock,
      logger,
      accounts,
      apiKeys,
      storage,
      clients,
      providers,
      routes,
      logins,
      access,
      lockdown,
      listeners: {
        async openClientListener(name, socketPath) {
          assertSocketPathFits(socketPath);
          await host!.listen(socketPath, { kind: 'client', clientName: name });
          clientSockets.set(name, socketPath);
          closeListenerAtExpiry(name);
        },
        async openClientHttpListener(name, address) {
          const parsed = parseHttpAddress(address);
          const [{ HttpListener }, routeHandlers] = await Promise.all([import('./http-listener.js'), routeGateway()]);
          const listener = await HttpListener.open({
            address: parsed,
            clientName: name,
            makeHandler: (l) => routeHandlers.handlerFor(name, l),
            readPeer,
            logger,
          });
          host!.adopt(listener);
          clientHttp.set(name, listener.address);
          closeListenerAtExpiry(name);
          return listener.address;
        },
        async closeClientListener(name) {
          clearTimeout(listenerExpiry.get(name));
          listenerExpiry.delete(name);
          host!.dropClient(name);
          const socketPath = clientSockets.get(name);
          if (socketPath !== undefined) {
            clientSockets.delete(name);
            await host!.close(socketPath);
          }
          const http = clientHttp.get(name);
          if (http !== undefined) {
            clientHttp.delete(name);
            await host!.close(http);
          }
        },
      },
      // Let the answer reach the client before the listeners close.
      requestShutdown: () => void setTimeout(() => void stop(), 10),
    };

    host = new ListenerHost({
      services,
      gate: new CapabilityGate({
        clients,
        clock,
        logger,
        access,
        ...(typeof process.getuid === 'function' ? { ownerUid: process.getuid() } : {}),
      }),
      readPeer,
      maxFrameBytes: Math.min(options.maxFrameBytes ?? MAX_FRAME_BYTES, MAX_FRAME_BYTES),
      maxConnections: fittedConnectionCap(options, logger),
      ...(options.maxConnectionsPerClient !== undefined ? { maxConnectionsPerClient: options.maxConnectionsPerClient } : {}),
      ...(options.clientIdleTimeoutMs !== undefined ? { clientIdleTimeoutMs: options.clientIdleTimeoutMs } : {}),
      ...(options.partialFrameTimeoutMs !== undefined ? { partialFrameTimeoutMs: options.partialFrameTimeoutMs } : {}),
      ...(options.handshakeTimeoutMs !== undefined ? { handshakeTimeoutMs: options.handshakeTimeoutMs } : {}),
      audit: auditSink,
    });
    await host.listen(paths.socketPath, { kind: 'owner' });
    for (const client of clients.list()) {
      if (clients.isExpired(client)) continue;
      if (client.socket !== undefined) {
        try {
          await services.listeners.openClientListener(client.name, client.socket);
        } catch (err) {
          logger.log('error', `could not re-open the socket of client ${client.name}: ${err instanceof Error ? err.message : String(err)}`);
        }
      }
      if (client.http !== undefined) {
        try {
          await services.listeners.openClientHttpListener(client.name, client.http);
        } catch (err) {
          logger.log('error', `could not re-open the HTTP listener of client ${client.name}: ${err instanceof Error ? err.message : String(err)}`);
        }
      }
    }
    logger.log('info', 'credproxy listening', { socket: paths.socketPath, pid: process.pid, version: CREDPROXY_VERSION });
    return { socketPath: paths.socketPath, pid: process.pid, services, listeners: host, refresher, logins, stopped, stop };
  } catch (err) {
    for (const close of closeOnFailure) await Promise.resolve(close()).catch(() => undefined);
    await fs.rm(paths.pidFile, { force: true }).catch(() => undefined);
    await releaseLock().catch(() => undefined);
    throw err;
  }
}

/**
 * What a handler sees: the request's context and the proxy's services. Each service's type lives
 * with its owner (flows, store, clients); this file only gathers them.
 */
import type { AccessRequests } from '../clients/access-requests.js';
import type { ClientRegistry } from '../clients/registry.js';
import type { Identity } from '../clients/policy.js';
import type { AccountService } from '../store/accounts.js';
import type { ApiKeyService } from '../store/api-keys.js';
import type { Storage } from '../store/storage.js';
import type { Clock } from '../util/clock.js';
import type { Logger } from '../util/logger.js';
import type { LoginService } from '../flows/login-service.js';
import type { ProviderCatalog } from '../flows/providers.js';
import type { RouteCatalogView } from '../routes/route-catalog.js';

/** What the peer told the kernel at connect(): absent where the platform cannot say. */
export interface PeerInfo {
  pid?: number;
  uid?: number;
  gid?: number;
}

/** Extra listeners the server hosts for clients (`client add --listen`, `--http`). */
export interface ListenerControl {
  openClientListener(clientName: string, socketPath: string): Promise<void>;
  /** The client's HTTP listener for routes; resolves to the bound address (port 0: the port picked). */
  openClientHttpListener(clientName: string, address: string): Promise<string>;
  /** Closes every listener of the client, of every kind. */
  closeClientListener(clientName: string): Promise<void>;
}

export interface ProxyServices {
  version: string;
  pid: number;
  socketPath: string;
  clock: Clock;
  logger: Logger;
  accounts: AccountService;
  apiKeys: ApiKeyService;
  /** The backend, its data key, `store status` and `store rekey`. */
  storage: Pick<Storage, 'status' | 'rekey'>;
  clients: ClientRegistry;
  providers: ProviderCatalog;
  /** Routes from the config file (SPEC §6). */
  routes: RouteCatalogView;
  logins: LoginService;
  listeners: ListenerControl;
  /** Access on request (SPEC §9). */
  access: AccessRequests;
  /** Set by `panic`: only the owner's ping, status and unlock are answered. */
  lockdown: { locked: boolean };
  /** Ask the proxy to stop after the current answer is written. */
  requestShutdown(): void;
}

export interface RequestContext {
  identity: Identity;
  services: ProxyServices;
  peer: PeerInfo;
  /** The socket path of the listener the request came in on. */
  listenerPath: string;
  /** Aborted when the request is cancelled or its connection closes. Created on first use. */
  readonly signal: AbortSignal;
}


import type { ClientRecord, ClientRegistry } from '../clients/registry.js';
import type { Identity } from '../clients/policy.js';
import type { AccountService } from '../store/accounts.js';
import type { ApiKeyService } from '../store/api-keys.js';
import type { Clock } from '../util/clock.js';
import type { Logger } from '../util/logger.js';
import type { OAuthCancelResult, OAuthExchangeResult, OAuthInitiatePayload, OAuthInitiateResult, OAuthPollResult, LogoutResult } from '../protocol/ops.js';
import type { AccountKey } from '../store/token-store.js';

/** What the peer told the kernel at connect(): absent where the platform cannot say. */
export interface PeerInfo {
  pid?: number;
  uid?: number;
  gid?: number;
}

/** Logins (SPEC §3); provided by the flows module. */
export interface LoginService {
  initiate(identity: Identity, key: AccountKey, payload: OAuthInitiatePayload): Promise<OAuthInitiateResult>;
  exchange(identity: Identity, sessionId: string, code: string): Promise<OAuthExchangeResult>;
  poll(identity: Identity, sessionId: string): OAuthPollResult;
  cancel(identity: Identity, sessionId: string): OAuthCancelResult;
  logout(key: AccountKey, revoke: boolean): Promise<LogoutResult>;
  /** End the pending logins of a client registration (it was removed); how many ended. */
  endSessionsOf(client: ClientRecord): number;
}

/** Providers known to the proxy (from the config file). */
export interface ProviderCatalog {
  names(): Promise<string[]>;
}

/** Extra listeners the server hosts for clients (`client add --listen`). */
export interface ListenerControl {
  openClientListener(clientName: string, socketPath: string): Promise<void>;
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
  clients: ClientRegistry;
  providers: ProviderCatalog;
  logins: LoginService;
  listeners: ListenerControl;
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


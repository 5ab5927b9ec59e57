/**
 * Every op of the wire protocol with its payload and result (SPEC §2). Server and client both
 * use this table; the server's handler table is typed over `Op`, so a missing handler does not
 * compile.
 */
import type { ErrorCode } from './errors.js';

export type Empty = Record<string, never>;

// ---- handshake, ping, cancel, shutdown -------------------------------------------------------

export interface HandshakePayload {
  minVersion: number;
  maxVersion: number;
  /** 64 lowercase hex characters; absent on the owner socket. */
  capabilityToken?: string;
}
export interface HandshakeResult {
  version: number;
  server: string;
  /** The client's registered name, or "owner". */
  client: string;
  ops: string[];
}

export interface PingResult {
  version: string;
  pid: number;
  socket: string;
}

export interface CancelPayload {
  targetId: string;
}
export interface CancelResult {
  cancelled: boolean;
}

export interface ShutdownResult {
  stopping: true;
  /** Logins still pending, cancelled by the stop. */
  pending_logins?: number;
}

// ---- tokens ----------------------------------------------------------------------------------

export interface AccountRef {
  provider: string;
  bucket?: string;
}

export interface GetTokenPayload extends AccountRef {
  min_valid_seconds?: number;
}

/** A token as served: never a refresh token or any other secret. Expiry in unix seconds. */
export interface TokenView {
  access_token: string;
  token_type: 'Bearer';
  expiry: number;
  scope?: string;
  id_token?: string;
  [providerField: string]: unknown;
}

/** A token as imported with save_token. */
export interface ImportedToken {
  access_token: string;
  refresh_token?: string;
  expiry?: number;
  token_type?: string;
  scope?: string;
  id_token?: string;
  [providerField: string]: unknown;
}

export interface SaveTokenPayload extends AccountRef {
  token: ImportedToken;
}
export interface SaveTokenResult {
  saved: true;
}
export interface RemoveTokenResult {
  removed: boolean;
}

export interface LogoutPayload extends AccountRef {
  revoke?: boolean;
}
export interface LogoutResult {
  revoked: boolean;
  /** Why revocation did not happen, when it did not. */
  reason?: string;
}

export type AccountState = 'valid' | 'expiring' | 'expired' | 'needs_login';

export interface AccountStatus {
  provider: string;
  bucket: string;
  state: AccountState;
  expiry?: number;
  /** Who is logged in (SPEC §7): an email, a login name or a subject id. */
  account?: string;
  scope?: string;
}
export interface StatusResult {
  accounts: AccountStatus[];
  /** The owner's view only: access requests waiting for an answer (SPEC §9). */
  access_requests?: AccessRequestInfo[];
  /** The owner's view only: true after `credproxy panic`, until `credproxy unlock`. */
  locked?: boolean;
  /** The owner's view only: logins waiting for the user (`credproxy session list`). */
  pending_logins?: PendingLogin[];
}

export interface ListProvidersResult {
  providers: string[];
}
export interface ListBucketsPayload {
  provider: string;
}
export interface ListBucketsResult {
  buckets: string[];
}
export interface BucketStatsPayload extends AccountRef {}
export interface BucketStatsResult {
  bucket: string;
  requestCount: number;
  percentage: number;
  lastUsed?: number;
}

// ---- API keys --------------------------------------------------------------------------------

export interface KeyNamePayload {
  name: string;
}
export interface GetApiKeyResult {
  key: string;
}
export interface ListApiKeysResult {
  keys: string[];
}
export interface HasApiKeyResult {
  exists: boolean;
}
export interface SetApiKeyPayload {
  name: string;
  key: string;
}
export interface SetApiKeyResult {
  saved: true;
}
export interface RemoveApiKeyResult {
  removed: boolean;
}

// ---- OAuth sessions --------------------------------------------------------------------------

export type FlowType = 'pkce_redirect' | 'device_code' | 'browser_redirect';
export const FLOW_TYPES: readonly FlowType[] = ['pkce_redirect', 'device_code', 'browser_redirect'];

export interface OAuthInitiatePayload extends AccountRef {
  flow?: FlowType;
  redirect_uri?: string;
}
export interface OAuthInitiateResult {
  session_id: string;
  flow_type: FlowType;
  auth_url: string;
  pollIntervalMs: number;
  expires_at: number;
  user_code?: string;
  verification_uri?: string;
  verification_uri_complete?: string;
}
export interface OAuthExchangePayload {
  session_id: string;
  code: string;
}
export interface OAuthExchangeResult {
  status: 'complete';
  provider: string;
  bucket: string;
  expiry: number;
  account?: string;
}
export interface SessionIdPayload {
  session_id: string;
}
export type SessionStatus = 'pending' | 'complete' | 'denied' | 'expired' | 'failed' | 'cancelled';
export interface OAuthPollResult {
  status: SessionStatus;
  /** Seconds, as RFC 8628. */
  interval?: number;
  error?: string;
  provider?: string;
  bucket?: string;
  expiry?: number;
  account?: string;
}
/** A login waiting for the user (session list, and the owner's status). */
export interface PendingLogin {
  session_id: string;
  provider: string;
  bucket: string;
  flow_type: FlowType;
  /** `owner`, or the client that started it. */
  started_by: string;
  expires_at: number;
  user_code?: string;
  verification_uri?: string;
}
export interface SessionListResult {
  sessions: PendingLogin[];
}
export interface OAuthCancelResult {
  status: 'cancelled';
}

// ---- clients ---------------------------------------------------------------------------------

export interface ClientScope {
  provider: string;
  bucket?: string;
}
export interface ClientAddPayload {
  name: string;
  scopes: ClientScope[];
  api_keys?: string[];
  allow_login?: boolean;
  allow_refresh?: boolean;
  ttl_seconds?: number;
  socket?: string;
  /** Routes (SPEC §6) the client may call through its HTTP listener. */
  routes?: string[];
  /** The client's HTTP listener: a Unix socket path, or `127.0.0.1:PORT` (port 0: any free one). */
  http?: string;
}
export interface ClientAddResult {
  name: string;
  capability_token: string;
  socket?: string;
  /** The HTTP listener's bound address (with port 0, the port picked). */
  http?: string;
  expires_at?: number;
}
export interface ClientInfo {
  name: string;
  scopes: ClientScope[];
  api_keys: string[];
  allow_login: boolean;
  allow_refresh: boolean;
  socket?: string;
  /** Granted routes (SPEC §6), when the client has any. */
  routes?: string[];
  /** The HTTP listener's address. */
  http?: string;
  expires_at?: number;
}
export interface ClientListResult {
  clients: ClientInfo[];
}
export interface ClientRemovePayload {
  name: string;
}
export interface ClientRemoveResult {
  removed: true;
}

// ---- owner control (SPEC §9) -----------------------------------------------------------------

export interface RequestAccessPayload {
  provider?: string;
  bucket?: string;
  api_key?: string;
  route?: string;
  reason?: string;
  ttl_seconds?: number;
}
export type AccessStatus = 'pending' | 'approved' | 'denied' | 'expired';
export interface RequestAccessResult {
  request_id: string;
  status: 'pending';
  expires_at: number;
}
export interface AccessRequestIdPayload {
  request_id: string;
}
export interface AccessStatusResult {
  status: AccessStatus;
  /** While pending: when the request lapses; once approved: when the grant ends. */
  expires_at?: number;
}
export interface AccessRequestInfo {
  request_id: string;
  client: string;
  status: AccessStatus | 'revoked';
  provider?: string;
  bucket?: string;
  api_key?: string;
  route?: string;
  reason?: string;
  ttl_seconds: number;
  requested_at: number;
  expires_at: number;
}
export interface AccessListResult {
  requests: AccessRequestInfo[];
}
export interface AccessApprovePayload extends AccessRequestIdPayload {
  ttl_seconds?: number;
  bucket?: string;
}
export interface PanicAccountResult {
  provider: string;
  bucket: string;
  revoked: boolean;
  reason?: string;
}
export interface PanicResult {
  accounts: PanicAccountResult[];
  clients_removed: string[];
  logins_cancelled: number;
  locked: true;
}
export interface UnlockResult {
  locked: false;
}

// ---- storage (SPEC §8) ------------------------------------------------------------------------

export interface StoreStatusResult {
  backend: 'file' | 'redis';
  key_source: 'key_file' | 'passphrase' | 'keyring' | 'auto_key_file' | 'none';
  encrypted: boolean;
  /** The data dir, or the Redis URL without its password and the key prefix. */
  location: string;
  /** The key file's path, the keyring entry, or "terminal prompt" (never key bytes). */
  key_location?: string;
  /** Which data key seals new writes (an id, not the key). */
  data_key_id?: string;
  /** False while Redis is unreachable. */
  connected: boolean;
  /** Records stored (absent when the store cannot be read now). */
  records?: { tokens: number; api_keys: number; clients: number };
  warnings: string[];
}
export interface StoreRekeyResult {
  /** Records sealed again with the new data key. */
  rekeyed: { tokens: number; api_keys: number; clients: number };
  key_source: StoreStatusResult['key_source'];
  data_key_id: string;
}

// ---- the table -------------------------------------------------------------------------------

export interface OpMap {
  handshake: { payload: HandshakePayload; result: HandshakeResult };
  ping: { payload: Empty; result: PingResult };
  cancel: { payload: CancelPayload; result: CancelResult };
  shutdown: { payload: Empty; result: ShutdownResult };
  get_token: { payload: GetTokenPayload; result: TokenView };
  refresh_token: { payload: AccountRef; result: TokenView };
  save_token: { payload: SaveTokenPayload; result: SaveTokenResult };
  remove_token: { payload: AccountRef; result: RemoveTokenResult };
  logout: { payload: LogoutPayload; result: LogoutResult };
  status: { payload: Empty; result: StatusResult };
  list_providers: { payload: Empty; result: ListProvidersResult };
  list_buckets: { payload: ListBucketsPayload; result: ListBucketsResult };
  get_bucket_stats: { payload: BucketStatsPayload; result: BucketStatsResult };
  get_api_key: { payload: KeyNamePayload; result: GetApiKeyResult };
  list_api_keys: { payload: Empty; result: ListApiKeysResult };
  has_api_key: { payload: KeyNamePayload; result: HasApiKeyResult };
  set_api_key: { payload: SetApiKeyPayload; result: SetApiKeyResult };
  remove_api_key: { payload: KeyNamePayload; result: RemoveApiKeyResult };
  oauth_initiate: { payload: OAuthInitiatePayload; result: OAuthInitiateResult };
  oauth_exchange: { payload: OAuthExchangePayload; result: OAuthExchangeResult };
  oauth_poll: { payload: SessionIdPayload; result: OAuthPollResult };
  oauth_cancel: { payload: SessionIdPayload; result: OAuthCancelResult };
  client_add: { payload: ClientAddPayload; result: ClientAddResult };
  client_list: { payload: Empty; result: ClientListResult };
  client_remove: { payload: ClientRemovePayload; result: ClientRemoveResult };
  store_status: { payload: Empty; result: StoreStatusResult };
  store_rekey: { payload: Empty; result: StoreRekeyResult };
  request_access: { payload: RequestAccessPayload; result: RequestAccessResult };
  access_status: { payload: AccessRequestIdPayload; result: AccessStatusResult };
  access_list: { payload: Empty; result: AccessListResult };
  access_approve: { payload: AccessApprovePayload; result: AccessRequestInfo };
  access_deny: { payload: AccessRequestIdPayload; result: AccessRequestInfo };
  access_revoke: { payload: AccessRequestIdPayload; result: AccessRequestInfo };
  session_list: { payload: Empty; result: SessionListResult };
  panic: { payload: Empty; result: PanicResult };
  unlock: { payload: Empty; result: UnlockResult };
}

export type Op = keyof OpMap;
export type OpPayload<O extends Op> = OpMap[O]['payload'];
export type OpResult<O extends Op> = OpMap[O]['result'];

// ---- frames ----------------------------------------------------------------------------------

export interface RequestFrame {
  v: number;
  id: string;
  op: string;
  payload: Record<string, unknown>;
}

export interface SuccessFrame<T = unknown> {
  v: 2;
  id: string | null;
  ok: true;
  data: T;
}

export interface WireErrorFrame {
  v: 2;
  id: string | null;
  ok: false;
  code: ErrorCode | string;
  error: string;
  retryAfter?: number;
}

export type ResponseFrame<T = unknown> = SuccessFrame<T> | WireErrorFrame;

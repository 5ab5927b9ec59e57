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
}
export interface ClientAddResult {
  name: string;
  capability_token: string;
  socket?: string;
  expires_at?: number;
}
export interface ClientInfo {
  name: string;
  scopes: ClientScope[];
  api_keys: string[];
  allow_login: boolean;
  allow_refresh: boolean;
  socket?: string;
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

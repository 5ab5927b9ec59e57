/**
 * Logins through the proxy (the oauth_* ops) and logout. The proxy, not the terminal and not the
 * sandbox, runs each flow; verifiers, device codes and flow objects stay here.
 */
import * as oauth from 'oauth4webapi';
import { identityName, type Identity } from '../clients/policy.js';
import type { ClientRecord } from '../clients/registry.js';
import { ErrorCode, ProxyError } from '../protocol/errors.js';
import type { LogoutResult, PendingLogin, OAuthCancelResult, OAuthExchangeResult, OAuthInitiatePayload, OAuthInitiateResult, OAuthPollResult } from '../protocol/ops.js';
import { readOpenFilesLimit } from '../util/fd-limit.js';
import { defaultLoginLimits, newSessionId, OWNER_SESSION_KEY, type LoginLimits, type Session, SessionStore, type StoredInitiate } from '../sessions/session-store.js';
import { notLoggedIn, type AccountService } from '../store/accounts.js';
import type { AccountKey, StoredToken } from '../store/token-store.js';
import type { Clock } from '../util/clock.js';
import type { Logger } from '../util/logger.js';
import { CallbackRouter } from './callback-router.js';
import type { FlowOutcome, LoginFlow } from './flow.js';
import { accountIdentity } from './identity.js';
import { describeUpstream } from './oauth-provider.js';
import type { ProviderDirectory } from './providers.js';
import { FlowRegistry } from './registry.js';

/** Logins (SPEC §3) as the server's handlers use them. */
export interface LoginService {
  initiate(identity: Identity, key: AccountKey, payload: OAuthInitiatePayload): Promise<OAuthInitiateResult>;
  exchange(identity: Identity, sessionId: string, code: string): Promise<OAuthExchangeResult>;
  poll(identity: Identity, sessionId: string): OAuthPollResult;
  cancel(identity: Identity, sessionId: string): OAuthCancelResult;
  logout(key: AccountKey, revoke: boolean): Promise<LogoutResult>;
  /** End the pending logins of a client registration (it was removed); how many ended. */
  endSessionsOf(client: ClientRecord): number;
  /** End every pending login (`credproxy panic`); how many ended. */
  cancelAll(reason: string): number;
  /** Pending logins: all of them for the owner, its own for a client (`session list`). */
  pending(identity: Identity): PendingLogin[];
}

export interface OAuthLoginsOptions {
  accounts: AccountService;
  providers: ProviderDirectory;
  clock: Clock;
  logger: Logger;
  registry?: FlowRegistry;
  sessions?: SessionStore<LoginFlow>;
  /** Caps on pending logins; defaults from defaultLoginLimits() and the open-files limit. */
  limits?: Partial<LoginLimits>;
}

/**
 * The key a login session is bound to. A client's is its registration, not its name: the
 * capability token's hash is random per `client add`, so a client removed and added again under
 * the same name is a different identity and cannot see or end the old one's logins.
 */
export function sessionKeyOf(identity: Identity): string {
  return identity.kind === 'owner' ? OWNER_SESSION_KEY : clientSessionKey(identity.client);
}

function clientSessionKey(client: ClientRecord): string {
  return `client:${client.token_sha256}`;
}

export class OAuthLogins implements LoginService {
  readonly #o: OAuthLoginsOptions;
  readonly #registry: FlowRegistry;
  readonly sessions: SessionStore<LoginFlow>;
  /** Loopback listeners: one per fixed port, shared by the logins on it. */
  readonly callbacks: CallbackRouter;

  constructor(options: OAuthLoginsOptions) {
    this.#o = options;
    this.callbacks = new CallbackRouter({ logger: options.logger });
    this.#registry = options.registry ?? new FlowRegistry();
    this.sessions = options.sessions ?? new SessionStore<LoginFlow>({
      clock: options.clock,
      maxSessions: 10_000,
      limits: { ...defaultLoginLimits(readOpenFilesLimit()), ...options.limits },
    });
  }

  /**
   * End every pending login of a client registration (the client was removed): its listeners
   * close and its device polling stops. Returns how many ended.
   */
  endSessionsOf(client: ClientRecord): number {
    const ended = this.sessions.endSessionsOf(clientSessionKey(client));
    if (ended > 0) this.#o.logger.log('info', 'logins of a removed client ended', { client: client.name, count: ended });
    return ended;
  }

  cancelAll(reason: string): number {
    return this.sessions.cancelAll(reason);
  }

  pending(identity: Identity): PendingLogin[] {
    const key = sessionKeyOf(identity);
    return this.sessions
      .pending()
      .filter((s) => identity.kind === 'owner' || s.owner === key)
      .map((s) => {
        const out: PendingLogin = {
          session_id: s.id,
          provider: s.provider,
          bucket: s.bucket,
          flow_type: s.flowType,
          started_by: s.startedBy ?? 'owner',
          expires_at: Math.floor(s.expiresAt / 1000),
        };
        if (s.initiated.user_code !== undefined) out.user_code = s.initiated.user_code;
        if (s.initiated.verification_uri !== undefined) out.verification_uri = s.initiated.verification_uri;
        return out;
      });
  }

  async initiate(identity: Identity, key: AccountKey, payload: OAuthInitiatePayload): Promise<OAuthInitiateResult> {
    const config = await this.#o.providers.config();
    const provider = await this.#o.providers.get(key.provider);
    const flowType = payload.flow ?? provider.config.flow;
    const owner = sessionKeyOf(identity);
    // A client never chooses where the code is sent: with its own redirect_uri it could open a
    // listener per request or point the code at a page it reads.
    let redirectUri = payload.redirect_uri;
    if (redirectUri !== undefined && redirectUri === provider.config.redirect_uri) redirectUri = undefined;
    if (redirectUri !== undefined && identity.kind === 'client') {
      throw new ProxyError(
        ErrorCode.FORBIDDEN,
        `a client may not choose the redirect_uri — omit it and ${key.provider}'s configured one is used (the owner sets it with \`credproxy provider add ${key.provider} --redirect-uri URI\`)`,
      );
    }
    // Every initiate is a login of its own, even for an account with one pending: two terminals
    // (or two sandboxes of one client) that joined one session would end each other's login
    // with a Ctrl-C (oauth_cancel) — SPEC §7. The caps on pending logins bound what this costs,
    // and logins on a fixed port share its listener (callback-router.ts).
    this.sessions.maxSessions = config.max_sessions;
    this.sessions.assertCapacity();
    const now = this.#o.clock.now();
    let expiresAt = now + config.session_ttl_seconds * 1000;
    // A client's login ends when the client does: an expired registration keeps nothing running.
    if (identity.kind === 'client' && identity.client.expires_at !== undefined) {
      expiresAt = Math.min(expiresAt, identity.client.expires_at * 1000);
    }
    const factory = this.#registry.factoryFor(key.provider, flowType, payload.flow !== undefined);
    const flow = factory(provider, { deadline: expiresAt, logger: this.#o.logger, callbacks: this.callbacks, ...(redirectUri !== undefined ? { redirectUri } : {}) });
    // The place is taken before the flow opens a listener or starts polling, and given back if it does not start.
    const reservation = this.sessions.reserve(owner, flow.flowType);
    let started;
    try {
      started = await flow.start();
    } catch (err) {
      this.sessions.release(reservation);
      flow.dispose();
      if (err instanceof ProxyError) throw err;
      throw new ProxyError(ErrorCode.FLOW_INITIATION_FAILED, `${key.provider}: the login could not start: ${describeUpstream(err, provider.secrets())}`);
    }
    if (started.expires_in !== undefined) expiresAt = Math.min(expiresAt, now + started.expires_in * 1000);
    const initiated: OAuthInitiateResult = {
      session_id: newSessionId(),
      flow_type: flow.flowType,
      auth_url: started.auth_url,
      pollIntervalMs: started.pollIntervalMs,
      expires_at: Math.floor(expiresAt / 1000),
    };
    if (started.user_code !== undefined) initiated.user_code = started.user_code;
    if (started.verification_uri !== undefined) initiated.verification_uri = started.verification_uri;
    if (started.verification_uri_complete !== undefined) initiated.verification_uri_complete = started.verification_uri_complete;
    // A flow that can rebuild its URL (for a login that joins) lets the session drop the copy:
    // it is most of what a pending login costs in memory.
    let kept: StoredInitiate = initiated;
    if (flow.authorizationUrl) {
      const { auth_url: _dropped, ...rest } = initiated;
      kept = rest;
    }
    const session: Session<LoginFlow> = {
      id: initiated.session_id,
      owner,
      startedBy: identityName(identity),
      provider: key.provider,
      bucket: key.bucket,
      flowType: flow.flowType,
      flow,
      initiated: kept,
      expiresAt,
      status: 'pending',
      exchanging: false,
    };
    try {
      this.sessions.add(session, reservation);
    } catch (err) {
      this.sessions.release(reservation);
      flow.dispose();
      throw err;
    }
    this.#o.logger.log('info', 'login started', { provider: key.provider, bucket: key.bucket, flow: flow.flowType, client: identityName(identity) });
    if (flow.outcome) void flow.outcome.then((o) => this.#onOutcome(session, o));
    return initiated;
  }

  async #onOutcome(session: Session<LoginFlow>, outcome: FlowOutcome): Promise<void> {
    if (session.status !== 'pending') return;
    if (outcome.status === 'complete') {
      session.exchanging = true;
      try {
        await this.#save(session, outcome.token);
      } catch (err) {
        this.#o.logger.log('error', `saving the token of a finished login failed: ${err instanceof Error ? err.message : String(err)}`);
        this.sessions.finish(session, 'failed', ErrorCode.INTERNAL_ERROR, 'the token could not be saved — see the proxy log');
      }
      return;
    }
    this.sessions.finish(session, outcome.status, outcome.code, outcome.error);
    this.#o.logger.log('info', 'login ended', { provider: session.provider, bucket: session.bucket, status: outcome.status });
  }

  async #save(session: Session<LoginFlow>, token: StoredToken): Promise<void> {
    const key = { provider: session.provider, bucket: session.bucket };
    const accounts = this.#o.accounts;
    const account = await this.#identify(session.provider, token);
    await accounts.withLock(key, () => accounts.save({ ...key, token, updated_at: this.#o.clock.now(), ...(account !== undefined ? { account } : {}) }));
    if (account !== undefined) session.account = account;
    if (token.expiry !== undefined) session.expiry = token.expiry;
    else session.expiry = Math.floor(this.#o.clock.now() / 1000) + 3600;
    this.sessions.finish(session, 'complete');
    this.#o.logger.log('info', 'login complete', { provider: session.provider, bucket: session.bucket });
  }

  /** Who logged in; a provider that will not say costs the login nothing (logged, not fatal). */
  async #identify(providerName: string, token: StoredToken): Promise<string | undefined> {
    try {
      const provider = await this.#o.providers.get(providerName);
      return await accountIdentity(provider, token);
    } catch (err) {
      this.#o.logger.log('warn', 'the account name could not be found', { provider: providerName, error: describeUpstream(err, [token.access_token, token.refresh_token]) });
      return undefined;
    }
  }

  async exchange(identity: Identity, sessionId: string, code: string): Promise<OAuthExchangeResult> {
    const session = this.sessions.get(sessionId, sessionKeyOf(identity));
    if (session.status === 'expired') throw new ProxyError(ErrorCode.SESSION_EXPIRED, 'this login session expired — start a new login');
    if (session.status !== 'pending' || session.exchanging) {
      throw new ProxyError(ErrorCode.SESSION_ALREADY_USED, 'this login session has already been used — start a new login');
    }
    if (!session.flow.exchange) {
      throw new ProxyError(ErrorCode.INVALID_REQUEST, `a ${session.flowType} login finishes on its own — poll it with oauth_poll instead of pasting a code`);
    }
    session.exchanging = true;
    let token: StoredToken;
    try {
      token = await session.flow.exchange(code);
    } catch (err) {
      const e = err instanceof ProxyError ? err : new ProxyError(ErrorCode.EXCHANGE_FAILED, 'the code could not be exchanged');
      if (e.code === ErrorCode.STATE_MISMATCH || e.code === ErrorCode.INVALID_REQUEST) {
        // Not this login's code: the session stays open for the right one.
        session.exchanging = false;
      } else {
        this.sessions.finish(session, e.code === ErrorCode.ACCESS_DENIED ? 'denied' : 'failed', e.code, e.message);
      }
      throw e;
    }
    await this.#save(session, token);
    const done: OAuthExchangeResult = { status: 'complete', provider: session.provider, bucket: session.bucket, expiry: session.expiry! };
    if (session.account !== undefined) done.account = session.account;
    return done;
  }

  poll(identity: Identity, sessionId: string): OAuthPollResult {
    const s = this.sessions.get(sessionId, sessionKeyOf(identity));
    const result: OAuthPollResult = { status: s.status };
    if (s.status === 'pending' && s.flow.interval !== undefined) result.interval = s.flow.interval;
    if (s.error !== undefined && s.status !== 'complete') result.error = s.error;
    if (s.status === 'complete') {
      result.provider = s.provider;
      result.bucket = s.bucket;
      if (s.expiry !== undefined) result.expiry = s.expiry;
      if (s.account !== undefined) result.account = s.account;
    }
    return result;
  }

  cancel(identity: Identity, sessionId: string): OAuthCancelResult {
    const s = this.sessions.get(sessionId, sessionKeyOf(identity));
    if (s.status === 'complete') {
      throw new ProxyError(ErrorCode.SESSION_ALREADY_USED, 'this login already completed — use `credproxy logout` to forget the account');
    }
    this.sessions.finish(s, 'cancelled', ErrorCode.CANCELLED, 'the login was cancelled');
    return { status: 'cancelled' };
  }

  /** Revoke at the provider (RFC 7009) when it can, then delete the account. */
  async logout(key: AccountKey, revoke: boolean): Promise<LogoutResult> {
    const accounts = this.#o.accounts;
    return accounts.withLock(key, async () => {
      accounts.forget(key);
      const record = await accounts.load(key);
      if (!record) throw notLoggedIn(key.provider, key.bucket);
      let result: LogoutResult;
      if (!revoke) {
        result = { revoked: false, reason: 'revocation skipped (--no-revoke)' };
      } else {
        result = await this.#revoke(key.provider, record.token);
      }
      await accounts.remove(key);
      this.#o.logger.log('info', 'logged out', { provider: key.provider, bucket: key.bucket, revoked: result.revoked });
      return result;
    });
  }

  async #revoke(providerName: string, token: StoredToken): Promise<LogoutResult> {
    const provider = await this.#o.providers.find(providerName);
    if (!provider) return { revoked: false, reason: `no provider named ${providerName} is configured, so there is nowhere to revoke` };
    if (provider.quirks.revoke) return provider.quirks.revoke(provider, token);
    let as: oauth.AuthorizationServer;
    try {
      as = await provider.metadata();
    } catch (err) {
      return { revoked: false, reason: `the provider could not be reached (${describeUpstream(err)})` };
    }
    if (!as.revocation_endpoint) return { revoked: false, reason: `${providerName} has no revocation endpoint` };
    // The refresh token first: it is the long-lived one and decides the answer. The access
    // token after it, best effort (it dies by itself at expiry).
    const revokeOne = async (value: string, hint: string): Promise<void> => {
      const response = await oauth.revocationRequest(as, provider.client, provider.clientAuth(), value, {
        ...provider.http(),
        additionalParameters: { token_type_hint: hint },
      });
      await oauth.processRevocationResponse(response);
    };
    const [first, firstHint] = token.refresh_token ? [token.refresh_token, 'refresh_token'] : [token.access_token, 'access_token'];
    const secrets = [token.refresh_token, token.access_token, ...provider.secrets()];
    try {
      await revokeOne(first, firstHint);
    } catch (err) {
      return { revoked: false, reason: `the provider refused or failed the revocation (${describeUpstream(err, secrets)}); the local copy was deleted anyway` };
    }
    if (token.refresh_token) {
      await revokeOne(token.access_token, 'access_token').catch((err: unknown) =>
        this.#o.logger.log('warn', 'access token revocation failed after the refresh token was revoked', { provider: providerName, error: describeUpstream(err, secrets) }),
      );
    }
    return { revoked: true };
  }
}

/**
 * Login sessions (SPEC §3): 128-bit random ids, a TTL, swept by a timer, bound to the identity
 * that started them, single use, capped in number. A finished session is kept a while as a
 * tombstone so a late poll learns how it ended.
 */
import { randomBytes } from 'node:crypto';
import type { LoginFlow } from '../flows/flow.js';
import { ErrorCode, ProxyError } from '../protocol/errors.js';
import type { FlowType, OAuthInitiateResult, SessionStatus } from '../protocol/ops.js';
import type { Clock } from '../util/clock.js';

export interface Session {
  readonly id: string;
  /** "owner" or "client:<name>": only this identity may see or use the session. */
  readonly owner: string;
  readonly provider: string;
  readonly bucket: string;
  readonly flowType: FlowType;
  readonly flow: LoginFlow;
  /** What oauth_initiate answered; without auth_url when the flow can rebuild it. */
  readonly initiated: StoredInitiate;
  /** Unix ms. */
  readonly expiresAt: number;
  status: SessionStatus;
  /** An exchange is under way: a second one is refused. */
  exchanging: boolean;
  error?: string;
  errorCode?: ErrorCode;
  /** Token expiry (unix s) once complete. */
  expiry?: number;
  finishedAt?: number;
}

export type StoredInitiate = Omit<OAuthInitiateResult, 'auth_url'> & { auth_url?: string };

export interface SessionStoreOptions {
  clock: Clock;
  maxSessions: number;
  sweepIntervalMs?: number;
  /** How long a finished session stays readable. */
  retentionMs?: number;
}

export function newSessionId(): string {
  return randomBytes(16).toString('hex');
}

export class SessionStore {
  readonly #clock: Clock;
  #maxSessions: number;
  readonly #retentionMs: number;
  readonly #sessions = new Map<string, Session>();
  readonly #timer: NodeJS.Timeout;
  #pending = 0;

  constructor(options: SessionStoreOptions) {
    this.#clock = options.clock;
    this.#maxSessions = options.maxSessions;
    this.#retentionMs = options.retentionMs ?? 10 * 60_000;
    this.#timer = setInterval(() => this.sweep(), options.sweepIntervalMs ?? 1_000);
    this.#timer.unref();
  }

  set maxSessions(n: number) {
    this.#maxSessions = n;
  }

  get pendingCount(): number {
    return this.#pending;
  }

  /** Refuse a new session when the cap is reached (checked before any upstream work). */
  assertCapacity(): void {
    if (this.#pending >= this.#maxSessions) {
      throw new ProxyError(ErrorCode.RESOURCE_EXHAUSTED, `${this.#maxSessions} logins are already pending — finish or cancel some (\`credproxy session cancel ID\`)`);
    }
  }

  add(session: Session): void {
    this.assertCapacity();
    this.#sessions.set(session.id, session);
    this.#pending += 1;
  }

  /** A pending session of this identity for this account, to join instead of starting another. */
  findPending(owner: string, provider: string, bucket: string, flowType: FlowType): Session | undefined {
    const now = this.#clock.now();
    for (const s of this.#sessions.values()) {
      if (s.owner === owner && s.provider === provider && s.bucket === bucket && s.flowType === flowType && s.status === 'pending' && !s.exchanging && s.expiresAt > now) {
        return s;
      }
    }
    return undefined;
  }

  /** The session if it exists and belongs to `owner`; another identity's session does not exist for you. */
  get(id: string, owner: string): Session {
    const s = this.#sessions.get(id);
    if (!s || s.owner !== owner) {
      throw new ProxyError(ErrorCode.SESSION_NOT_FOUND, 'no such login session — it may have been swept after it ended; start a new login');
    }
    if (s.status === 'pending' && s.expiresAt <= this.#clock.now()) this.finish(s, 'expired', ErrorCode.SESSION_EXPIRED, 'the login was not completed in time');
    return s;
  }

  finish(s: Session, status: Exclude<SessionStatus, 'pending'>, code?: ErrorCode, error?: string): void {
    if (s.status !== 'pending') return;
    s.status = status;
    s.exchanging = false;
    s.finishedAt = this.#clock.now();
    if (code !== undefined) s.errorCode = code;
    if (error !== undefined) s.error = error;
    this.#pending -= 1;
    s.flow.dispose();
  }

  sweep(): void {
    const now = this.#clock.now();
    for (const [id, s] of this.#sessions) {
      if (s.status === 'pending' && s.expiresAt <= now && !s.exchanging) {
        this.finish(s, 'expired', ErrorCode.SESSION_EXPIRED, 'the login was not completed in time');
      } else if (s.status !== 'pending' && s.finishedAt !== undefined && now - s.finishedAt > this.#retentionMs) {
        this.#sessions.delete(id);
      }
    }
  }

  close(): void {
    clearInterval(this.#timer);
    for (const s of this.#sessions.values()) this.finish(s, 'cancelled', ErrorCode.CANCELLED, 'the proxy stopped');
  }
}

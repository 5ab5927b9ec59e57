/**
 * Login sessions (SPEC §3): 128-bit random ids, a TTL, swept by a timer, bound to the identity
 * that started them, single use, capped in number. A finished session is kept a while as a
 * tombstone so a late poll learns how it ended.
 *
 * Caps (issue 9): a pending loopback login holds a listening socket and a device login polls the
 * provider in the background, so besides the global cap each client registration may hold a few
 * pending logins, the owner a few dozen that hold a listener or a poller, and all pending
 * logins together a bounded number of listeners (descriptors stay for the token store) and
 * pollers. Places are reserved before a flow starts, so racing requests cannot overshoot.
 */
import { randomBytes } from 'node:crypto';
import { ErrorCode, ProxyError } from '../protocol/errors.js';
import { MAX_CONNECTIONS } from '../protocol/limits.js';
import type { FlowType, OAuthInitiateResult, SessionStatus } from '../protocol/ops.js';
import { connectionCap, DESCRIPTORS_RESERVED } from '../util/fd-limit.js';
import type { Clock } from '../util/clock.js';

/** The session key of the owner; a client's is `client:<id of its registration>`. */
export const OWNER_SESSION_KEY = 'owner';

export interface LoginLimits {
  /** Pending logins of one client registration, of any flow. */
  perClient: number;
  /** Pending logins of the owner that hold a loopback listener or a device poller. */
  perOwnerHolding: number;
  /** Loopback listeners of all pending logins together. */
  loopbackListeners: number;
  /** Background device-code pollers of all pending logins together. */
  devicePollers: number;
}

export const MAX_PENDING_LOGINS_PER_CLIENT = 4;
export const MAX_HOLDING_LOGINS_OF_OWNER = 64;
export const MAX_LOOPBACK_LISTENERS = 256;
export const MAX_DEVICE_POLLERS = 256;
/** However low the open-files limit, a few loopback logins can still start. */
const MIN_LOOPBACK_LISTENERS = 16;

/**
 * Loopback listeners that fit beside a full connection table and the reserved descriptors: half
 * of what is left, between 16 and MAX_LOOPBACK_LISTENERS (the cap where the limit is unknown).
 */
export function loopbackListenerBudget(openFilesLimit: number | undefined): number {
  if (openFilesLimit === undefined) return MAX_LOOPBACK_LISTENERS;
  const spare = openFilesLimit - DESCRIPTORS_RESERVED - connectionCap(MAX_CONNECTIONS, openFilesLimit);
  return Math.min(MAX_LOOPBACK_LISTENERS, Math.max(MIN_LOOPBACK_LISTENERS, Math.floor(spare / 2)));
}

export function defaultLoginLimits(openFilesLimit: number | undefined): LoginLimits {
  return {
    perClient: MAX_PENDING_LOGINS_PER_CLIENT,
    perOwnerHolding: MAX_HOLDING_LOGINS_OF_OWNER,
    loopbackListeners: loopbackListenerBudget(openFilesLimit),
    devicePollers: MAX_DEVICE_POLLERS,
  };
}

/** What a pending login of each flow holds while it waits. */
const HOLDS: Record<FlowType, 'listener' | 'poller' | undefined> = {
  pkce_redirect: 'listener',
  device_code: 'poller',
  browser_redirect: undefined,
};

/** A place taken for a login that is starting; becomes a session with add(), or is released. */
export interface SessionReservation {
  readonly owner: string;
  readonly flowType: FlowType;
}

class Reservation implements SessionReservation {
  state: 'held' | 'added' | 'released' | 'revoked' = 'held';
  constructor(
    readonly owner: string,
    readonly flowType: FlowType,
  ) {}
}

/**
 * What the session store needs of a login's flow object: a way to stop it. The flows module's
 * LoginFlow is one; sessions never import flows (core reads in one direction).
 */
export interface SessionFlow {
  dispose(): void;
}

export interface Session<F extends SessionFlow = SessionFlow> {
  readonly id: string;
  /** OWNER_SESSION_KEY or `client:<registration id>`: only this identity may see or use the session. */
  readonly owner: string;
  /** Who started it, as people read it: `owner` or the client's name (session list, status). */
  readonly startedBy?: string;
  readonly provider: string;
  readonly bucket: string;
  readonly flowType: FlowType;
  readonly flow: F;
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
  /** Who logged in (SPEC §7), once complete, when the provider says. */
  account?: string;
  finishedAt?: number;
}

export type StoredInitiate = Omit<OAuthInitiateResult, 'auth_url'> & { auth_url?: string };

export interface SessionStoreOptions {
  clock: Clock;
  maxSessions: number;
  /** Defaults: defaultLoginLimits(undefined). */
  limits?: Partial<LoginLimits>;
  sweepIntervalMs?: number;
  /** How long a finished session stays readable. */
  retentionMs?: number;
}

export function newSessionId(): string {
  return randomBytes(16).toString('hex');
}

export class SessionStore<F extends SessionFlow = SessionFlow> {
  readonly #clock: Clock;
  #maxSessions: number;
  #limits: LoginLimits;
  readonly #retentionMs: number;
  readonly #sessions = new Map<string, Session<F>>();
  readonly #timer: NodeJS.Timeout;
  /** Pending sessions plus held reservations. */
  #pending = 0;
  readonly #perOwner = new Map<string, { all: number; holding: number }>();
  readonly #held = { listener: 0, poller: 0 };
  readonly #reservations = new Set<Reservation>();

  constructor(options: SessionStoreOptions) {
    this.#clock = options.clock;
    this.#maxSessions = options.maxSessions;
    this.#limits = { ...defaultLoginLimits(undefined), ...options.limits };
    this.#retentionMs = options.retentionMs ?? 10 * 60_000;
    this.#timer = setInterval(() => this.sweep(), options.sweepIntervalMs ?? 1_000);
    this.#timer.unref();
  }

  set maxSessions(n: number) {
    this.#maxSessions = n;
  }

  get limits(): Readonly<LoginLimits> {
    return { ...this.#limits };
  }

  setLimits(limits: Partial<LoginLimits>): void {
    this.#limits = { ...this.#limits, ...limits };
  }

  get pendingCount(): number {
    return this.#pending;
  }

  /** Pending logins (and places reserved) of one identity. */
  pendingOf(owner: string): number {
    return this.#perOwner.get(owner)?.all ?? 0;
  }

  /** Refuse a new session when the global cap is reached (checked before any upstream work). */
  assertCapacity(): void {
    if (this.#pending >= this.#maxSessions) {
      throw new ProxyError(ErrorCode.RESOURCE_EXHAUSTED, `${this.#maxSessions} logins are already pending — finish or cancel some (\`credproxy session cancel ID\`)`);
    }
  }

  /**
   * Take a place for a login of `owner` with `flowType`, or refuse with RESOURCE_EXHAUSTED. Taken
   * synchronously before the flow starts (and opens its listener), so concurrent initiates
   * cannot all pass the check; give it back with release() if the flow does not start.
   */
  reserve(owner: string, flowType: FlowType): SessionReservation {
    this.assertCapacity();
    const holds = HOLDS[flowType];
    const mine = this.#perOwner.get(owner) ?? { all: 0, holding: 0 };
    const limits = this.#limits;
    if (owner !== OWNER_SESSION_KEY && mine.all >= limits.perClient) {
      throw new ProxyError(ErrorCode.RESOURCE_EXHAUSTED, `this client already has ${limits.perClient} logins pending — finish or cancel one (oauth_cancel) before starting another`);
    }
    if (owner === OWNER_SESSION_KEY && holds !== undefined && mine.holding >= limits.perOwnerHolding) {
      throw new ProxyError(ErrorCode.RESOURCE_EXHAUSTED, `${limits.perOwnerHolding} loopback or device logins are already pending — finish or cancel some (\`credproxy session cancel ID\`)`);
    }
    if (holds === 'listener' && this.#held.listener >= limits.loopbackListeners) {
      throw new ProxyError(ErrorCode.RESOURCE_EXHAUSTED, `${limits.loopbackListeners} pending logins already hold a loopback listener — finish or cancel some (\`credproxy session cancel ID\`), or use the device_code or browser_redirect flow`);
    }
    if (holds === 'poller' && this.#held.poller >= limits.devicePollers) {
      throw new ProxyError(ErrorCode.RESOURCE_EXHAUSTED, `${limits.devicePollers} device logins are already polling — finish or cancel some (\`credproxy session cancel ID\`)`);
    }
    const reservation = new Reservation(owner, flowType);
    this.#count(owner, flowType, 1);
    this.#reservations.add(reservation);
    return reservation;
  }

  /** Give back a place whose login did not start. Idempotent. */
  release(reservation: SessionReservation): void {
    const r = reservation as Reservation;
    if (r.state !== 'held') return;
    r.state = 'released';
    this.#reservations.delete(r);
    this.#count(r.owner, r.flowType, -1);
  }

  #count(owner: string, flowType: FlowType, delta: 1 | -1): void {
    const holds = HOLDS[flowType];
    this.#pending += delta;
    const mine = this.#perOwner.get(owner) ?? { all: 0, holding: 0 };
    mine.all += delta;
    if (holds !== undefined) {
      mine.holding += delta;
      this.#held[holds] += delta;
    }
    if (mine.all <= 0) this.#perOwner.delete(owner);
    else this.#perOwner.set(owner, mine);
  }

  /**
   * Add a started session in the place reserved for it (reserving one now when none is given).
   * Refused with CANCELLED when the identity's logins were ended meanwhile (endSessionsOf).
   */
  add(session: Session<F>, reservation?: SessionReservation): void {
    const r = (reservation ?? this.reserve(session.owner, session.flowType)) as Reservation;
    if (r.owner !== session.owner || r.flowType !== session.flowType) throw new Error('the reservation is for another owner or flow');
    if (r.state === 'revoked') {
      throw new ProxyError(ErrorCode.CANCELLED, 'the client that started this login was removed — the login was cancelled');
    }
    if (r.state !== 'held') throw new Error('the reservation was already used or released');
    r.state = 'added';
    this.#reservations.delete(r);
    this.#sessions.set(session.id, session);
  }

  /**
   * End every pending login of `owner` (a removed client): listeners close, pollers stop, places
   * being reserved are revoked, and the sessions are forgotten. Returns how many ended.
   */
  endSessionsOf(owner: string, reason = 'the client that started this login was removed'): number {
    let ended = 0;
    for (const r of this.#reservations) {
      if (r.owner !== owner) continue;
      r.state = 'revoked';
      this.#reservations.delete(r);
      this.#count(r.owner, r.flowType, -1);
    }
    for (const [id, s] of this.#sessions) {
      if (s.owner !== owner) continue;
      if (s.status === 'pending') {
        this.finish(s, 'cancelled', ErrorCode.CANCELLED, reason);
        ended += 1;
      }
      this.#sessions.delete(id);
    }
    return ended;
  }

  /** Every pending login that has not expired, oldest first. */
  pending(): Session<F>[] {
    const now = this.#clock.now();
    return [...this.#sessions.values()].filter((s) => s.status === 'pending' && s.expiresAt > now);
  }

  /** End every pending login, whoever started it (`credproxy panic`). Returns how many ended. */
  cancelAll(reason: string): number {
    const owners = new Set<string>();
    for (const r of this.#reservations) owners.add(r.owner);
    for (const s of this.#sessions.values()) if (s.status === 'pending') owners.add(s.owner);
    let ended = 0;
    for (const owner of owners) ended += this.endSessionsOf(owner, reason);
    return ended;
  }

  /** The session if it exists and belongs to `owner`; another identity's session does not exist for you. */
  get(id: string, owner: string): Session<F> {
    const s = this.#sessions.get(id);
    if (!s || s.owner !== owner) {
      throw new ProxyError(ErrorCode.SESSION_NOT_FOUND, 'no such login session — it may have been swept after it ended; start a new login');
    }
    if (s.status === 'pending' && s.expiresAt <= this.#clock.now()) this.finish(s, 'expired', ErrorCode.SESSION_EXPIRED, 'the login was not completed in time');
    return s;
  }

  finish(s: Session<F>, status: Exclude<SessionStatus, 'pending'>, code?: ErrorCode, error?: string): void {
    if (s.status !== 'pending') return;
    s.status = status;
    s.exchanging = false;
    s.finishedAt = this.#clock.now();
    if (code !== undefined) s.errorCode = code;
    if (error !== undefined) s.error = error;
    this.#count(s.owner, s.flowType, -1);
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

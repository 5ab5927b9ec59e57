/**
 * Who is on the other end of a handshake. The owner socket needs no token (it lives in the
 * owner's 0700 directory) but refuses peers whose uid is neither the owner's nor root. A
 * presented capability token must match a registered, unexpired client; wrong guesses are rate
 * limited per peer.
 */
import type { AccessRequests } from '../clients/access-requests.js';
import { OWNER, type Identity } from '../clients/policy.js';
import { FailureRateLimiter } from '../clients/rate-limit.js';
import type { ClientRegistry } from '../clients/registry.js';
import { ErrorCode, ProxyError } from '../protocol/errors.js';
import type { Clock } from '../util/clock.js';
import type { Logger } from '../util/logger.js';
import type { HandshakeGate, ListenerBinding } from './handshake.js';
import type { PeerInfo } from './context.js';

export const HANDSHAKE_FAILURES_PER_MINUTE = 10;

/**
 * The rate-limit key of a peer: its pid, else its uid. Pid 0 is no pid: the kernel reports it for
 * a peer outside the proxy's pid namespace, so it would make every such peer one.
 */
export function peerKey(peer: PeerInfo): string {
  if (peer.pid !== undefined && peer.pid > 0) return `pid:${peer.pid}`;
  if (peer.uid !== undefined) return `uid:${peer.uid}`;
  return 'unknown';
}

export class CapabilityGate implements HandshakeGate {
  readonly #clients: ClientRegistry;
  readonly #ownerUid: number | undefined;
  readonly #limiter: FailureRateLimiter;
  readonly #logger: Logger;
  readonly #access: AccessRequests | undefined;

  constructor(options: { clients: ClientRegistry; clock: Clock; logger: Logger; ownerUid?: number; access?: AccessRequests }) {
    this.#access = options.access;
    this.#clients = options.clients;
    this.#ownerUid = options.ownerUid;
    this.#logger = options.logger;
    this.#limiter = new FailureRateLimiter(options.clock, { maxFailures: HANDSHAKE_FAILURES_PER_MINUTE, windowMs: 60_000 });
  }

  authenticate(binding: ListenerBinding, peer: PeerInfo, token: string | undefined): Identity {
    if (binding.kind === 'owner' && token === undefined) {
      if (peer.uid !== undefined && this.#ownerUid !== undefined && peer.uid !== this.#ownerUid && peer.uid !== 0) {
        this.#logger.log('warn', 'refused owner-socket peer with a foreign uid', { uid: peer.uid, pid: peer.pid });
        throw new ProxyError(ErrorCode.UNAUTHORIZED, 'this socket belongs to another user — use your own credproxy, or a client socket with a capability token');
      }
      return OWNER;
    }
    // The token is checked first (in constant time) and a right one always passes: peers that
    // share a key (no pid visible, pid 0 from another pid namespace) must not be locked out by
    // one guesser among them. Only failures are throttled.
    const client = token === undefined ? undefined : this.#clients.authenticate(token);
    if (client && (binding.kind === 'owner' || client.name === binding.clientName)) {
      return this.#access ? { kind: 'client', client, access: this.#access.accessFor(client) } : { kind: 'client', client };
    }
    const key = peerKey(peer);
    const wait = this.#limiter.retryAfter(key);
    if (wait > 0) {
      throw new ProxyError(ErrorCode.RATE_LIMITED, `too many failed handshakes from this process — retry in ${wait} s`, { retryAfter: wait });
    }
    if (token === undefined) {
      throw new ProxyError(ErrorCode.UNAUTHORIZED, 'this socket needs a capability token in the handshake — ask the owner for one (`credproxy client add`)');
    }
    this.#limiter.recordFailure(key);
    throw new ProxyError(ErrorCode.UNAUTHORIZED, 'capability token not accepted: unknown, expired or removed client — ask the owner for a new one (`credproxy client add`)');
  }
}

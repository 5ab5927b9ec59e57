/**
 * `credproxy panic` (SPEC §9): something leaked, or might have. Stop serving clients at once,
 * then revoke every refresh and access token at its provider, delete every token, remove every
 * client (closing its listeners), cancel every pending login and access request — and stay
 * locked, answering only the owner's ping and status, until `credproxy unlock` or a restart.
 * API keys are kept: there is no protocol to revoke one; the answer says so.
 */
import { ErrorCode, ProxyError } from '../../protocol/errors.js';
import type { PanicAccountResult } from '../../protocol/ops.js';
import type { Handler } from '../handler.js';
import { noPayload } from './validators.js';

/** Ops the owner may still run while locked. */
export const LOCKED_OPS: ReadonlySet<string> = new Set(['ping', 'status', 'unlock']);

export function lockedError(op: string): ProxyError {
  return new ProxyError(ErrorCode.FORBIDDEN, `credproxy is locked after \`credproxy panic\`: ${op} is refused until the owner runs \`credproxy unlock\` (or restarts the proxy)`);
}

const panic: Handler<'panic'> = {
  access: 'owner',
  slow: true,
  validate: noPayload,
  async run(_p, { services }) {
    const { logger } = services;
    services.lockdown.locked = true;
    logger.log('warn', 'PANIC: locking the proxy, removing every client, revoking every token');
    // Clients first: nobody may fetch a token while the revocations run.
    const clientsRemoved: string[] = [];
    for (const client of services.clients.list()) {
      try {
        const removed = await services.clients.remove(client.name);
        if (removed) services.logins.endSessionsOf(removed);
        await services.listeners.closeClientListener(client.name);
        clientsRemoved.push(client.name);
      } catch (err) {
        logger.log('error', `panic: could not remove client ${client.name}: ${err instanceof Error ? err.message : 'unknown error'}`);
      }
    }
    services.access.clear();
    const loginsCancelled = services.logins.cancelAll('cancelled by `credproxy panic`');
    const accounts: PanicAccountResult[] = [];
    for (const key of await services.accounts.list()) {
      let result: PanicAccountResult;
      try {
        const out = await services.logins.logout(key, true);
        result = { provider: key.provider, bucket: key.bucket, revoked: out.revoked, ...(out.reason !== undefined ? { reason: out.reason } : {}) };
      } catch (err) {
        // The revocation failed in a way logout could not report: the token still goes.
        const why = err instanceof ProxyError ? err.message : 'an internal error (see the proxy log)';
        await services.accounts.withLock(key, () => services.accounts.remove(key)).catch(() => false);
        result = { provider: key.provider, bucket: key.bucket, revoked: false, reason: `${why}; the local copy was deleted anyway` };
      }
      accounts.push(result);
      logger.log('warn', 'panic: account', { provider: key.provider, bucket: key.bucket, revoked: result.revoked });
    }
    return { accounts, clients_removed: clientsRemoved, logins_cancelled: loginsCancelled, locked: true as const };
  },
};

const unlock: Handler<'unlock'> = {
  access: 'owner',
  validate: noPayload,
  run(_p, { services }) {
    if (services.lockdown.locked) services.logger.log('warn', 'unlocked after panic');
    services.lockdown.locked = false;
    return { locked: false as const };
  },
};

export const panicHandlers = { panic, unlock };

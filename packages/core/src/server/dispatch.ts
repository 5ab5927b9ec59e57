/**
 * The op table. Every op except `handshake` and `cancel` (which act on the connection itself)
 * has exactly one handler here; a missing one is a compile error.
 */
import type { Op, OpPayload, OpResult } from '../protocol/ops.js';
import type { RequestContext } from './context.js';
import { apiKeyHandlers } from './handlers/api-keys.js';
import { clientHandlers } from './handlers/clients.js';
import { controlHandlers } from './handlers/control.js';
import { oauthHandlers } from './handlers/oauth.js';
import { tokenHandlers } from './handlers/tokens.js';

export type DispatchedOp = Exclude<Op, 'handshake' | 'cancel'>;

export interface Handler<O extends DispatchedOp> {
  /** `owner`: the owner only. `client`: the owner and clients (scope is checked in run). */
  access: 'owner' | 'client';
  /** Check and normalise the payload as it enters; throws INVALID_REQUEST naming the field. */
  validate(payload: Record<string, unknown>): OpPayload<O>;
  run(payload: OpPayload<O>, ctx: RequestContext): Promise<OpResult<O>> | OpResult<O>;
  /** May run long or go upstream: give it an AbortSignal and a deadline. */
  slow?: boolean;
}

export type HandlerTable = { [O in DispatchedOp]: Handler<O> };

export const handlers: HandlerTable = {
  ...controlHandlers,
  ...tokenHandlers,
  ...apiKeyHandlers,
  ...oauthHandlers,
  ...clientHandlers,
};

const table = new Map<string, Handler<DispatchedOp>>(
  Object.entries(handlers) as Array<[string, Handler<DispatchedOp>]>,
);

/** Look an op up without touching object prototypes ("__proto__" is just an unknown op). */
export function findHandler(op: string): Handler<DispatchedOp> | undefined {
  return table.get(op);
}

export const ALL_OPS: readonly string[] = ['handshake', 'cancel', ...table.keys()];
export const CLIENT_OPS: readonly string[] = [
  'handshake',
  'cancel',
  ...[...table.entries()].filter(([, h]) => h.access === 'client').map(([op]) => op),
];

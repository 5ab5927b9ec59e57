/**
 * The op table. Every op except `handshake` and `cancel` (which act on the connection itself)
 * has exactly one handler here; a missing one is a compile error.
 */
import type { Handler, DispatchedOp, HandlerTable } from './handler.js';
import { accessHandlers } from './handlers/access.js';
import { apiKeyHandlers } from './handlers/api-keys.js';
import { clientHandlers } from './handlers/clients.js';
import { controlHandlers } from './handlers/control.js';
import { oauthHandlers } from './handlers/oauth.js';
import { panicHandlers } from './handlers/panic.js';
import { tokenHandlers } from './handlers/tokens.js';
import { storeHandlers } from './handlers/store.js';

export type { DispatchedOp, Handler, HandlerTable } from './handler.js';

export const handlers: HandlerTable = {
  ...controlHandlers,
  ...tokenHandlers,
  ...apiKeyHandlers,
  ...oauthHandlers,
  ...clientHandlers,
  ...storeHandlers,
  ...accessHandlers,
  ...panicHandlers,
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

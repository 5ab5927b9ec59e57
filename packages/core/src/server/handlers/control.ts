import type { Handler } from '../handler.js';
import { noPayload } from './validators.js';

const ping: Handler<'ping'> = {
  access: 'client',
  validate: noPayload,
  // A client is told the socket it came in on, never the owner socket's host path.
  run: (_p, { services, identity, listenerPath }) => ({ version: services.version, pid: services.pid, socket: identity.kind === 'owner' ? services.socketPath : listenerPath }),
};

const shutdown: Handler<'shutdown'> = {
  access: 'owner',
  validate: noPayload,
  run: (_p, { identity, services }) => {
    // The stop cancels them: say how many, so `credproxy stop` can tell the user.
    const pending = services.logins.pending(identity).length;
    services.requestShutdown();
    return pending > 0 ? { stopping: true, pending_logins: pending } : { stopping: true };
  },
};

export const controlHandlers = { ping, shutdown };

import type { Handler } from '../dispatch.js';
import { noPayload } from './validators.js';

const ping: Handler<'ping'> = {
  access: 'client',
  validate: noPayload,
  run: (_p, { services }) => ({ version: services.version, pid: services.pid, socket: services.socketPath }),
};

const shutdown: Handler<'shutdown'> = {
  access: 'owner',
  validate: noPayload,
  run: (_p, { services }) => {
    services.requestShutdown();
    return { stopping: true };
  },
};

export const controlHandlers = { ping, shutdown };

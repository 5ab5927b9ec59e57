import path from 'node:path';
import type { ClientAddPayload, ClientScope } from '../../protocol/ops.js';
import { ErrorCode, ProxyError } from '../../protocol/errors.js';
import { toClientInfo } from '../../clients/registry.js';
import { assertName, assertObject, assertOptionalBoolean, assertOptionalName, assertOptionalNumber, assertOptionalString } from '../../protocol/validate.js';
import { assertSocketPathFits } from '../../paths.js';
import { ConfigError } from '../../config/config-file.js';
import { assertRouteName } from '../../routes/route-config.js';
import type { Handler } from '../handler.js';
import { formatHttpAddress, parseHttpAddress } from '../http-address.js';
import { noPayload } from './validators.js';

function validateScopes(value: unknown): ClientScope[] {
  if (!Array.isArray(value)) throw new ProxyError(ErrorCode.INVALID_REQUEST, 'scopes must be an array of {provider, bucket?}');
  return value.map((s, i) => {
    assertObject(s, `scopes[${i}]`);
    assertName(s.provider, `scopes[${i}].provider`);
    assertOptionalName(s.bucket, `scopes[${i}].bucket`);
    return s.bucket === undefined ? { provider: s.provider } : { provider: s.provider, bucket: s.bucket };
  });
}

const clientAdd: Handler<'client_add'> = {
  access: 'owner',
  validate(p) {
    assertName(p.name, 'name');
    const out: ClientAddPayload = { name: p.name, scopes: validateScopes(p.scopes ?? []) };
    if (p.api_keys !== undefined) {
      if (!Array.isArray(p.api_keys)) throw new ProxyError(ErrorCode.INVALID_REQUEST, 'api_keys must be an array of key names');
      p.api_keys.forEach((k, i) => assertName(k, `api_keys[${i}]`));
      out.api_keys = p.api_keys as string[];
    }
    assertOptionalBoolean(p.allow_login, 'allow_login');
    assertOptionalBoolean(p.allow_refresh, 'allow_refresh');
    assertOptionalNumber(p.ttl_seconds, 'ttl_seconds', { min: 1, max: 10 * 365 * 86_400, integer: true });
    assertOptionalString(p.socket, 'socket', 4096);
    if (p.allow_login !== undefined) out.allow_login = p.allow_login;
    if (p.allow_refresh !== undefined) out.allow_refresh = p.allow_refresh;
    if (p.ttl_seconds !== undefined) out.ttl_seconds = p.ttl_seconds;
    if (p.socket !== undefined) {
      if (!path.isAbsolute(p.socket)) throw new ProxyError(ErrorCode.INVALID_REQUEST, 'socket must be an absolute path');
      assertSocketPathFits(p.socket);
      out.socket = p.socket;
    }
    if (p.routes !== undefined) {
      if (!Array.isArray(p.routes) || p.routes.length > 256) throw new ProxyError(ErrorCode.INVALID_REQUEST, 'routes must be an array of route names');
      p.routes.forEach((r, i) => assertRouteName(r, `routes[${i}]`));
      out.routes = [...new Set(p.routes as string[])];
    }
    assertOptionalString(p.http, 'http', 4096);
    if (p.http !== undefined) out.http = formatHttpAddress(parseHttpAddress(p.http));
    if (out.routes !== undefined && out.routes.length > 0 && out.http === undefined) {
      throw new ProxyError(ErrorCode.INVALID_REQUEST, 'routes need an HTTP listener to be called through — add --http 127.0.0.1:0 (or a socket path)');
    }
    return out;
  },
  async run(p, { services }) {
    if (p.routes !== undefined && p.routes.length > 0) {
      // The owner asks: a broken config file is named, with the field, not hidden as an internal error.
      const configured = await services.routes.all().catch((err: unknown) => {
        if (err instanceof ConfigError) throw new ProxyError(ErrorCode.INVALID_REQUEST, err.message);
        throw err;
      });
      const unknown = p.routes.filter((r) => !configured.has(r));
      if (unknown.length > 0) {
        const names = [...configured.keys()].sort();
        throw new ProxyError(
          ErrorCode.INVALID_REQUEST,
          `no route named ${unknown.join(', ')} — ` +
            (names.length > 0 ? `the configured routes are ${names.join(', ')}` : 'no routes are configured; add one with `credproxy route add NAME --preset P --api-key K`'),
        );
      }
    }
    const { record, token } = await services.clients.add(p);
    let http: string | undefined;
    try {
      if (record.socket !== undefined) await services.listeners.openClientListener(record.name, record.socket);
      if (record.http !== undefined) {
        http = await services.listeners.openClientHttpListener(record.name, record.http);
        await services.clients.setHttpAddress(record.name, record.token_sha256, http);
      }
    } catch (err) {
      await services.listeners.closeClientListener(record.name).catch(() => undefined);
      await services.clients.remove(record.name);
      throw err;
    }
    const out: { name: string; capability_token: string; socket?: string; http?: string; expires_at?: number } = {
      name: record.name,
      capability_token: token,
    };
    if (record.socket !== undefined) out.socket = record.socket;
    if (http !== undefined) out.http = http;
    if (record.expires_at !== undefined) out.expires_at = record.expires_at;
    return out;
  },
};

const clientList: Handler<'client_list'> = {
  access: 'owner',
  validate: noPayload,
  run: (_p, { services }) => ({ clients: services.clients.list().map(toClientInfo) }),
};

const clientRemove: Handler<'client_remove'> = {
  access: 'owner',
  validate(p) {
    assertName(p.name, 'name');
    return { name: p.name };
  },
  async run(p, { services }) {
    const removed = await services.clients.remove(p.name);
    if (!removed) {
      throw new ProxyError(ErrorCode.NOT_FOUND, `no client named ${p.name} — see \`credproxy client list\``);
    }
    // Its pending logins belong to the registration: nobody may use them any more.
    services.logins.endSessionsOf(removed);
    await services.listeners.closeClientListener(p.name);
    return { removed: true };
  },
};

export const clientHandlers = { client_add: clientAdd, client_list: clientList, client_remove: clientRemove };

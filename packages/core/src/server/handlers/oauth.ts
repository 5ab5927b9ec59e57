import { assertAccount, assertRight } from '../../clients/policy.js';
import { FLOW_TYPES, type FlowType } from '../../protocol/ops.js';
import { ErrorCode, ProxyError } from '../../protocol/errors.js';
import { assertOptionalString, assertString } from '../../protocol/validate.js';
import type { Handler } from '../handler.js';
import { accountKey, noPayload } from './validators.js';

function sessionId(p: Record<string, unknown>): { session_id: string } {
  assertString(p.session_id, 'session_id', 128);
  return { session_id: p.session_id };
}

const initiate: Handler<'oauth_initiate'> = {
  access: 'client',
  slow: true,
  validate(p) {
    const key = accountKey(p);
    if (p.flow !== undefined && !FLOW_TYPES.includes(p.flow as FlowType)) {
      throw new ProxyError(ErrorCode.INVALID_REQUEST, `flow must be one of ${FLOW_TYPES.join(', ')}`);
    }
    assertOptionalString(p.redirect_uri, 'redirect_uri', 2048);
    const out: ReturnType<Handler<'oauth_initiate'>['validate']> = { ...key };
    if (p.flow !== undefined) out.flow = p.flow as FlowType;
    if (p.redirect_uri !== undefined) out.redirect_uri = p.redirect_uri;
    return out;
  },
  async run(p, { identity, services }) {
    const key = p;
    assertAccount(identity, key.provider, key.bucket);
    assertRight(identity, 'allow_login');
    return services.logins.initiate(identity, key, p);
  },
};

const exchange: Handler<'oauth_exchange'> = {
  access: 'client',
  slow: true,
  validate(p) {
    const { session_id } = sessionId(p);
    assertString(p.code, 'code', 8192);
    return { session_id, code: p.code };
  },
  run: (p, { identity, services }) => services.logins.exchange(identity, p.session_id, p.code),
};

const poll: Handler<'oauth_poll'> = {
  access: 'client',
  validate: sessionId,
  run: (p, { identity, services }) => services.logins.poll(identity, p.session_id),
};

const cancel: Handler<'oauth_cancel'> = {
  access: 'client',
  validate: sessionId,
  run: (p, { identity, services }) => services.logins.cancel(identity, p.session_id),
};

const sessionList: Handler<'session_list'> = {
  access: 'client',
  validate: noPayload,
  run: (_p, { identity, services }) => ({ sessions: services.logins.pending(identity) }),
};

export const oauthHandlers = {
  session_list: sessionList,
  oauth_initiate: initiate,
  oauth_exchange: exchange,
  oauth_poll: poll,
  oauth_cancel: cancel,
};

/**
 * Access on request (SPEC §9): a client asks (request_access) and polls (access_status); the
 * owner lists, approves (maybe narrower), denies and revokes. The requests live in
 * clients/access-requests.ts; an approval is read by the policy checks on every op.
 */
import { ErrorCode, ProxyError } from '../../protocol/errors.js';
import type { AccessApprovePayload, RequestAccessPayload } from '../../protocol/ops.js';
import { assertName, assertOptionalName, assertOptionalNumber, assertOptionalString, assertString } from '../../protocol/validate.js';
import type { Handler } from '../handler.js';
import { noPayload } from './validators.js';

function requestId(p: Record<string, unknown>): { request_id: string } {
  assertString(p.request_id, 'request_id', 64);
  if (!/^[0-9a-f]{32}$/.test(p.request_id)) {
    throw new ProxyError(ErrorCode.INVALID_REQUEST, 'request_id must be the 32 hex characters request_access answered');
  }
  return { request_id: p.request_id };
}

function clientOnly(kind: string): ProxyError {
  return new ProxyError(ErrorCode.INVALID_REQUEST, `${kind} is for clients: the owner already has every right`);
}

const requestAccess: Handler<'request_access'> = {
  access: 'client',
  validate(p) {
    assertOptionalName(p.provider, 'provider');
    assertOptionalName(p.bucket, 'bucket');
    assertOptionalName(p.api_key, 'api_key');
    assertOptionalName(p.route, 'route');
    assertOptionalString(p.reason, 'reason', 1000);
    assertOptionalNumber(p.ttl_seconds, 'ttl_seconds', { min: 1, max: 86_400 * 365 });
    if (p.bucket !== undefined && p.provider === undefined) {
      throw new ProxyError(ErrorCode.INVALID_REQUEST, 'bucket needs provider: ask for {provider, bucket}');
    }
    const out: RequestAccessPayload = {};
    for (const field of ['provider', 'bucket', 'api_key', 'route', 'reason'] as const) if (p[field] !== undefined) out[field] = p[field] as string;
    if (p.ttl_seconds !== undefined) out.ttl_seconds = p.ttl_seconds;
    return out;
  },
  run(p, { identity, services }) {
    if (identity.kind !== 'client') throw clientOnly('request_access');
    const answer = services.access.request(identity.client, p);
    services.logger.log('info', 'access requested', { client: identity.client.name, request: answer.request_id });
    return answer;
  },
};

const accessStatus: Handler<'access_status'> = {
  access: 'client',
  validate: requestId,
  run(p, { identity, services }) {
    if (identity.kind !== 'client') throw clientOnly('access_status');
    return services.access.status(identity.client, p.request_id);
  },
};

const accessList: Handler<'access_list'> = {
  access: 'owner',
  validate: noPayload,
  run: (_p, { services }) => ({ requests: services.access.list() }),
};

const accessApprove: Handler<'access_approve'> = {
  access: 'owner',
  validate(p) {
    const out: AccessApprovePayload = requestId(p);
    assertOptionalNumber(p.ttl_seconds, 'ttl_seconds', { min: 1, max: 86_400 * 365 });
    if (p.bucket !== undefined) assertName(p.bucket, 'bucket');
    if (p.ttl_seconds !== undefined) out.ttl_seconds = p.ttl_seconds;
    if (p.bucket !== undefined) out.bucket = p.bucket;
    return out;
  },
  run(p, { services }) {
    const info = services.access.approve(p.request_id, { ...(p.ttl_seconds !== undefined ? { ttl_seconds: p.ttl_seconds } : {}), ...(p.bucket !== undefined ? { bucket: p.bucket } : {}) });
    services.logger.log('info', 'access approved', { client: info.client, request: info.request_id, ttl: info.ttl_seconds });
    return info;
  },
};

const accessDeny: Handler<'access_deny'> = {
  access: 'owner',
  validate: requestId,
  run: (p, { services }) => services.access.deny(p.request_id),
};

const accessRevoke: Handler<'access_revoke'> = {
  access: 'owner',
  validate: requestId,
  run: (p, { services }) => services.access.revoke(p.request_id),
};

export const accessHandlers = {
  request_access: requestAccess,
  access_status: accessStatus,
  access_list: accessList,
  access_approve: accessApprove,
  access_deny: accessDeny,
  access_revoke: accessRevoke,
};

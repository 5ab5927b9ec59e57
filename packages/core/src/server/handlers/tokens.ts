import { assertAccount, assertRight, mayUseAccount, mayUseProvider, type Identity } from '../../clients/policy.js';
import { DEFAULT_MIN_VALID_SECONDS } from '../../protocol/limits.js';
import { assertName, assertObject, assertOptionalBoolean, assertOptionalNumber, assertOptionalString, assertString } from '../../protocol/validate.js';
import type { ImportedToken, StatusResult } from '../../protocol/ops.js';
import { toTokenView } from '../../store/accounts.js';
import type { Handler } from '../handler.js';
import { accountKey, noPayload } from './validators.js';

/**
 * How much validity a caller may demand before get_token refreshes. A client without
 * allow_refresh may not force refreshes: above the default its min_valid_seconds is clamped to it
 * (not refused — llxprt's sandbox client sends min_valid_seconds on every get_token and treats any
 * error but NOT_FOUND as a failure, so FORBIDDEN would break it; clamped, it still gets a token,
 * refreshed whenever the default threshold would refresh it).
 */
function refreshThreshold(identity: Identity, requested: number): number {
  if (identity.kind === 'owner' || identity.client.allow_refresh) return requested;
  return Math.min(requested, DEFAULT_MIN_VALID_SECONDS);
}

const getToken: Handler<'get_token'> = {
  access: 'client',
  slow: true,
  validate(p) {
    assertOptionalNumber(p.min_valid_seconds, 'min_valid_seconds', { min: 0, max: 86_400 * 365 });
    const key = accountKey(p);
    return { provider: key.provider, bucket: key.bucket, min_valid_seconds: p.min_valid_seconds ?? DEFAULT_MIN_VALID_SECONDS };
  },
  run(p, ctx) {
    // The validated payload is the account key (bucket filled in); nothing else is read from it.
    const key = p;
    assertAccount(ctx.identity, key.provider, key.bucket);
    const minValid = refreshThreshold(ctx.identity, p.min_valid_seconds ?? DEFAULT_MIN_VALID_SECONDS);
    // Synchronous for a valid cached token: the connection then sets up no deadline timer.
    return ctx.services.accounts.cachedToken(key, minValid) ?? ctx.services.accounts.loadToken(key, minValid, ctx);
  },
};

const refreshToken: Handler<'refresh_token'> = {
  access: 'client',
  slow: true,
  validate: accountKey,
  async run(p, { identity, services, signal }) {
    const key = p;
    assertAccount(identity, key.provider, key.bucket);
    assertRight(identity, 'allow_refresh');
    // The owner's explicit refresh is always honoured; a client's is rate-bounded per account.
    return toTokenView(await services.accounts.refresh(key, signal, { force: identity.kind === 'owner' }));
  },
};

function validateImportedToken(value: unknown): ImportedToken {
  assertObject(value, 'token');
  assertString(value.access_token, 'token.access_token');
  assertOptionalString(value.refresh_token, 'token.refresh_token');
  assertOptionalString(value.token_type, 'token.token_type', 64);
  assertOptionalString(value.scope, 'token.scope');
  assertOptionalString(value.id_token, 'token.id_token');
  // Accept unix seconds; a value that can only be milliseconds is converted.
  assertOptionalNumber(value.expiry, 'token.expiry', { min: 0 });
  const token: ImportedToken = { ...value, access_token: value.access_token };
  if (typeof value.expiry === 'number' && value.expiry > 1e11) token.expiry = Math.floor(value.expiry / 1000);
  return token;
}

const saveToken: Handler<'save_token'> = {
  access: 'owner',
  validate(p) {
    return { ...accountKey(p), token: validateImportedToken(p.token) };
  },
  async run(p, { services }) {
    await services.accounts.importToken(p, p.token);
    return { saved: true };
  },
};

const removeToken: Handler<'remove_token'> = {
  access: 'owner',
  validate: accountKey,
  async run(p, { services }) {
    const key = p;
    return { removed: await services.accounts.withLock(key, () => services.accounts.remove(key)) };
  },
};

const logout: Handler<'logout'> = {
  access: 'owner',
  slow: true,
  validate(p) {
    assertOptionalBoolean(p.revoke, 'revoke');
    return { ...accountKey(p), revoke: p.revoke ?? true };
  },
  async run(p, { services }) {
    return services.logins.logout(p, p.revoke !== false);
  },
};

const status: Handler<'status'> = {
  access: 'client',
  validate: noPayload,
  async run(_p, { identity, services }) {
    const accounts = await services.accounts.status((k) => mayUseAccount(identity, k.provider, k.bucket));
    if (identity.kind !== 'owner') return { accounts };
    // The owner also sees what waits for an answer, and whether panic locked the proxy.
    const result: StatusResult = { accounts, access_requests: services.access.pending(), pending_logins: services.logins.pending(identity) };
    if (services.lockdown.locked) result.locked = true;
    return result;
  },
};

const listProviders: Handler<'list_providers'> = {
  access: 'client',
  validate: noPayload,
  async run(_p, { identity, services }) {
    const names = new Set(await services.providers.names());
    for (const key of await services.accounts.list()) names.add(key.provider);
    return { providers: [...names].filter((n) => mayUseProvider(identity, n)).sort() };
  },
};

const listBuckets: Handler<'list_buckets'> = {
  access: 'client',
  validate(p) {
    assertName(p.provider, 'provider');
    return { provider: p.provider };
  },
  async run(p, { identity, services }) {
    const keys = await services.accounts.list();
    return {
      buckets: keys
        .filter((k) => k.provider === p.provider && mayUseAccount(identity, k.provider, k.bucket))
        .map((k) => k.bucket),
    };
  },
};

const getBucketStats: Handler<'get_bucket_stats'> = {
  access: 'client',
  validate: accountKey,
  run(p, { identity, services }) {
    const key = p;
    assertAccount(identity, key.provider, key.bucket);
    return services.accounts.bucketStats(key, (bucket) => mayUseAccount(identity, key.provider, bucket));
  },
};

export const tokenHandlers = {
  get_token: getToken,
  refresh_token: refreshToken,
  save_token: saveToken,
  remove_token: removeToken,
  logout,
  status,
  list_providers: listProviders,
  list_buckets: listBuckets,
  get_bucket_stats: getBucketStats,
};

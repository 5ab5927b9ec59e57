/**
 * Who is asking, and what they may touch. The owner may do anything; a client only what its
 * registration grants. Out of scope is FORBIDDEN whether or not the thing exists.
 */
import { ErrorCode, ProxyError } from '../protocol/errors.js';
import type { TemporaryAccess } from './access-requests.js';
import type { ClientRecord } from './registry.js';

/**
 * Who is asking. A client's `access` is its temporary scope (approved access requests, SPEC §9),
 * read live on every check; its registered scope is `client`.
 */
export type Identity = { kind: 'owner' } | { kind: 'client'; client: ClientRecord; access?: TemporaryAccess };

export const OWNER: Identity = Object.freeze({ kind: 'owner' });

export function identityName(identity: Identity): string {
  return identity.kind === 'owner' ? 'owner' : identity.client.name;
}

export function mayUseAccount(identity: Identity, provider: string, bucket: string): boolean {
  if (identity.kind === 'owner') return true;
  return (
    identity.client.scopes.some((s) => s.provider === provider && (s.bucket === undefined || s.bucket === bucket)) ||
    identity.access?.allowsAccount(provider, bucket) === true
  );
}

export function mayUseProvider(identity: Identity, provider: string): boolean {
  if (identity.kind === 'owner') return true;
  return identity.client.scopes.some((s) => s.provider === provider) || identity.access?.allowsProvider(provider) === true;
}

export function mayUseKey(identity: Identity, name: string): boolean {
  if (identity.kind === 'owner') return true;
  return identity.client.api_keys.includes(name) || identity.access?.allowsKey(name) === true;
}

export function forbidden(what: string): ProxyError {
  return new ProxyError(
    ErrorCode.FORBIDDEN,
    `${what} is outside this client's scope — ask the owner for it with the request_access op, or the owner can widen it with \`credproxy client add\``,
  );
}

export function assertAccount(identity: Identity, provider: string, bucket: string): void {
  if (!mayUseAccount(identity, provider, bucket)) throw forbidden(`${provider}/${bucket}`);
}

export function assertKey(identity: Identity, name: string): void {
  if (!mayUseKey(identity, name)) throw forbidden(`API key ${name}`);
}

export function assertRight(identity: Identity, right: 'allow_login' | 'allow_refresh'): void {
  if (identity.kind === 'client' && !identity.client[right]) {
    throw new ProxyError(
      ErrorCode.FORBIDDEN,
      `this client may not ${right === 'allow_login' ? 'start logins' : 'force refreshes'} — the owner can grant it with \`credproxy client add --${right.replace('_', '-')}\``,
    );
  }
}

/** A route (SPEC §6) the client was granted, or temporarily approved. */
export function mayUseRoute(identity: Identity, name: string): boolean {
  if (identity.kind === 'owner') return true;
  const routes = (identity.client as { routes?: readonly string[] }).routes;
  return routes?.includes(name) === true || identity.access?.allowsRoute(name) === true;
}

/**
 * Who is logged in (SPEC §7): the preset's identity endpoint (GitHub's `GET /user` → login), else
 * the id token's email, preferred_username or sub. Stored with the account; never a secret.
 */
import type { StoredToken } from '../store/token-store.js';
import type { OAuthProvider } from './oauth-provider.js';
import { idTokenClaims } from './presets/preset.js';

/** Longest account name kept (a name, an email); longer ones are cut. */
const MAX_ACCOUNT_LENGTH = 256;

export function accountFromIdToken(idToken: unknown): string | undefined {
  const claims = idTokenClaims(idToken);
  for (const claim of ['email', 'preferred_username', 'sub']) {
    const v = claims?.[claim];
    if (typeof v === 'string' && v.length > 0) return v;
  }
  return undefined;
}

export async function accountIdentity(provider: OAuthProvider, token: StoredToken, signal?: AbortSignal): Promise<string | undefined> {
  const found = provider.quirks.identity ? await provider.quirks.identity(provider, token, signal) : accountFromIdToken(token.id_token);
  if (found === undefined) return undefined;
  // Printed on terminals: no control characters.
  const clean = found.replace(/[\u0000-\u001f\u007f-\u009f]/g, '');
  return clean.length === 0 ? undefined : clean.slice(0, MAX_ACCOUNT_LENGTH);
}

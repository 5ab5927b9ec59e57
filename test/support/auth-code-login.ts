/**
 * A login at the testkit authorization server without the proxy: authorization code + PKCE with
 * the paste client, the scripted user consenting. For tests that inject a token into the proxy
 * (save_token, as `credproxy login --with-token` does) and need a real refresh token for it.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createScriptedUser, type TestAuthServer } from '@credproxy/testkit';

export async function refreshTokenFrom(as: TestAuthServer): Promise<string> {
  const verifier = randomBytes(32).toString('base64url');
  const auth = new URL(as.endpoints.authorization);
  auth.search = new URLSearchParams({
    response_type: 'code',
    client_id: as.clients.paste.clientId,
    redirect_uri: as.clients.paste.redirectUri,
    scope: 'openid offline_access',
    prompt: 'consent',
    state: randomBytes(16).toString('base64url'),
    code_challenge: createHash('sha256').update(verifier).digest('base64url'),
    code_challenge_method: 'S256',
  }).toString();
  const user = createScriptedUser();
  const pasted = await user.readPastedCode(await user.authorize(auth));
  const res = await fetch(as.endpoints.token, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'authorization_code',
      code: pasted.split('#')[0]!,
      code_verifier: verifier,
      redirect_uri: as.clients.paste.redirectUri,
      client_id: as.clients.paste.clientId,
    }),
  });
  const body = (await res.json()) as { refresh_token?: string };
  if (!body.refresh_token) throw new Error(`the authorization server issued no refresh token (HTTP ${res.status})`);
  return body.refresh_token;
}

/**
 * Id tokens are checked with the provider's own signing algorithm (issue 12, item 4): a provider
 * configured by explicit endpoints with the `openid` scope logs in against an RS256 and an ES256
 * issuer alike (the algorithm comes from the metadata, else the JWKS, else any asymmetric one),
 * and the account is named from the id token.
 */
import { createScriptedUser, startTestAuthServer, type TestAuthServer } from '@credproxy/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { followToCallback, pollUntilDone, startPresetProxy, type PresetProxy } from '../support/preset-harness.js';
import { removeTempDirs } from '../support/temp.js';

const servers: TestAuthServer[] = [];
const proxies: PresetProxy[] = [];
afterAll(async () => {
  for (const p of proxies) await p.close();
  for (const s of servers) await s.close();
  await removeTempDirs();
});

describe.each(['RS256', 'ES256'] as const)('an %s issuer', (alg) => {
  it.each([
    ['explicit endpoints', (as: TestAuthServer) => ({ authorizationEndpoint: as.endpoints.authorization, tokenEndpoint: as.endpoints.token })],
    ['explicit endpoints and its JWKS', (as: TestAuthServer) => ({ authorizationEndpoint: as.endpoints.authorization, tokenEndpoint: as.endpoints.token, jwks: as.endpoints.jwks })],
    ['discovery', (as: TestAuthServer) => ({ issuer: as.issuer })],
  ])('logs in with the openid scope through %s and names the account from the id token (its sub: the testkit puts no email in it)', async (_how, endpoints) => {
    const as = await startTestAuthServer({ signingAlg: alg });
    servers.push(as);
    const p = await startPresetProxy();
    proxies.push(p);
    const { jwks, ...flags } = endpoints(as) as { jwks?: string } & Record<string, string>;
    await p.addProvider({ name: 'oidc', clientId: as.clients.native.clientId, scope: ['openid', 'offline_access'], ...flags });
    if (jwks !== undefined) {
      const { editConfigFile } = await import('../../packages/core/src/config/config-file.js');
      await editConfigFile(p.env.CREDPROXY_CONFIG!, (raw) => {
        (raw.providers as Record<string, Record<string, unknown>>).oidc!.jwks_uri = jwks;
      });
    }
    const init = await p.owner.call('oauth_initiate', { provider: 'oidc' });
    const user = createScriptedUser('alg-user');
    expect((await followToCallback(await user.authorize(init.auth_url))).status).toBe(200);
    const done = await pollUntilDone(p.owner, init.session_id);
    expect(done, String(done.error)).toMatchObject({ status: 'complete', account: 'alg-user' });
    const token = await p.owner.call('get_token', { provider: 'oidc' });
    const header = JSON.parse(Buffer.from(String(token.id_token).split('.')[0]!, 'base64url').toString()) as { alg: string };
    expect(header.alg).toBe(alg);
    // The refresh answer carries an id token too: it is checked the same way.
    expect((await p.owner.call('refresh_token', { provider: 'oidc' })).access_token).not.toBe(token.access_token);
  });
});

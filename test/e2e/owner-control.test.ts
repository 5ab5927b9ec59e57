/**
 * The owner's side of SPEC §9 through the built CLI: `access list|approve|deny`, pending requests
 * in `status`, `panic` and `unlock`. The client side is a sandbox connection with its token.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ProxyClient, ProxyError } from '../../packages/core/src/index.js';
import { cleanup, makeLayout, run, startServe, withClient } from './cli-harness.js';

afterEach(cleanup);

async function code(p: Promise<unknown>): Promise<string> {
  return p.then(
    () => 'ok',
    (err: unknown) => (err instanceof ProxyError ? err.code : String(err)),
  );
}

describe('access on request, answered with the CLI', () => {
  it('approve --ttl 2s serves the client, which is refused again after expiry; deny answers denied', async () => {
    const layout = makeLayout();
    await startServe(layout);
    expect((await run(layout, ['key', 'set', 'openai'], { input: 'sk-e2e-owner-control\n' })).code).toBe(0);
    await withClient(layout.socket, (c) => c.call('save_token', { provider: 'github', token: { access_token: 'gho-e2e', expiry: Math.floor(Date.now() / 1000) + 3600 } }));
    const add = await run(layout, ['client', 'add', 'agent', '--provider', 'github', '--json']);
    expect(add.code, add.stderr).toBe(0);
    const agent = await ProxyClient.connect({ socketPath: layout.socket, capabilityToken: JSON.parse(add.stdout).capability_token });
    try {
      expect(await code(agent.call('get_api_key', { name: 'openai' }))).toBe('FORBIDDEN');
      const asked = await agent.call('request_access', { api_key: 'openai', reason: 'call the model' });

      const status = await run(layout, ['status']);
      expect(status.stdout).toContain('1 access request(s) waiting');
      expect(status.stdout).toContain(asked.request_id);
      expect(status.stdout).toContain('key openai');
      const list = JSON.parse((await run(layout, ['access', 'list', '--json'])).stdout);
      expect(list.requests).toEqual([expect.objectContaining({ request_id: asked.request_id, client: 'agent', api_key: 'openai', status: 'pending', reason: 'call the model' })]);

      const approve = await run(layout, ['access', 'approve', asked.request_id, '--ttl', '2s']);
      expect(approve.code, approve.stderr).toBe(0);
      expect(approve.stdout).toMatch(/^approved: agent may use key openai until /);
      expect(await agent.call('get_api_key', { name: 'openai' })).toEqual({ key: 'sk-e2e-owner-control' });
      await new Promise((r) => setTimeout(r, 2300));
      expect(await code(agent.call('get_api_key', { name: 'openai' }))).toBe('FORBIDDEN');
      expect(await agent.call('access_status', { request_id: asked.request_id })).toEqual({ status: 'expired' });

      const again = await agent.call('request_access', { provider: 'github', bucket: 'work' });
      expect((await run(layout, ['access', 'deny', again.request_id])).stdout).toContain('denied: agent');
      expect(await agent.call('access_status', { request_id: again.request_id })).toEqual({ status: 'denied' });
      const unknown = await run(layout, ['access', 'approve', 'f'.repeat(32)]);
      expect(unknown.code).not.toBe(0);
      expect(unknown.stderr).toContain('credproxy access list');
    } finally {
      agent.close();
    }
  });
});

describe('credproxy panic', () => {
  it('deletes the tokens, removes the clients, says what it did, and locks until unlock', async () => {
    const layout = makeLayout();
    await startServe(layout);
    await withClient(layout.socket, (c) => c.call('save_token', { provider: 'imported', token: { access_token: 'imported-e2e' } }));
    expect((await run(layout, ['client', 'add', 'agent', '--provider', 'imported'])).code).toBe(0);

    const panic = await run(layout, ['panic']);
    expect(panic.code, panic.stderr).toBe(0);
    // No provider is configured for the imported token: it cannot be revoked, and panic says why.
    expect(panic.stdout).toMatch(/deleted, NOT revoked imported: no provider named imported is configured/);
    expect(panic.stdout).toContain('removed clients: agent');
    expect(panic.stdout).toContain('credproxy unlock');
    expect(panic.stdout).not.toContain('imported-e2e');

    const status = await run(layout, ['status', '--json']);
    expect(JSON.parse(status.stdout)).toMatchObject({ accounts: [], locked: true });
    expect((await run(layout, ['ping'])).code).toBe(0);
    const refused = await run(layout, ['client', 'list']);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain('credproxy unlock');

    expect((await run(layout, ['unlock'])).stdout).toContain('unlocked');
    const list = await run(layout, ['client', 'list', '--json']);
    expect(JSON.parse(list.stdout)).toEqual({ clients: [] });
  });
});

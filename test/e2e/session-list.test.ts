/**
 * A CI script that lost its session id finds it (issue 14 item 3): `session list`, pending logins
 * in `status`, and `stop` says the logins it cancels.
 */
import fs from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { cleanup, makeLayout, run, startServe } from './cli-harness.js';

afterEach(cleanup);

describe('pending logins', () => {
  it('are listed by session list and status, and stop says it cancels them', async () => {
    const layout = makeLayout();
    fs.writeFileSync(
      layout.env.CREDPROXY_CONFIG!,
      JSON.stringify({ providers: { demo: { authorization_endpoint: 'http://127.0.0.1:9/auth', token_endpoint: 'http://127.0.0.1:9/token', client_id: 'x', flow: 'pkce_redirect' } } }),
    );
    const serve = await startServe(layout);
    expect((await run(layout, ['session', 'list'])).stdout).toBe('no pending logins\n');
    const start = await run(layout, ['session', 'start', 'demo', '--bucket', 'ci', '--json']);
    expect(start.code, start.stderr).toBe(0);
    const id = JSON.parse(start.stdout).session_id as string;

    const list = JSON.parse((await run(layout, ['session', 'list', '--json'])).stdout);
    expect(list.sessions).toEqual([expect.objectContaining({ session_id: id, provider: 'demo', bucket: 'ci', flow_type: 'pkce_redirect', started_by: 'owner' })]);
    const text = await run(layout, ['session', 'list']);
    expect(text.stdout).toContain(id);
    expect(text.stdout).toContain('demo:ci');
    const status = await run(layout, ['status']);
    expect(status.stdout).toContain('1 login(s) pending');
    expect(status.stdout).toContain(id);

    const stop = await run(layout, ['stop']);
    expect(stop).toMatchObject({ code: 0, stdout: 'credproxy stopped — 1 pending login(s) were cancelled with it\n' });
    await serve.exited;
  });
});

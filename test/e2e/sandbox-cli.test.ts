/**
 * The CLI inside a sandbox (issue 14 item 10): with a client's capability token — in
 * $CREDPROXY_CAPABILITY_TOKEN or on a descriptor (`--token-fd 3`, as llxprt-code hands it over) —
 * `token`, `exec` and `key` work within the client's scope, and the child of `exec` never sees it.
 */
import { spawn } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { BIN, cleanup, makeLayout, run, startServe, withClient, type Layout } from './cli-harness.js';

afterEach(cleanup);

function runWithFd3(layout: Layout, args: string[], fd3: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { env: layout.env, stdio: ['ignore', 'pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    (child.stdio[3] as NodeJS.WritableStream).end(`${fd3}\n`);
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('the CLI as a sandbox client', () => {
  it('token, key get/list and exec work in scope with the client token, and nothing more', async () => {
    const layout = makeLayout();
    await startServe(layout);
    expect((await run(layout, ['key', 'set', 'openai'], { input: 'sk-sandbox-openai\n' })).code).toBe(0);
    expect((await run(layout, ['key', 'set', 'other'], { input: 'sk-sandbox-other\n' })).code).toBe(0);
    await withClient(layout.socket, async (c) => {
      await c.call('save_token', { provider: 'github', token: { access_token: 'gho-sandbox', expiry: Math.floor(Date.now() / 1000) + 3600 } });
      await c.call('save_token', { provider: 'gitlab', token: { access_token: 'glpat-sandbox', expiry: Math.floor(Date.now() / 1000) + 3600 } });
    });
    const add = await run(layout, ['client', 'add', 'agent', '--provider', 'github', '--api-key', 'openai', '--json']);
    const token = JSON.parse(add.stdout).capability_token as string;
    const inSandbox: Layout = { ...layout, env: { ...layout.env, CREDPROXY_CAPABILITY_TOKEN: token } };

    expect(await run(inSandbox, ['token', 'github'])).toMatchObject({ code: 0, stdout: 'gho-sandbox\n' });
    const outside = await run(inSandbox, ['token', 'gitlab']);
    expect(outside.code).toBe(1);
    expect(outside.stderr).toContain('outside this client');
    expect(await run(inSandbox, ['key', 'get', 'openai'])).toMatchObject({ code: 0, stdout: 'sk-sandbox-openai\n' });
    expect(await run(inSandbox, ['key', 'list'])).toMatchObject({ code: 0, stdout: 'openai\n' });
    expect((await run(inSandbox, ['key', 'get', 'other'])).code).toBe(1);

    // exec: the key and the token in the child's environment, the capability token not.
    const exec = await run(inSandbox, [
      'exec', '--provider', 'github', '--api-key', 'openai', '--',
      process.execPath, '-e', 'console.log(JSON.stringify([process.env.ACCESS_TOKEN, process.env.OPENAI_API_KEY, process.env.CREDPROXY_CAPABILITY_TOKEN ?? null]))',
    ]);
    expect(exec.code, exec.stderr).toBe(0);
    expect(JSON.parse(exec.stdout)).toEqual(['gho-sandbox', 'sk-sandbox-openai', null]);

    // The token on descriptor 3 instead of the environment (the fast path of `token` too).
    expect(await runWithFd3(layout, ['token', 'github', '--token-fd', '3'], token)).toMatchObject({ code: 0, stdout: 'gho-sandbox\n' });
    expect(await runWithFd3(layout, ['key', 'get', 'openai', '--token-fd', '3'], token)).toMatchObject({ code: 0, stdout: 'sk-sandbox-openai\n' });

    const bad = await run({ ...layout, env: { ...layout.env, CREDPROXY_CAPABILITY_TOKEN: 'not-a-token' } }, ['token', 'github']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('64 lowercase hex');
    expect(bad.stderr).not.toContain('not-a-token');
  });
});

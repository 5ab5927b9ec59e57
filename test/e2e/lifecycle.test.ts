/** Starting and stopping the proxy with the built CLI: foreground signals, --detach, stop. */
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { cleanup, isAlive, makeLayout, pingPid, run, startServe, trackPid, waitFor } from './cli-harness.js';

afterEach(cleanup);

describe('serve in the foreground', () => {
  it('stops cleanly on SIGTERM and removes its socket', async () => {
    const layout = makeLayout();
    const serve = await startServe(layout);
    expect(fs.existsSync(layout.socket)).toBe(true);
    serve.child.kill('SIGTERM');
    expect(await serve.exited).toEqual({ code: 0, signal: null });
    expect(fs.existsSync(layout.socket)).toBe(false);
    expect(serve.stderr()).toContain('credproxy stopped');
  });

  it('stops cleanly on SIGINT', async () => {
    const layout = makeLayout();
    const serve = await startServe(layout);
    serve.child.kill('SIGINT');
    expect(await serve.exited).toEqual({ code: 0, signal: null });
    expect(fs.existsSync(layout.socket)).toBe(false);
  });

  it('`credproxy stop` ends it with exit 0', async () => {
    const layout = makeLayout();
    const serve = await startServe(layout);
    const stop = await run(layout, ['stop']);
    expect(stop).toMatchObject({ code: 0, stdout: 'credproxy stopped\n' });
    expect(await serve.exited).toEqual({ code: 0, signal: null });
    expect(fs.existsSync(layout.socket)).toBe(false);
  });
});

describe('serve --detach', () => {
  it('returns once the proxy answers; stop stops it and removes the socket', async () => {
    const layout = makeLayout();
    const started = await run(layout, ['serve', '--detach']);
    const match = /^credproxy started \(pid (\d+)\) on (.+)\n$/.exec(started.stdout);
    expect(started.code, started.stderr).toBe(0);
    expect(match).not.toBeNull();
    const pid = Number(match![1]);
    trackPid(pid);
    expect(match![2]).toBe(layout.socket);
    // The CLI has exited, the proxy has not.
    expect(await pingPid(layout.socket)).toBe(pid);
    expect(fs.statSync(path.join(path.dirname(layout.socket), 'proxy.log')).mode & 0o777).toBe(0o600);

    const stop = await run(layout, ['stop']);
    expect(stop).toMatchObject({ code: 0, stdout: 'credproxy stopped\n' });
    expect(fs.existsSync(layout.socket)).toBe(false);
    expect(isAlive(pid)).toBe(false);

    const again = await run(layout, ['stop']);
    expect(again.code).toBe(5);
    expect(again.stderr).toContain('`credproxy serve`');
  });

  it('shows the error and exit code of a proxy that fails to start', async () => {
    const layout = makeLayout();
    fs.writeFileSync(String(layout.env.CREDPROXY_CONFIG), '{ not json');
    const r = await run(layout, ['serve', '--detach']);
    expect(r.code).not.toBe(0);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('credproxy');
    expect(r.stderr).toContain(String(layout.env.CREDPROXY_CONFIG));
    expect(await pingPid(layout.socket)).toBeUndefined();
  });

  it('the socket answers a fresh serve after stop', async () => {
    const layout = makeLayout();
    const first = await run(layout, ['serve', '--detach']);
    expect(first.code, first.stderr).toBe(0);
    trackPid(Number(/pid (\d+)/.exec(first.stdout)![1]));
    expect((await run(layout, ['stop'])).code).toBe(0);
    const serve = await startServe(layout);
    await waitFor(async () => (await pingPid(layout.socket)) === serve.child.pid);
    serve.child.kill('SIGTERM');
    expect((await serve.exited).code).toBe(0);
  });
});

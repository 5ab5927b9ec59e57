import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { type CallbackRegistration, CallbackRouter, type CallbackRoute } from './callback-router.js';

const held: CallbackRegistration[] = [];
afterEach(() => {
  for (const r of held.splice(0)) r.release();
});

async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

function route(state: string, seen: string[] = []): CallbackRoute {
  return {
    path: '/callback',
    state,
    async handle(query) {
      seen.push(`${state}:${query.get('code')}`);
      return { status: 200, title: 'ok', body: state };
    },
  };
}

async function get(port: number, target: string): Promise<{ status: number; text: string }> {
  const res = await fetch(`http://127.0.0.1:${port}${target}`);
  return { status: res.status, text: await res.text() };
}

function raw(port: number, request: string): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => s.end(request));
    let out = '';
    s.on('data', (d) => (out += d.toString()));
    s.on('close', () => resolve(out));
    s.on('error', () => resolve(out));
  });
}

describe('CallbackRouter', () => {
  it('shares one listener per fixed port and routes each callback by state only', async () => {
    const router = new CallbackRouter();
    const port = await freePort();
    const seen: string[] = [];
    const [a, b] = await Promise.all([router.register('127.0.0.1', port, route('sa', seen), 't'), router.register('127.0.0.1', port, route('sb', seen), 't')]);
    held.push(a!, b!);
    expect(router.listeners).toBe(1);
    expect(a!.port).toBe(port);
    expect((await get(port, '/callback?code=2&state=sb')).status).toBe(200);
    expect((await get(port, '/callback?code=1&state=sa')).status).toBe(200);
    expect(seen).toEqual(['sb:2', 'sa:1']);
    const stray = await get(port, '/callback?code=3&state=nobody');
    expect(stray.status).toBe(400);
    expect(stray.text).toMatch(/No pending login/);
    expect((await get(port, '/other?state=sa')).status).toBe(404);
    expect(await raw(port, 'GET //[ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')).toMatch(/^HTTP\/1\.1 404 /);
    expect(seen).toEqual(['sb:2', 'sa:1']);
  });

  it('closes the listener when the last login releases it, and opens the port again for the next one', async () => {
    const router = new CallbackRouter();
    const port = await freePort();
    const a = await router.register('127.0.0.1', port, route('a'), 't');
    const b = await router.register('127.0.0.1', port, route('b'), 't');
    a.release();
    expect((await get(port, '/callback?state=b&code=x')).status).toBe(200);
    b.release();
    expect(router.listeners).toBe(0);
    // Registered in the same tick as the close: waits for the port, then listens again.
    const c = await router.register('127.0.0.1', port, route('c'), 't');
    held.push(c);
    expect((await get(port, '/callback?state=c&code=y')).status).toBe(200);
    expect((await get(port, '/callback?state=b&code=x')).status).toBe(400);
  });

  it('gives a login without a fixed port an ephemeral listener of its own', async () => {
    const router = new CallbackRouter();
    const a = await router.register('127.0.0.1', 0, route('a'), 't');
    const b = await router.register('127.0.0.1', 0, route('b'), 't');
    held.push(a, b);
    expect(a.port).not.toBe(b.port);
    expect(router.listeners).toBe(0);
    expect((await get(a.port, '/callback?state=b')).status).toBe(400);
  });
});

import http from 'node:http';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ErrorCode, ProxyError } from '../protocol/errors.js';
import { guardHttpHandler, hardenHttpServer, type HttpHandler } from './http-guard.js';
import type { LogFields, LogLevel } from './logger.js';

const servers: http.Server[] = [];
let lines: Array<{ level: LogLevel; message: string; fields?: LogFields }> = [];
const logger = { log: (level: LogLevel, message: string, fields?: LogFields) => void lines.push({ level, message, ...(fields ? { fields } : {}) }) };
const uncaught: unknown[] = [];
const onUncaught = (err: unknown): void => void uncaught.push(err);

beforeEach(() => {
  lines = [];
  uncaught.length = 0;
  process.on('uncaughtException', onUncaught);
});
afterEach(async () => {
  process.off('uncaughtException', onUncaught);
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

async function serve(handler: HttpHandler): Promise<number> {
  const server = http.createServer(guardHttpHandler(handler, { name: 'test listener', logger }));
  hardenHttpServer(server, { name: 'test listener', logger });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

function raw(port: number, bytes: string): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    const s = net.connect(port, '127.0.0.1', () => s.write(bytes));
    s.on('data', (d: Buffer) => (text += d.toString('latin1')));
    s.on('error', () => undefined);
    s.on('close', () => resolve(text));
    setTimeout(() => s.destroy(), 2_000).unref();
  });
}

describe('guardHttpHandler', () => {
  it('answers 400 when the handler throws on a bad request target, and logs one line without it', async () => {
    const port = await serve((req) => {
      new URL(req.url ?? '/', 'http://127.0.0.1');
    });
    const text = await raw(port, 'GET //[secret-state HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    expect(text).toMatch(/^HTTP\/1\.1 400 /);
    expect(uncaught).toEqual([]);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 'warn', message: 'test listener: bad request', fields: { code: 'ERR_INVALID_URL' } });
    expect(JSON.stringify(lines)).not.toContain('secret-state');
  });

  it('answers 500 when an async handler rejects before writing, and keeps serving', async () => {
    let calls = 0;
    const port = await serve(async (_req, res) => {
      calls += 1;
      if (calls === 1) throw new Error('boom with a secret');
      res.end('fine');
    });
    expect((await fetch(`http://127.0.0.1:${port}/`)).status).toBe(500);
    const second = await fetch(`http://127.0.0.1:${port}/`);
    expect(await second.text()).toBe('fine');
    expect(lines).toEqual([{ level: 'error', message: 'test listener: request handler failed', fields: { method: 'GET', error: 'Error' } }]);
    expect(uncaught).toEqual([]);
  });

  it('answers 400 for a ProxyError INVALID_REQUEST, and cuts the connection when headers were already sent', async () => {
    const port = await serve(async (req, res) => {
      if (req.url === '/bad') throw new ProxyError(ErrorCode.INVALID_REQUEST, 'nope');
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('partial');
      throw new Error('late');
    });
    expect((await fetch(`http://127.0.0.1:${port}/bad`)).status).toBe(400);
    const text = await raw(port, 'GET /late HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(text).toMatch(/^HTTP\/1\.1 200 /);
    expect(text).toContain('partial');
    expect(uncaught).toEqual([]);
  });

  it('never throws itself, even when the logger does', async () => {
    const server = http.createServer(guardHttpHandler(() => { throw new Error('x'); }, { name: 'n', logger: { log: () => { throw new Error('logger down'); } } }));
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    expect((await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`)).status).toBe(500);
    expect(uncaught).toEqual([]);
  });
});

describe('hardenHttpServer', () => {
  it('answers malformed HTTP with 400 and closes the connection', async () => {
    const port = await serve((_req, res) => void res.end('ok'));
    const text = await raw(port, 'GET / HTTP/1.1\r\nNo Colon Here\r\n\r\n');
    expect(text).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    expect(lines.some((l) => l.message === 'test listener: malformed request')).toBe(true);
  });

  it('turns a server error after listen (as an accept failing with EMFILE emits) into a log line', async () => {
    const port = await serve((_req, res) => void res.end('ok'));
    const server = servers[0]!;
    server.emit('error', Object.assign(new Error('accept EMFILE'), { code: 'EMFILE' }));
    expect(lines).toContainEqual({ level: 'error', message: 'test listener: listener error', fields: { error: 'Error', code: 'EMFILE' } });
    expect((await fetch(`http://127.0.0.1:${port}/`)).status).toBe(200);
  });
});

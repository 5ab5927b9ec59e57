/**
 * A real HTTPS upstream for the routes tests: a throwaway CA made in the test (selfsigned, pure
 * JS), a node:https server on 127.0.0.1 with a certificate for localhost/127.0.0.1, and endpoints
 * that echo, stream, redirect and misbehave. It records every request it receives.
 */
import { createHash } from 'node:crypto';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import zlib from 'node:zlib';
import selfsigned from 'selfsigned';

export interface TestCa {
  caCert: string;
  key: string;
  cert: string;
}

/** A CA and a server certificate it signed, for localhost, 127.0.0.1 and ::1. */
export async function makeTestCa(): Promise<TestCa> {
  const ca = await selfsigned.generate([{ name: 'commonName', value: 'credproxy test CA' }], {
    keyType: 'ec',
    algorithm: 'sha256',
    extensions: [
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    ],
  });
  const leaf = await selfsigned.generate([{ name: 'commonName', value: 'localhost' }], {
    keyType: 'ec',
    algorithm: 'sha256',
    ca: { key: ca.private, cert: ca.cert },
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
      { name: 'extKeyUsage', serverAuth: true },
      {
        name: 'subjectAltName',
        altNames: [
          { type: 2, value: 'localhost' },
          { type: 7, ip: '127.0.0.1' },
          { type: 7, ip: '::1' },
        ],
      },
    ],
  });
  return { caCert: ca.cert, key: leaf.private, cert: leaf.cert };
}

export interface ReceivedRequest {
  method: string;
  url: string;
  headers: Record<string, string | string[] | undefined>;
  bodyBytes: number;
  bodySha256: string;
}

export interface TestUpstream {
  port: number;
  origin: string;
  received: ReceivedRequest[];
  /** Times (ms) at which /sse wrote its events. */
  sseWrites: number[];
  /** The bearer token /fresh-only accepts; anything else gets 401. */
  freshToken: string;
  close(): Promise<void>;
}

function encodeBody(body: Buffer, form: string | null): Buffer {
  switch (form) {
    case 'base64':
      return Buffer.from(body.toString('base64'));
    case 'base64url':
      return Buffer.from(body.toString('base64url'));
    case 'base64-shift1':
      return Buffer.from(Buffer.concat([Buffer.from('x'), body]).toString('base64'));
    case 'base64-shift2':
      return Buffer.from(Buffer.concat([Buffer.from('xy'), body]).toString('base64'));
    case 'percent':
      return Buffer.from(encodeURIComponent(body.toString('utf8')));
    default:
      return body;
  }
}

function compress(body: Buffer, enc: string | null): { body: Buffer; encoding?: string } {
  switch (enc) {
    case 'gzip':
      return { body: zlib.gzipSync(body), encoding: 'gzip' };
    case 'br':
      return { body: zlib.brotliCompressSync(body), encoding: 'br' };
    case 'deflate':
      return { body: zlib.deflateSync(body), encoding: 'deflate' };
    case 'zstd':
      // A coding the proxy cannot decode (so cannot scrub): labelled, not applied.
      return { body, encoding: 'zstd' };
    default:
      return { body };
  }
}

export interface TestUpstreamOptions {
  /**
   * Whether /resource accepts a request's Authorization header: a resource server that asks the
   * authorization server (token introspection) whether the bearer token is active.
   */
  accept?: (authorization: string | undefined) => Promise<boolean>;
}

export async function startTestUpstream(ca: TestCa, freshToken = 'fresh-access-token-0123456789abcdef', options: TestUpstreamOptions = {}): Promise<TestUpstream> {
  const received: ReceivedRequest[] = [];
  const sseWrites: number[] = [];
  const slow = new Set<() => void>();
  const server = https.createServer({ key: ca.key, cert: ca.cert }, (req, res) => {
    const url = new URL(req.url ?? '/', 'https://upstream');
    const hash = createHash('sha256');
    const chunks: Buffer[] = [];
    let bodyBytes = 0;
    const keep = url.pathname !== '/upload';
    req.on('data', (c: Buffer) => {
      bodyBytes += c.length;
      hash.update(c);
      if (keep) chunks.push(c);
    });
    req.on('end', () => {
      received.push({ method: req.method ?? '', url: req.url ?? '', headers: { ...req.headers }, bodyBytes, bodySha256: hash.digest('hex') });
      const body = Buffer.concat(chunks);
      const q = url.searchParams;
      const port = (server.address() as AddressInfo).port;
      switch (url.pathname) {
        case '/echo':
        case '/v1/echo': {
          const json = Buffer.from(JSON.stringify({ method: req.method, url: req.url, headers: req.headers, body: body.toString('utf8') }));
          const out = compress(encodeBody(json, q.get('form')), q.get('enc'));
          const auth = String(req.headers['x-api-key'] ?? req.headers.authorization ?? '');
          const headers: Record<string, string | string[]> = {
            'content-type': 'application/json',
            'content-length': String(out.body.length),
            // Echo the credential in headers, in its encodings, too.
            'x-echo-auth': auth,
            'x-echo-auth-b64': Buffer.from(auth).toString('base64'),
            'set-cookie': [`k=${encodeURIComponent(auth)}; Path=/`, `b=${Buffer.from(auth).toString('base64url')}`],
            'www-authenticate': `Bearer realm="${auth}"`,
            'x-credproxy-error': 'FORGED',
          };
          if (out.encoding) headers['content-encoding'] = out.encoding;
          res.writeHead(200, headers);
          res.end(out.body);
          return;
        }
        case '/sse': {
          res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
          res.write('event: first\ndata: {"n": 1}\n\n');
          sseWrites.push(Date.now());
          const t = setTimeout(() => {
            res.write('event: second\ndata: {"n": 2}\n\n');
            sseWrites.push(Date.now());
            res.end();
          }, 300);
          res.on('close', () => clearTimeout(t));
          return;
        }
        case '/resource': {
          const authorization = req.headers.authorization;
          void (options.accept ?? (async () => false))(authorization).then(
            (ok) => {
              if (!ok) {
                res.writeHead(401, { 'content-type': 'application/json', 'www-authenticate': 'Bearer error="invalid_token"' });
                res.end('{"error": "invalid_token"}');
                return;
              }
              res.writeHead(200, { 'content-type': 'application/json' });
              res.end(JSON.stringify({ ok: true, authorization }));
            },
            () => res.writeHead(500).end(),
          );
          return;
        }
        case '/fresh-only': {
          if (req.headers.authorization !== `Bearer ${freshToken}`) {
            res.writeHead(401, { 'content-type': 'application/json', 'www-authenticate': 'Bearer error="invalid_token"' });
            res.end('{"error": "expired"}');
            return;
          }
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ ok: true, bodyBytes, sha256: received.at(-1)!.bodySha256 }));
          return;
        }
        case '/redirect': {
          const to = q.get('to') ?? 'abs';
          const location =
            to === 'abs' ? `https://127.0.0.1:${port}/target?x=1` : to === 'rel' ? '/target/rel' : 'https://elsewhere.example/x';
          res.writeHead(302, { location, 'content-length': '0' });
          res.end();
          return;
        }
        case '/large': {
          const total = Number(q.get('mb') ?? '1') * 1024 * 1024;
          const block = Buffer.alloc(64 * 1024, 'abcdefghijklmnopqrstuvwxyz0123456789\n');
          res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(total) });
          let sent = 0;
          const pump = (): void => {
            while (sent < total) {
              const n = Math.min(block.length, total - sent);
              sent += n;
              if (!res.write(n === block.length ? block : block.subarray(0, n))) return void res.once('drain', pump);
            }
            res.end();
          };
          pump();
          return;
        }
        case '/upload': {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ bodyBytes, sha256: received.at(-1)!.bodySha256 }));
          return;
        }
        case '/slow': {
          const done = (): void => {
            slow.delete(done);
            if (!res.writableEnded) res.end('late');
          };
          slow.add(done);
          setTimeout(done, 10_000).unref();
          return;
        }
        case '/v1/messages': {
          // Anthropic's Messages API, as far as its SDK needs: x-api-key required.
          const parsed = JSON.parse(body.toString('utf8') || '{}') as { model?: string };
          if (req.headers['x-api-key'] === undefined) {
            res.writeHead(401, { 'content-type': 'application/json' });
            res.end('{"type":"error","error":{"type":"authentication_error","message":"x-api-key header is required"}}');
            return;
          }
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(
            JSON.stringify({
              id: 'msg_1',
              type: 'message',
              role: 'assistant',
              model: parsed.model,
              content: [{ type: 'text', text: 'Hello from upstream' }],
              stop_reason: 'end_turn',
              stop_sequence: null,
              usage: { input_tokens: 1, output_tokens: 3 },
            }),
          );
          return;
        }
        case '/v1/chat/completions': {
          const parsed = JSON.parse(body.toString('utf8') || '{}') as { stream?: boolean; model?: string };
          if (req.headers.authorization === undefined) {
            res.writeHead(401).end();
            return;
          }
          if (parsed.stream) {
            res.writeHead(200, { 'content-type': 'text/event-stream' });
            for (const word of ['Hello', ' from', ' upstream']) {
              res.write(
                `data: ${JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', created: 1, model: parsed.model, choices: [{ index: 0, delta: { content: word }, finish_reason: null }] })}\n\n`,
              );
            }
            res.end('data: [DONE]\n\n');
            return;
          }
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(
            JSON.stringify({
              id: 'chatcmpl-1',
              object: 'chat.completion',
              created: 1,
              model: parsed.model,
              choices: [{ index: 0, message: { role: 'assistant', content: 'Hello from upstream' }, finish_reason: 'stop' }],
              usage: { prompt_tokens: 1, completion_tokens: 3, total_tokens: 4 },
            }),
          );
          return;
        }
        default:
          res.writeHead(404, { 'content-type': 'text/plain' });
          res.end('no such endpoint');
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    origin: `https://127.0.0.1:${port}`,
    received,
    sseWrites,
    freshToken,
    close: async () => {
      for (const done of [...slow]) done();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

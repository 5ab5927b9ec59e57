/**
 * Compatibility with llxprt-code's sandbox client (protocol v2), written from its observed
 * behaviour: it sends the handshake without an id and takes the first frame it receives as the
 * answer, reads only data.version (falling back to v1 without it), checks every answer's shape
 * (ok boolean, data an object), maps exactly NOT_FOUND to "no token/key", needs token_type
 * "Bearer"/"bearer" and a numeric expiry in seconds, and reads its capability token from fd 3 as
 * 64 lowercase hex characters plus one newline.
 */
import net from 'node:net';
import path from 'node:path';
import { ProxyClient, resolvePaths, startProxy, type RunningProxy } from '@credproxy/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { removeTempDirs, tempDir } from '../support/temp.js';

/** A client that behaves the way llxprt's does (not its code). */
class LlxprtLikeClient {
  #socket!: net.Socket;
  #buffer = Buffer.alloc(0);
  #handshakeWaiter: ((frame: any) => void) | undefined;
  #pending = new Map<string, (frame: any) => void>();
  #next = 0;
  version = 1;

  static async connect(socketPath: string, capabilityToken?: string): Promise<LlxprtLikeClient> {
    const c = new LlxprtLikeClient();
    c.#socket = net.connect(socketPath);
    await new Promise<void>((resolve, reject) => c.#socket.once('connect', resolve).once('error', reject));
    c.#socket.on('data', (chunk: Buffer) => c.#onData(chunk));
    const payload: Record<string, unknown> = { minVersion: 1, maxVersion: 2 };
    if (capabilityToken) payload.capabilityToken = capabilityToken;
    const answer = await new Promise<any>((resolve) => {
      c.#handshakeWaiter = resolve;
      c.#write({ v: 2, op: 'handshake', payload });
    });
    LlxprtLikeClient.assertShape(answer);
    if (answer.ok !== true) {
      throw new Error(answer.code === 'UNAUTHORIZED' ? `Credential proxy authentication failed: ${answer.error}` : `Handshake failed [${answer.code}]: ${answer.error}`);
    }
    c.version = typeof answer.data?.version === 'number' ? answer.data.version : 1;
    return c;
  }

  static assertShape(frame: any): void {
    if (typeof frame !== 'object' || frame === null || typeof frame.ok !== 'boolean') throw new Error('Malformed response');
    if ('data' in frame && (typeof frame.data !== 'object' || frame.data === null || Array.isArray(frame.data))) throw new Error('Malformed response');
    if ('code' in frame && typeof frame.code !== 'string') throw new Error('Malformed response');
    if ('error' in frame && typeof frame.error !== 'string') throw new Error('Malformed response');
    if ('retryAfter' in frame && typeof frame.retryAfter !== 'number') throw new Error('Malformed response');
  }

  #write(obj: unknown): void {
    const body = Buffer.from(JSON.stringify(obj));
    const head = Buffer.alloc(4);
    head.writeUInt32BE(body.length);
    this.#socket.write(Buffer.concat([head, body]));
  }

  #onData(chunk: Buffer): void {
    this.#buffer = Buffer.concat([this.#buffer, chunk]);
    while (this.#buffer.length >= 4) {
      const len = this.#buffer.readUInt32BE(0);
      if (this.#buffer.length < 4 + len) return;
      const frame = JSON.parse(this.#buffer.subarray(4, 4 + len).toString('utf8'));
      this.#buffer = this.#buffer.subarray(4 + len);
      if (this.#handshakeWaiter) {
        const w = this.#handshakeWaiter;
        this.#handshakeWaiter = undefined;
        w(frame);
        continue;
      }
      const waiter = typeof frame.id === 'string' ? this.#pending.get(frame.id) : undefined;
      if (waiter) {
        this.#pending.delete(frame.id);
        waiter(frame);
      }
    }
  }

  async request(op: string, payload: Record<string, unknown>): Promise<any> {
    const id = `req-${++this.#next}-${Math.random().toString(16).slice(2)}`;
    const frame = await new Promise<any>((resolve) => {
      this.#pending.set(id, resolve);
      this.#write({ v: this.version, id, op, payload });
    });
    LlxprtLikeClient.assertShape(frame);
    return frame;
  }

  /** The token store's getToken: null for NOT_FOUND, throw for any other error. */
  async getToken(provider: string, bucket?: string): Promise<Record<string, unknown> | null> {
    const payload: Record<string, unknown> = { provider };
    if (bucket !== undefined) payload.bucket = bucket;
    const frame = await this.request('get_token', payload);
    if (!frame.ok) {
      if (frame.code === 'NOT_FOUND') return null;
      throw new Error(frame.error ?? 'proxy error');
    }
    const t = frame.data;
    if (typeof t.access_token !== 'string' || typeof t.expiry !== 'number' || (t.token_type !== 'Bearer' && t.token_type !== 'bearer')) {
      throw new Error('PROXY_PAYLOAD_ERROR: get_token');
    }
    return t;
  }

  async getApiKey(name: string): Promise<string | null> {
    const frame = await this.request('get_api_key', { name });
    if (!frame.ok) {
      if (frame.code === 'NOT_FOUND') return null;
      throw new Error(frame.error);
    }
    return frame.data.key;
  }

  close(): void {
    this.#socket.destroy();
  }
}

/** Read a capability token the way llxprt reads fd 3: exactly 64 lowercase hex + one newline. */
function parseFd3(content: string): string {
  if (!/^[0-9a-f]{64}\n$/.test(content)) throw new Error('invalid capability token on fd 3');
  return content.slice(0, 64);
}

let proxy: RunningProxy;
let owner: ProxyClient;
let agentToken: string;

beforeAll(async () => {
  const dir = await tempDir('cpx-');
  proxy = await startProxy({
    paths: resolvePaths({ env: { CREDPROXY_DATA_DIR: path.join(dir, 'd'), CREDPROXY_CONFIG: path.join(dir, 'c.json') }, socketPath: path.join(dir, 's.sock') }),
  });
  owner = await ProxyClient.connect({ socketPath: proxy.socketPath });
  const expiry = Math.floor(Date.now() / 1000) + 3600;
  await owner.call('save_token', { provider: 'qwen', token: { access_token: 'qwen-at', refresh_token: 'qwen-rt', expiry, resource_url: 'portal.qwen.ai' } });
  await owner.call('save_token', { provider: 'anthropic', bucket: 'work', token: { access_token: 'ant-at', refresh_token: 'ant-rt', expiry } });
  await owner.call('set_api_key', { name: 'openai', key: 'sk-openai-value' });
  const added = await owner.call('client_add', { name: 'sandbox', scopes: [{ provider: 'qwen' }, { provider: 'anthropic' }], api_keys: ['openai'] });
  // The host hands it over as `exec 3<<<"$token"`: a here-string adds exactly one newline.
  agentToken = parseFd3(`${added.capability_token}\n`);
});

afterAll(async () => {
  owner?.close();
  await proxy?.stop();
  await removeTempDirs();
});

describe('llxprt-code sandbox client compatibility', () => {
  it('negotiates v2 from a handshake without an id, as the first frame', async () => {
    const c = await LlxprtLikeClient.connect(proxy.socketPath, agentToken);
    expect(c.version).toBe(2);
    c.close();
  });

  it('serves the token store: tokens without refresh_token, provider fields passed through, null for missing', async () => {
    const c = await LlxprtLikeClient.connect(proxy.socketPath, agentToken);
    const token = await c.getToken('qwen');
    expect(token).toMatchObject({ access_token: 'qwen-at', token_type: 'Bearer', resource_url: 'portal.qwen.ai' });
    expect(token).not.toHaveProperty('refresh_token');
    expect((await c.getToken('anthropic', 'work'))?.access_token).toBe('ant-at');
    // In scope but never logged in: the store sees "no token", not an error.
    expect(await c.getToken('anthropic', 'personal')).toBeNull();
    const buckets = await c.request('list_buckets', { provider: 'anthropic' });
    expect(buckets.data).toEqual({ buckets: ['work'] });
    const providers = await c.request('list_providers', {});
    expect(providers.data.providers).toEqual(['anthropic', 'qwen']);
    const stats = await c.request('get_bucket_stats', { provider: 'anthropic', bucket: 'work' });
    expect(stats.data).toMatchObject({ bucket: 'work', requestCount: 1, percentage: expect.any(Number), lastUsed: expect.any(Number) });
    c.close();
  });

  it('serves the key store: get, list, missing key is null', async () => {
    const c = await LlxprtLikeClient.connect(proxy.socketPath, agentToken);
    expect(await c.getApiKey('openai')).toBe('sk-openai-value');
    expect((await c.request('list_api_keys', {})).data).toEqual({ keys: ['openai'] });
    c.close();
    // The owner (no token) sees a missing key as null too.
    const o = await LlxprtLikeClient.connect(proxy.socketPath);
    expect(await o.getApiKey('nope')).toBeNull();
    expect((await o.request('has_api_key', { name: 'openai' })).data).toEqual({ exists: true });
    o.close();
  });

  it('fails the handshake with its UNAUTHORIZED message for a wrong token', async () => {
    await expect(LlxprtLikeClient.connect(proxy.socketPath, 'f'.repeat(64))).rejects.toThrow(/^Credential proxy authentication failed: /);
  });

  it('accepts the cancel it sends on timeout, fire and forget', async () => {
    const c = await LlxprtLikeClient.connect(proxy.socketPath, agentToken);
    const answer = await c.request('cancel', { targetId: 'not-in-flight' });
    expect(answer).toMatchObject({ ok: true, data: { cancelled: false } });
    c.close();
  });

  it('answers every op in the shape its schema check accepts, even errors', async () => {
    const c = await LlxprtLikeClient.connect(proxy.socketPath, agentToken);
    for (const [op, payload] of [
      ['save_token', { provider: 'qwen', token: { access_token: 'x' } }],
      ['remove_token', { provider: 'qwen' }],
      ['has_api_key', { name: 'openai' }],
      ['get_token', { provider: 'github' }],
      ['unknown_op', {}],
    ] as const) {
      const frame = await c.request(op, payload);
      expect(frame.ok).toBe(false);
      expect(typeof frame.code).toBe('string');
    }
    c.close();
  });
});

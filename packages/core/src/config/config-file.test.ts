import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { addProviderToConfig, ConfigError, ConfigSource, locateJsonError, parseConfig, removeProviderFromConfig } from './config-file.js';

const F = '/x/config.json';
const base = { client_id: 'cli', issuer: 'https://id.example.com' };

function providers(p: Record<string, unknown>): string {
  return JSON.stringify({ providers: p });
}

describe('parseConfig', () => {
  it('reads a provider with defaults', () => {
    const c = parseConfig(providers({ gh: base }), F);
    expect(c.providers.get('gh')).toMatchObject({ name: 'gh', client_id: 'cli', flow: 'pkce_redirect', scopes: [], extra_auth_params: {} });
    expect(c.session_ttl_seconds).toBe(600);
  });

  it.each([
    ['plain http off loopback', { ...base, issuer: 'http://id.example.com' }, /providers\.gh\.issuer .*only loopback hosts may use http/],
    ['missing client_id', { issuer: base.issuer }, /providers\.gh\.client_id is missing/],
    ['no issuer nor endpoints', { client_id: 'x' }, /needs either "issuer"/],
    ['unknown flow', { ...base, flow: 'magic' }, /providers\.gh\.flow must be one of pkce_redirect, device_code, browser_redirect/],
    ['bad scopes', { ...base, scopes: 'openid email' }, /providers\.gh\.scopes must be an array/],
    ['bad port', { ...base, callback_port: 70000 }, /callback_port must be a port number/],
    ['paste flow without redirect', { ...base, flow: 'browser_redirect' }, /redirect_uri is required for the browser_redirect flow/],
    ['non-string extra params', { ...base, extra_auth_params: { prompt: 1 } }, /extra_auth_params must be an object of string values/],
  ])('refuses %s, naming file and field', (_name, provider, message) => {
    expect(() => parseConfig(providers({ gh: provider }), F)).toThrow(ConfigError);
    expect(() => parseConfig(providers({ gh: provider }), F)).toThrow(message);
    expect(() => parseConfig(providers({ gh: provider }), F)).toThrow(/^\/x\/config\.json: /);
  });

  it('accepts http on loopback hosts', () => {
    for (const host of ['127.0.0.1:8080', 'localhost:9', '[::1]:1']) {
      expect(() => parseConfig(providers({ gh: { ...base, issuer: `http://${host}` } }), F)).not.toThrow();
    }
  });

  it('refuses bad provider names and bad JSON', () => {
    expect(() => parseConfig(providers({ '../x': base }), F)).toThrow(/not a valid provider name/);
    expect(() => parseConfig('{', F)).toThrow(/is not valid JSON/);
    expect(() => parseConfig('[]', F)).toThrow(/must hold a JSON object/);
  });
});

describe('config file editing and reload', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(path.join(os.tmpdir(), 'cpc-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('adds and removes providers atomically with mode 0600, and the source sees each change', async () => {
    const file = path.join(dir, 'sub', 'config.json');
    const source = new ConfigSource(file);
    expect((await source.get()).providers.size).toBe(0);
    await addProviderToConfig(file, { name: 'gh', client_id: 'c', issuer: 'https://id.example.com', scopes: ['openid'], flow: 'device_code', extra_auth_params: {} });
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual({ providers: { gh: { client_id: 'c', issuer: 'https://id.example.com', scopes: ['openid'], flow: 'device_code' } } });
    expect((await source.get()).providers.get('gh')?.flow).toBe('device_code');
    expect(await removeProviderFromConfig(file, 'gh')).toBe(true);
    expect(await removeProviderFromConfig(file, 'gh')).toBe(false);
    expect((await source.get()).providers.size).toBe(0);
  });

  it('never writes an edit that would not parse', async () => {
    const file = path.join(dir, 'config.json');
    writeFileSync(file, providers({ ok: base }));
    await expect(addProviderToConfig(file, { name: 'bad', client_id: 'c', issuer: 'http://evil.example', scopes: [], flow: 'pkce_redirect', extra_auth_params: {} })).rejects.toThrow(/only loopback/);
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual({ providers: { ok: base } });
  });
});

describe('syntax errors never quote the file (issue 9, item 11)', () => {
  const SECRET = 'S3CRET-q7v9w2';
  // Each is broken right at or next to the secret, where JSON.parse's excerpt would quote it.
  // `at` is the offset of the error: it must be reported as a line and column.
  const bare = `{"providers": {"gh": {"client_id": "c", "client_secret": ${SECRET}}}}`;
  const comma = `{"providers": {"gh": {"client_secret": "${SECRET}" "client_id": "c"}}}`;
  const unterminated = `{"providers": {"gh": {\n  "client_secret": "${SECRET}`;
  const newline = `{"providers": {"gh": {\n  "client_secret": "${SECRET}\n"}}}`;
  const trailing = `{\n"providers": {"gh": {"client_secret": "${SECRET}",}}}`;
  const second = `{"a": 1}\n{"client_secret": "${SECRET}"}`;
  it.each([
    ['a bare word', bare, bare.indexOf(SECRET)],
    ['a missing comma', comma, comma.indexOf('"client_id"')],
    ['an unterminated string', unterminated, unterminated.length],
    ['a raw newline in a string', newline, newline.indexOf(SECRET) + SECRET.length],
    ['a trailing comma', trailing, trailing.indexOf(',}') + 1],
    ['a second value', second, second.indexOf('\n') + 1],
  ])('%s: line and column, no content', (_name, text, at) => {
    const line = text.slice(0, at).split('\n').length;
    const column = at - text.lastIndexOf('\n', at - 1);
    const err = (() => {
      try {
        parseConfig(text, F);
      } catch (e) {
        return e as Error;
      }
      throw new Error('parsed');
    })();
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.message).toContain(`at line ${line}, column ${column}`);
    for (const fragment of [SECRET, SECRET.slice(0, 4), SECRET.slice(-4), 'client_s']) expect(err.message).not.toContain(fragment);
  });

  it('locates the errors JSON.parse finds, and finds none where it finds none', () => {
    expect(locateJsonError('{"a": [1, 2.5e3, -0, true, null, "\\u00e9\\n"]}')).toBeUndefined();
    expect(locateJsonError('')).toEqual({ line: 1, column: 1, problem: 'unexpected end of file' });
    expect(locateJsonError('{"a": 01}')).toMatchObject({ line: 1, column: 8 });
    expect(locateJsonError('\uFEFF{}')).toMatchObject({ line: 1, column: 1 });
  });

  it('editing a broken file reports it the same way', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'cpc-'));
    try {
      const file = path.join(dir, 'config.json');
      writeFileSync(file, `{"providers": {"gh": {"client_secret": ${SECRET}}}}`);
      const err = (await addProviderToConfig(file, { name: 'x', client_id: 'c', issuer: 'https://id.example.com', scopes: [], flow: 'pkce_redirect', extra_auth_params: {} }).catch((e: unknown) => e)) as Error;
      expect(err).toBeInstanceOf(ConfigError);
      expect(err.message).toContain('at line 1, column 40');
      expect(err.message).not.toContain(SECRET.slice(0, 4));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('reserved names (issue 9, item 12)', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(path.join(os.tmpdir(), 'cpc-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));
  const provider = (name: string) => ({ name, client_id: 'c', issuer: 'https://id.example.com', scopes: [], flow: 'pkce_redirect' as const, extra_auth_params: {} });

  it.each(['__proto__', 'constructor', 'prototype'])('adding provider %s is refused and leaves the file alone', async (name) => {
    const file = path.join(dir, 'config.json');
    writeFileSync(file, providers({ ok: base }));
    await expect(addProviderToConfig(file, provider(name))).rejects.toThrow(/reserved name/);
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual({ providers: { ok: base } });
  });

  it.each(['__proto__', 'constructor', 'prototype'])('a file with provider %s is refused, naming it', (name) => {
    // JSON.parse makes "__proto__" an own key, so the parser sees it and must refuse it.
    const text = `{"providers": {"ok": ${JSON.stringify(base)}, "${name}": ${JSON.stringify(base)}}}`;
    expect(() => parseConfig(text, F)).toThrow(new RegExp(`providers\\.${name} uses a reserved name`));
  });

  it('a top-level "__proto__" key changes no setting', () => {
    const c = parseConfig('{"__proto__": {"session_ttl_seconds": 1, "providers": {"gh": {"client_id": "c", "issuer": "https://id.example.com"}}}}', F);
    expect(c.session_ttl_seconds).toBe(600);
    expect(c.providers.size).toBe(0);
  });

  it('a hand-edited reserved provider can still be removed', async () => {
    const file = path.join(dir, 'config.json');
    writeFileSync(file, `{"providers": {"ok": ${JSON.stringify(base)}, "__proto__": ${JSON.stringify(base)}}}`);
    expect(await removeProviderFromConfig(file, '__proto__')).toBe(true);
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual({ providers: { ok: base } });
  });
});

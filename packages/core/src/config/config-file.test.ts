import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { addProviderToConfig, ConfigError, ConfigSource, parseConfig, removeProviderFromConfig } from './config-file.js';

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

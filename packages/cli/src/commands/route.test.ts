import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UsageError } from '../exit-codes.js';
import type { CliIO } from '../output.js';
import { handleRouteAdd, handleRouteList, handleRoutePresets, handleRouteRemove } from './route.js';

let dir: string;
let configFile: string;

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cpr-'));
  configFile = path.join(dir, 'config.json');
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function io(): CliIO & { out: () => string } {
  const out: string[] = [];
  return {
    stdout: { write: (s: string) => out.push(s) },
    stderr: { write: () => true },
    stdin: Readable.from([]),
    env: { CREDPROXY_CONFIG: configFile },
    out: () => out.join(''),
  };
}

describe('credproxy route', () => {
  it('add writes the config file (0600) next to what is there; list shows the preset applied', async () => {
    fs.writeFileSync(configFile, JSON.stringify({ providers: {}, session_ttl_seconds: 60 }));
    expect(await handleRouteAdd({ name: 'claude', preset: 'anthropic', apiKey: 'anthropic' }, io())).toBe(0);
    expect(await handleRouteAdd({ name: 'gh', preset: 'github', account: 'github:work', json: true }, io())).toBe(0);
    const raw = JSON.parse(fs.readFileSync(configFile, 'utf8'));
    expect(raw).toEqual({
      providers: {},
      session_ttl_seconds: 60,
      routes: { claude: { preset: 'anthropic', api_key: 'anthropic' }, gh: { preset: 'github', account: 'github:work' } },
    });
    expect(fs.statSync(configFile).mode & 0o777).toBe(0o600);
    const list = io();
    await handleRouteList({ json: true }, list);
    expect(JSON.parse(list.out())).toEqual({
      routes: [
        { name: 'claude', upstream: 'https://api.anthropic.com', header: 'x-api-key', format: '{}', preset: 'anthropic', api_key: 'anthropic' },
        { name: 'gh', upstream: 'https://api.github.com', header: 'authorization', format: 'Bearer {}', preset: 'github', account: 'github:work' },
      ],
    });
    const table = io();
    await handleRouteList({}, table);
    expect(table.out()).toMatch(/^ROUTE +UPSTREAM/);
    expect(table.out()).toContain('claude  https://api.anthropic.com  key anthropic');
  });

  it('refuses bad routes as usage errors naming the fix, and leaves the file as it was', async () => {
    const before = fs.readFileSync(configFile, 'utf8');
    await expect(handleRouteAdd({ name: 'x', upstream: 'http://api.example.com', apiKey: 'k' }, io())).rejects.toThrow(UsageError);
    await expect(handleRouteAdd({ name: 'x', upstream: 'http://api.example.com', apiKey: 'k' }, io())).rejects.toThrow(/plain http/);
    await expect(handleRouteAdd({ name: 'x', preset: 'nope', apiKey: 'k' }, io())).rejects.toThrow(/the presets are anthropic, openai/);
    await expect(handleRouteAdd({ name: 'x', preset: 'openai' }, io())).rejects.toThrow(/exactly one of --api-key/);
    await expect(handleRouteAdd({ name: 'x', apiKey: 'k' }, io())).rejects.toThrow(/--preset P .* or --upstream URL/);
    await expect(handleRouteAdd({ name: '__proto__', preset: 'openai', apiKey: 'k' }, io())).rejects.toThrow(/reserved name/);
    await expect(handleRouteAdd({ name: 'x', preset: 'openai', apiKey: 'k', header: 'host' }, io())).rejects.toThrow(/cannot be host/);
    expect(fs.readFileSync(configFile, 'utf8')).toBe(before);
  });

  it('remove deletes one route; an unknown name is a usage error', async () => {
    expect(await handleRouteRemove({ name: 'claude' }, io())).toBe(0);
    await expect(handleRouteRemove({ name: 'claude' }, io())).rejects.toThrow(/no route named claude/);
    expect(Object.keys(JSON.parse(fs.readFileSync(configFile, 'utf8')).routes)).toEqual(['gh']);
  });

  it('presets lists at least the SPEC presets', async () => {
    const out = io();
    await handleRoutePresets({ json: true }, out);
    const names = (JSON.parse(out.out()) as { presets: Array<{ name: string }> }).presets.map((p) => p.name);
    expect(names).toEqual(expect.arrayContaining(['anthropic', 'openai', 'gemini', 'github', 'github-git', 'groq', 'mistral', 'openrouter', 'xai', 'huggingface']));
  });
});

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProxyClient, resolvePaths, startProxy, type RunningProxy } from '@credproxy/core';
import { UsageError } from '../exit-codes.js';
import type { CliIO } from '../output.js';
import { handleKeyList, handleKeySet } from './key.js';

let dir: string;
let proxy: RunningProxy;
let socket: string;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cpk-'));
  const env = { CREDPROXY_DATA_DIR: path.join(dir, 'data'), CREDPROXY_CONFIG: path.join(dir, 'config.json') };
  socket = path.join(dir, 'run', 'p.sock');
  proxy = await startProxy({ paths: resolvePaths({ env, socketPath: socket }) });
});

afterAll(async () => {
  await proxy?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

function io(stdin: CliIO['stdin']): CliIO & { out: () => string; err: () => string } {
  const out: string[] = [];
  const err: string[] = [];
  return {
    stdout: { write: (s: string) => out.push(s) },
    stderr: { write: (s: string) => err.push(s) },
    stdin,
    env: {},
    out: () => out.join(''),
    err: () => err.join(''),
  };
}

async function storedKey(name: string): Promise<string> {
  const client = await ProxyClient.connect({ socketPath: socket });
  try {
    return (await client.call('get_api_key', { name })).key;
  } finally {
    client.close();
  }
}

describe('key set', () => {
  it('reads piped stdin and strips exactly one trailing newline', async () => {
    const term = io(Readable.from([Buffer.from('sk-piped\n'), Buffer.from('\n')]));
    expect(await handleKeySet({ name: 'piped', socket }, term)).toBe(0);
    expect(term.out()).toBe('saved API key piped\n');
    expect(await storedKey('piped')).toBe('sk-piped\n');
  });

  it('prints set_api_key data with --json', async () => {
    const term = io(Readable.from(['v\r\n']));
    await handleKeySet({ name: 'crlf', socket, json: true }, term);
    expect(JSON.parse(term.out())).toEqual({ saved: true });
    expect(await storedKey('crlf')).toBe('v');
  });

  it('refuses an empty value as a usage error', async () => {
    await expect(handleKeySet({ name: 'empty', socket }, io(Readable.from(['\n'])))).rejects.toThrow(UsageError);
  });

  it('prompts on a terminal with echo off and handles backspace', async () => {
    const stdin = Object.assign(new PassThrough(), { isTTY: true, rawModes: [] as boolean[], setRawMode(mode: boolean) { this.rawModes.push(mode); } });
    const term = io(stdin);
    const done = handleKeySet({ name: 'typed', socket }, term);
    stdin.write('sk-tx');
    stdin.write('\u007fyped\r');
    expect(await done).toBe(0);
    expect(stdin.rawModes).toEqual([true, false]);
    expect(term.err()).toBe('API key for typed: \n');
    expect(term.out()).toBe('saved API key typed\n');
    expect(await storedKey('typed')).toBe('sk-typed');
  });
});

describe('key list', () => {
  it('prints names only, one a line', async () => {
    const term = io(Readable.from([]));
    await handleKeyList({ socket }, term);
    expect(term.out().split('\n').filter(Boolean).sort()).toEqual(['crlf', 'piped', 'typed']);
    expect(term.out()).not.toContain('sk-');
  });
});

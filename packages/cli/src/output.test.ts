import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatClientList, clientAddNotice } from './commands/client.js';
import { formatLogout } from './commands/logout.js';
import { formatStatus } from './commands/status.js';
import { type CliIO, accountLabel, formatExpiry, formatLocalTime, formatRelative, formatTable, printResult } from './output.js';

function capture(): CliIO & { out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  return {
    out,
    err,
    stdout: { write: (s: string) => out.push(s) },
    stderr: { write: (s: string) => err.push(s) },
    stdin: process.stdin,
    env: {},
  };
}

const savedTz = process.env.TZ;
beforeAll(() => {
  process.env.TZ = 'UTC';
});
afterAll(() => {
  if (savedTz === undefined) delete process.env.TZ;
  else process.env.TZ = savedTz;
});

// 2026-11-23 12:00:00 UTC
const NOW_S = Date.UTC(2026, 10, 23, 12, 0, 0) / 1000;
const NOW_MS = NOW_S * 1000;

describe('printResult', () => {
  it('with --json prints exactly the data as one JSON document and nothing else', () => {
    const io = capture();
    const data = { version: '0.1.0', pid: 42, socket: '/tmp/s' };
    printResult(io, true, data, () => 'human\n');
    expect(JSON.parse(io.out.join(''))).toEqual(data);
    expect(io.out.join('').endsWith('}\n')).toBe(true);
    expect(io.err).toEqual([]);
  });
  it('without --json prints the human text', () => {
    const io = capture();
    printResult(io, false, { a: 1 }, (d) => `a is ${d.a}\n`);
    expect(io.out.join('')).toBe('a is 1\n');
  });
});

describe('times', () => {
  it.each([
    [42 * 60, 'in 42m'],
    [30, 'in 30s'],
    [-5 * 60, '5m ago'],
    [3 * 3600, 'in 3h'],
    [2 * 86_400, 'in 2d'],
  ])('%d s → %s', (seconds, text) => {
    expect(formatRelative(seconds)).toBe(text);
  });

  it('shows expiry as local time plus relative time', () => {
    expect(formatLocalTime(NOW_S)).toBe('2026-11-23 12:00');
    expect(formatExpiry(NOW_S + 42 * 60, NOW_MS)).toBe('2026-11-23 12:42 (in 42m)');
    expect(formatExpiry(undefined, NOW_MS)).toBe('-');
  });
});

describe('formatTable', () => {
  it('pads columns and trims trailing blanks', () => {
    expect(formatTable(['A', 'BB'], [['xxx', 'y'], ['z', '']])).toBe('A    BB\nxxx  y\nz\n');
  });
});

describe('accountLabel', () => {
  it('hides the default bucket', () => {
    expect(accountLabel('gh')).toBe('gh');
    expect(accountLabel('gh', 'default')).toBe('gh');
    expect(accountLabel('gh', 'work')).toBe('gh:work');
  });
});

describe('status', () => {
  it('says how to log in when there are no accounts', () => {
    expect(formatStatus({ accounts: [] })).toBe('no accounts — log in with `credproxy login PROVIDER`\n');
  });
  it('tables provider, bucket, state and expiry, and names the fix for needs_login', () => {
    const text = formatStatus(
      {
        accounts: [
          { provider: 'github', bucket: 'default', state: 'valid', expiry: NOW_S + 42 * 60 },
          { provider: 'acme', bucket: 'work', state: 'needs_login' },
        ],
      },
      NOW_MS,
    );
    expect(text).toBe(
      'PROVIDER  BUCKET   STATE        EXPIRES\n' +
        'github    default  valid        2026-11-23 12:42 (in 42m)\n' +
        'acme      work     needs_login  -\n' +
        'acme:work needs a new login — run `credproxy login acme --bucket work`\n',
    );
  });
});

describe('status with account names', () => {
  it('adds an ACCOUNT column once an account knows who it is', () => {
    const text = formatStatus({ accounts: [{ provider: 'github', bucket: 'default', state: 'valid', account: 'octocat' }, { provider: 'acme', bucket: 'work', state: 'valid' }] }, NOW_MS);
    expect(text.split('\n')[0]).toMatch(/^PROVIDER +BUCKET +ACCOUNT +STATE +EXPIRES$/);
    expect(text).toMatch(/^github +default +octocat +valid/m);
    expect(text).toMatch(/^acme +work +- +valid/m);
  });
});

describe('logout', () => {
  it('says whether the provider revoked the token, and why not', () => {
    expect(formatLogout('gh', { revoked: true })).toBe('logged out of gh (token revoked at the provider)\n');
    expect(formatLogout('gh:work', { revoked: false, reason: 'gh has no revocation endpoint' })).toBe(
      'logged out of gh:work (not revoked: gh has no revocation endpoint)\n',
    );
  });
});

describe('clients', () => {
  it('warns that the capability token is shown once and says how to pass it', () => {
    const text = clientAddNotice({ name: 'agent', capability_token: 'a'.repeat(64), socket: '/run/a.sock', expires_at: NOW_S + 3600 }, NOW_MS);
    expect(text).toContain('shown only once');
    expect(text).toContain('file descriptor 3');
    expect(text).toContain('socket for this client: /run/a.sock');
    expect(text).toContain('expires: 2026-11-23 13:00 (in 60m)');
    expect(text).not.toContain('a'.repeat(64));
  });
  it('lists clients with their scopes and rights', () => {
    const text = formatClientList(
      {
        clients: [
          { name: 'agent', scopes: [{ provider: 'gh' }, { provider: 'acme', bucket: 'work' }], api_keys: ['openai'], allow_login: false, allow_refresh: true },
          { name: 'ci', scopes: [], api_keys: [], allow_login: true, allow_refresh: false, socket: '/run/ci.sock', expires_at: NOW_S + 7200 },
        ],
      },
      NOW_MS,
    );
    expect(text).toBe(
      'NAME   ACCOUNTS      API KEYS  RIGHTS   SOCKET        EXPIRES\n' +
        'agent  gh,acme:work  openai    refresh  -             never\n' +
        'ci     -             -         login    /run/ci.sock  2026-11-23 14:00 (in 2h)\n',
    );
    expect(formatClientList({ clients: [] })).toMatch(/^no clients — add one with `credproxy client add/);
  });
});

import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { CREDPROXY_VERSION } from '@credproxy/core';
import { COMMANDS, main } from './main.js';
import type { CliIO } from './output.js';

const NO_PROXY = '/tmp/credproxy-test-no-such-dir/proxy.sock';

async function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const io: CliIO = {
    stdout: { write: (s: string) => out.push(s) },
    stderr: { write: (s: string) => err.push(s) },
    stdin: Readable.from([]),
    env: { CREDPROXY_SOCKET: NO_PROXY },
  };
  const code = await main(argv, io);
  return { code, out: out.join(''), err: err.join('') };
}

describe('main', () => {
  it('prints the version and exits 0', async () => {
    expect(await run(['--version'])).toEqual({ code: 0, out: `${CREDPROXY_VERSION}\n`, err: '' });
  });

  it('lists every command in --help', async () => {
    const { code, out } = await run(['--help']);
    expect(code).toBe(0);
    // Names starting with __ are the CLI's own plumbing (shell completion calls back into it).
    for (const c of COMMANDS.filter((c) => !c.name.startsWith('__'))) expect(out).toContain(c.name);
  });

  it('every command shows examples in its --help', async () => {
    for (const c of COMMANDS.filter((c) => !c.name.startsWith('__'))) {
      const { out } = await run([c.name, '--help']);
      expect(out, c.name).toContain('Examples:');
    }
  });

  it('a bare `credproxy` prints the help on stdout and exits 0', async () => {
    const { code, out, err } = await run([]);
    expect(code).toBe(0);
    expect(err).toBe('');
    expect(out).toContain('Usage: credproxy');
  });

  it('--help shows examples, the environment variables and the exit codes, login first, no "(default: [])"', async () => {
    const { out } = await run(['--help']);
    expect(out).toContain('Examples:');
    for (const name of ['CREDPROXY_SOCKET', 'CREDPROXY_CONFIG', 'CREDPROXY_DATA_DIR']) expect(out).toContain(name);
    expect(out).toMatch(/Exit codes:[\s\S]*3 pending[\s\S]*5 proxy not running[\s\S]*6 not logged in/);
    expect(out.indexOf('  login ')).toBeLessThan(out.indexOf('  serve '));
    const sub = await run(['client', 'add', '--help']);
    expect(sub.out).not.toContain('(default: [])');
    // The socket default as it really resolves here, not a formula.
    expect(sub.out.replace(/\s+/g, ' ')).toContain(`(default: ${NO_PROXY})`);
  });

  it('under --json an error is one JSON object on stderr with the same exit code', async () => {
    const down = await run(['token', 'github', '--json']);
    expect(down.code).toBe(5);
    expect(down.out).toBe('');
    expect(JSON.parse(down.err)).toEqual({ error: { code: 'UNAVAILABLE', message: expect.stringContaining('credproxy serve') } });
    const usage = await run(['token', 'github', '--json', '--no-such-option']);
    expect(usage.code).toBe(2);
    expect(JSON.parse(usage.err)).toEqual({ error: { code: 'USAGE', message: expect.stringContaining('--no-such-option') } });
  });

  it('every error line has the one prefix, commander\'s usage errors included', async () => {
    const { err } = await run(['frobnicate']);
    expect(err).toMatch(/^credproxy: /);
    expect(err).not.toMatch(/^error:/m);
  });

  it.each([
    [['frobnicate']],
    [['token']],
    [['token', 'gh', '--no-such-option']],
    [['key']],
    [['ping', 'extra']],
  ])('%j is a usage error (2), explained on stderr', async (argv) => {
    const { code, out, err } = await run(argv);
    expect(code).toBe(2);
    expect(out).toBe('');
    expect(err).toMatch(/^credproxy: |Usage/);
  });

  it.each([
    [['token', 'gh', '--min-valid', 'soon'], /--min-valid takes a whole number/],
    [['client', 'add', 'agent', '--ttl', '5w'], /invalid duration '5w'/],
    [['client', 'add', 'agent', '--provider', 'gh:'], /PROVIDER or PROVIDER:BUCKET/],
    [['exec', '--provider', 'gh', '--env', '1X', '--', 'true'], /invalid environment variable name '1X'/],
  ])('%j is refused as usage (2) before contacting the proxy', async (argv, message) => {
    const { code, err } = await run(argv);
    expect(code).toBe(2);
    expect(err).toMatch(message);
    expect(err).not.toContain('not running');
  });

  it.each([[['ping']], [['status']], [['token', 'gh']], [['key', 'list']], [['stop']], [['client', 'list']]])(
    '%j without a proxy exits 5 and names `credproxy serve`',
    async (argv) => {
      const { code, out, err } = await run(argv);
      expect(code).toBe(5);
      expect(out).toBe('');
      expect(err).toBe(`credproxy is not running on ${NO_PROXY} (no socket) — start it with \`credproxy serve\`\n`);
    },
  );
});

describe('serve without commander', () => {
  it('leaves every form but the plain ones (--detach, --socket P) to commander', async () => {
    const { runFast } = await import('./commands/serve.js');
    const io: CliIO = { stdout: { write: () => true }, stderr: { write: () => true }, stdin: Readable.from([]), env: { CREDPROXY_SOCKET: NO_PROXY } };
    for (const args of [['--help'], ['--socket'], ['--socket', '--detach'], ['--socket='], ['--detach', '--detach'], ['--bogus'], ['extra']]) {
      expect(runFast(args, io), args.join(' ')).toBeUndefined();
    }
  });
});

/**
 * `credproxy completion bash|zsh|fish` through the built CLI: the script each prints is loaded in
 * the real shell, completion is asked for as the shell would ask (bash: COMP_WORDS/COMP_CWORD and
 * the function `complete -F` names; zsh: the function with words/CURRENT and compadd recording;
 * fish: `complete -C`), and names come back from a running proxy through `credproxy __complete`.
 * zsh and fish run where they are installed.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, cleanup, makeLayout, run, startServe, type Layout } from './cli-harness.js';

let layout: Layout;
let shimDir: string;
const scripts: Record<'bash' | 'zsh' | 'fish', string> = { bash: '', zsh: '', fish: '' };

function has(shell: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${shell}`]).status === 0;
}

/** Bash's answer for the words typed so far (the last one is the word being completed). */
function bash(...words: string[]): string[] {
  const script = 'source "$SCRIPT"; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _credproxy; printf "%s\\n" "${COMPREPLY[@]}"';
  const r = spawnSync('bash', ['--norc', '--noprofile', '-c', script, 'bash', ...words], { env: { ...layout.env, SCRIPT: scripts.bash }, encoding: 'utf8', timeout: 20_000 });
  expect(r.stderr).toBe('');
  return r.stdout.split('\n').filter(Boolean);
}

/** zsh's candidates: compadd, _files and _command_names record what they were given; the prefix filter is compsys's, so it is applied here. */
function zsh(...words: string[]): string[] {
  const script = [
    'compdef() { : }',
    'compadd() { [[ $1 == -- ]] && shift; print -l -- "$@" }',
    '_files() { print -- "<files>" }',
    '_command_names() { print -- "<commands>" }',
    'source "$SCRIPT"',
    'words=("$@"); CURRENT=$#',
    '_credproxy',
  ].join('\n');
  const r = spawnSync('zsh', ['-f', '-c', script, 'zsh', ...words], { env: { ...layout.env, SCRIPT: scripts.zsh }, encoding: 'utf8', timeout: 20_000 });
  expect(r.stderr).toBe('');
  const prefix = words.at(-1) ?? '';
  return r.stdout.split('\n').filter((w) => w && (w.startsWith('<') || w.startsWith(prefix)));
}

/** fish's own completion engine on a command line. */
function fish(line: string): string[] {
  const r = spawnSync('fish', ['--no-config', '-c', 'source $SCRIPT; complete -C $LINE'], { env: { ...layout.env, SCRIPT: scripts.fish, LINE: line }, encoding: 'utf8', timeout: 20_000 });
  expect(r.stderr).toBe('');
  return r.stdout.split('\n').filter(Boolean).map((l) => l.split('\t')[0]!);
}

beforeAll(async () => {
  layout = makeLayout();
  // `credproxy` on PATH, as installed: the scripts call back into the command the user typed.
  shimDir = path.join(layout.dir, 'bin');
  fs.mkdirSync(shimDir);
  fs.writeFileSync(path.join(shimDir, 'credproxy'), `#!/bin/sh\nexec "${process.execPath}" "${BIN}" "$@"\n`, { mode: 0o755 });
  layout.env.PATH = `${shimDir}${path.delimiter}${process.env.PATH ?? ''}`;
  fs.writeFileSync(
    layout.env.CREDPROXY_CONFIG!,
    JSON.stringify({
      providers: {
        demo: { issuer: 'http://127.0.0.1:9', client_id: 'x' },
        work: { issuer: 'http://127.0.0.1:9', client_id: 'y' },
      },
      routes: { openai: { preset: 'openai', api_key: 'openai' }, anthropic: { preset: 'anthropic', api_key: 'anthropic' } },
    }),
    { mode: 0o600 },
  );
  for (const shell of ['bash', 'zsh', 'fish'] as const) {
    const r = await run(layout, ['completion', shell]);
    expect(r.code).toBe(0);
    scripts[shell] = path.join(layout.dir, `completion.${shell}`);
    fs.writeFileSync(scripts[shell], r.stdout);
  }
});

afterAll(cleanup);

describe('names from the proxy: credproxy __complete', () => {
  it('with the proxy down prints config providers and routes, and nothing else, always exit 0 and silent', async () => {
    const providers = await run(layout, ['__complete', 'providers']);
    expect(providers).toMatchObject({ code: 0, stdout: 'demo\nwork\n', stderr: '' });
    const routes = await run(layout, ['__complete', 'routes']);
    expect(routes).toMatchObject({ code: 0, stdout: 'anthropic\nopenai\n', stderr: '' });
    for (const kind of ['clients', 'keys', 'nonsense']) {
      expect(await run(layout, ['__complete', kind])).toMatchObject({ code: 0, stdout: '', stderr: '' });
    }
    expect(bash('credproxy', 'login', '')).toEqual(['demo', 'work']);
    expect(bash('credproxy', 'key', 'get', '')).toEqual([]);
  });

  it('does not load the server (only the client part of core)', () => {
    const hooks = path.join(layout.dir, 'hooks.mjs');
    const seen = path.join(layout.dir, 'loaded.txt');
    fs.writeFileSync(
      hooks,
      `import fs from 'node:fs';\nexport async function load(url, context, next) { fs.appendFileSync(${JSON.stringify(seen)}, url + '\\n'); return next(url, context); }\n`,
    );
    const register = `data:text/javascript,${encodeURIComponent(`import { register } from 'node:module'; register(${JSON.stringify('file://' + hooks)});`)}`;
    const r = spawnSync(process.execPath, ['--import', register, BIN, '__complete', 'routes'], { env: layout.env, encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('anthropic\nopenai\n');
    const loaded = fs.readFileSync(seen, 'utf8');
    expect(loaded).toContain('/packages/cli/dist/bin.js');
    expect(loaded).not.toMatch(/packages\/core\/dist\/(index|server\/)/);
    expect(loaded).not.toMatch(/node_modules\/(oauth4webapi|undici|ioredis|koffi)\//);
  });
});

describe('bash', () => {
  let serve: Awaited<ReturnType<typeof startServe>>;
  beforeAll(async () => {
    serve = await startServe(layout);
    expect((await run(layout, ['key', 'set', 'openai'], { input: 'sk-completion-test-key\n' })).code).toBe(0);
    expect((await run(layout, ['key', 'set', 'anthropic'], { input: 'sk-ant-completion-test\n' })).code).toBe(0);
    const add = await run(layout, ['client', 'add', 'agent-one', '--provider', 'demo']);
    expect(add.code, add.stderr).toBe(0);
  });
  afterAll(() => {
    serve?.child.kill('SIGTERM');
  });

  it('completes command words from the program tree (hidden __complete left out)', () => {
    const top = bash('credproxy', '');
    for (const word of ['login', 'token', 'doctor', 'service', 'completion', 'key', 'route']) expect(top).toContain(word);
    expect(top).not.toContain('__complete');
    expect(bash('credproxy', 'ser')).toEqual(['serve', 'service']);
    expect(bash('credproxy', 'service', '')).toEqual(['install', 'uninstall', 'status']);
    expect(bash('credproxy', 'key', 'r')).toEqual(['remove']);
  });

  it('completes options, and the fixed values of an option or argument', () => {
    expect(bash('credproxy', 'service', 'install', '--')).toEqual(['--dry-run', '--socket', '--help']);
    expect(bash('credproxy', 'doctor', '--j')).toEqual(['--json']);
    expect(bash('credproxy', 'login', '--flow', 'd')).toEqual(['device_code']);
    expect(bash('credproxy', 'completion', '')).toEqual(['bash', 'zsh', 'fish']);
  });

  it('completes provider, client, key and route names from the running proxy (and routes from the config)', () => {
    expect(bash('credproxy', 'login', '')).toEqual(['demo', 'work']);
    expect(bash('credproxy', 'token', '--bucket', 'x', 'w')).toEqual(['work']);
    expect(bash('credproxy', 'exec', '--provider', '')).toEqual(['demo', 'work']);
    expect(bash('credproxy', 'key', 'get', '')).toEqual(['anthropic', 'openai']);
    expect(bash('credproxy', 'exec', '--api-key', 'o')).toEqual(['openai']);
    expect(bash('credproxy', 'client', 'remove', '')).toEqual(['agent-one']);
    expect(bash('credproxy', 'route', 'remove', '')).toEqual(['anthropic', 'openai']);
    expect(bash('credproxy', 'client', 'add', 'x', '--route', 'a')).toEqual(['anthropic']);
    // A new name is not completed from the existing ones.
    expect(bash('credproxy', 'client', 'add', '')).toEqual([]);
  });

  it('after `exec ... --`: a command first, then paths', () => {
    expect(bash('credproxy', 'exec', '--provider', 'demo', '--', 'ech')).toContain('echo');
    fs.writeFileSync(path.join(layout.dir, 'unique-file-for-completion'), '');
    expect(bash('credproxy', 'exec', '--', 'cat', path.join(layout.dir, 'unique-file-for'))).toEqual([path.join(layout.dir, 'unique-file-for-completion')]);
  });

  it.runIf(has('zsh'))('zsh: the same walk, names from the proxy', () => {
    expect(zsh('credproxy', 'ser')).toEqual(['serve', 'service']);
    expect(zsh('credproxy', 'key', 'get', '')).toEqual(['anthropic', 'openai']);
    expect(zsh('credproxy', 'client', 'remove', '')).toEqual(['agent-one']);
    expect(zsh('credproxy', 'login', '--flow', '')).toEqual(['pkce_redirect', 'device_code', 'browser_redirect']);
    expect(zsh('credproxy', 'login', '--socket', '')).toEqual(['<files>']);
    expect(zsh('credproxy', 'exec', '--', '')).toEqual(['<commands>']);
  });

  it.runIf(has('zsh'))('zsh: the real completion system (compinit) in an interactive zsh on a pty lists the candidates', () => {
    const typed = (line: string): string => {
      const driver = [
        'zmodload zsh/zpty',
        'zpty z zsh -f -i',
        'zpty -w z \'PS1="> "; autoload -U compinit; compinit -u -D; source "$SCRIPT"\'',
        'sleep 1',
        `zpty -w -n z $'${line}\\t'`,
        'sleep 1',
        "zpty -w -n z $'\\t'",
        'sleep 1.5',
        "out=''",
        'while zpty -r -t z chunk 2>/dev/null; do out+=$chunk; done',
        'print -r -- "$out"',
        'zpty -d z',
      ].join('\n');
      const r = spawnSync('zsh', ['-f', '-c', driver], { env: { ...layout.env, SCRIPT: scripts.zsh }, encoding: 'utf8', timeout: 30_000 });
      // What the terminal showed, without escape sequences.
      return r.stdout.replace(/\x1b\[[0-9;?]*[a-zA-Z]/g, '').replace(/\r/g, '\n');
    };
    expect(typed('credproxy service ')).toMatch(/install\s+status\s+uninstall/);
    expect(typed('credproxy client remove ')).toContain('credproxy client remove agent-one');
  });

  it.runIf(has('fish'))('fish: complete -C gives the same candidates', () => {
    expect(fish('credproxy ser')).toEqual(['serve', 'service']);
    expect(fish('credproxy service ').sort()).toEqual(['install', 'status', 'uninstall']);
    expect(fish('credproxy route remove ').sort()).toEqual(['anthropic', 'openai']);
    expect(fish('credproxy key get ').sort()).toEqual(['anthropic', 'openai']);
    expect(fish('credproxy login --flow ').sort()).toEqual(['browser_redirect', 'device_code', 'pkce_redirect']);
  });
});

describe('the scripts where the shell is missing', () => {
  it('each one is produced and is valid syntax for its shell (checked with the shell when installed)', () => {
    expect(fs.readFileSync(scripts.bash, 'utf8')).toMatch(/^complete -F _credproxy credproxy$/m);
    expect(fs.readFileSync(scripts.zsh, 'utf8')).toMatch(/^#compdef credproxy$/m);
    expect(fs.readFileSync(scripts.fish, 'utf8')).toMatch(/^complete -c credproxy -f -a '\(__credproxy_complete\)'$/m);
    expect(spawnSync('bash', ['-n', scripts.bash]).status).toBe(0);
    if (has('zsh')) expect(spawnSync('zsh', ['-n', scripts.zsh]).status).toBe(0);
    if (has('fish')) expect(spawnSync('fish', ['--no-execute', scripts.fish]).status).toBe(0);
  });

  it('an unknown shell is a usage error naming the three', async () => {
    const r = await run(layout, ['completion', 'tcsh']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('bash, zsh, fish');
  });
});

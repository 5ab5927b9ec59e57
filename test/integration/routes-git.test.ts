/**
 * git over https through a route (SPEC §6, the README recipe): a real `git http-backend` behind
 * HTTPS that wants GitHub's `Basic x-access-token:TOKEN`, the `github-git` preset pointed at it,
 * and the git CLI in the sandbox's place with `url.<listener>/github-git/.insteadOf
 * https://github.com/` and the capability token — clone and push, the token never on disk in
 * the clone and the real token never anywhere git can see it.
 */
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProxyClient, resolvePaths, startProxy, type RunningProxy } from '../../packages/core/src/index.js';
import { startGitUpstream, type GitUpstream } from '../support/git-https-upstream.js';
import { makeTestCa } from '../support/https-upstream.js';
import { removeTempDirs, tempDir } from '../support/temp.js';

const execFileP = promisify(execFile);
const GITHUB_TOKEN = 'ghp_REALTOKEN0123456789abcdefABCDEF0123';
const haveGit = await execFileP('git', ['--version']).then(() => true, () => false);

let dir: string;
let git: GitUpstream;
let proxy: RunningProxy;
let owner: ProxyClient;
let token: string;
let listener: string;
const outputs: string[] = [];

/** git with no config but ours: no credential helper, no prompt, no system or global config. */
async function runGit(args: string[], cwd = dir): Promise<{ stdout: string; stderr: string }> {
  const env = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: dir,
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_GLOBAL: path.join(dir, 'gitconfig'),
    GIT_TERMINAL_PROMPT: '0',
    GIT_AUTHOR_NAME: 't',
    GIT_AUTHOR_EMAIL: 't@example.com',
    GIT_COMMITTER_NAME: 't',
    GIT_COMMITTER_EMAIL: 't@example.com',
  };
  try {
    const out = await execFileP('git', args, { cwd, env });
    outputs.push(out.stdout, out.stderr);
    return out;
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string };
    outputs.push(e.stdout ?? '', e.stderr ?? '');
    throw err;
  }
}

beforeAll(async () => {
  if (!haveGit) throw new Error('git is a test prerequisite — install it (apt-get install git; .ci/run does)');
  dir = await tempDir('cprg-');
  const ca = await makeTestCa();
  const root = path.join(dir, 'srv');
  await fs.mkdir(path.join(root, 'owner'), { recursive: true });
  await runGit(['init', '-q', '--bare', '-b', 'main', path.join(root, 'owner', 'repo.git')]);
  await runGit(['-C', path.join(root, 'owner', 'repo.git'), 'config', 'http.receivepack', 'true']);
  const seed = path.join(dir, 'seed');
  await runGit(['init', '-q', '-b', 'main', seed]);
  await fs.writeFile(path.join(seed, 'README'), 'hello\n');
  await runGit(['-C', seed, 'add', 'README']);
  await runGit(['-C', seed, 'commit', '-q', '-m', 'first']);
  await runGit(['-C', seed, 'push', '-q', path.join(root, 'owner', 'repo.git'), 'main']);
  git = await startGitUpstream(ca, root, GITHUB_TOKEN);

  const configFile = path.join(dir, 'config.json');
  await fs.writeFile(configFile, JSON.stringify({ routes: { 'github-git': { preset: 'github-git', upstream: git.origin, api_key: 'github' } } }));
  const paths = resolvePaths({ env: { CREDPROXY_DATA_DIR: path.join(dir, 'data'), CREDPROXY_CONFIG: configFile }, socketPath: path.join(dir, 'run', 'p.sock') });
  proxy = await startProxy({ paths, upstream: { tls: { ca: ca.caCert } } });
  owner = await ProxyClient.connect({ socketPath: proxy.socketPath });
  await owner.call('set_api_key', { name: 'github', key: GITHUB_TOKEN });
  const added = await owner.call('client_add', { name: 'dev', scopes: [], routes: ['github-git'], http: '127.0.0.1:0' });
  token = added.capability_token;
  listener = `http://${added.http}`;
}, 30_000);

afterAll(async () => {
  owner?.close();
  await proxy?.stop();
  await git?.close();
  if (haveGit) {
    const everything = outputs.join('\n');
    expect(everything).not.toContain(GITHUB_TOKEN);
    expect(everything).not.toContain(Buffer.from(`x-access-token:${GITHUB_TOKEN}`).toString('base64'));
  }
  await removeTempDirs();
});

// git is a test prerequisite (README; .ci/run installs it): without it these fail, they do not skip.
describe('git over https through the github-git route', () => {
  it('clones and pushes with insteadOf and the token as an extra header', async () => {
    const cfg = ['-c', `url.${listener}/github-git/.insteadOf=https://github.com/`, '-c', `http.${listener}/.extraHeader=Authorization: Bearer ${token}`];
    const clone = path.join(dir, 'clone1');
    await runGit([...cfg, 'clone', '-q', 'https://github.com/owner/repo.git', clone]);
    expect(await fs.readFile(path.join(clone, 'README'), 'utf8')).toBe('hello\n');
    await fs.writeFile(path.join(clone, 'NEW'), 'pushed\n');
    await runGit(['-C', clone, 'add', 'NEW']);
    await runGit(['-C', clone, 'commit', '-q', '-m', 'second']);
    await runGit([...cfg, '-C', clone, 'push', '-q', 'origin', 'main']);
    const log = await runGit(['-C', path.join(dir, 'srv', 'owner', 'repo.git'), 'log', '--format=%s', 'main']);
    expect(log.stdout.trim().split('\n')).toEqual(['second', 'first']);
    // The upstream got GitHub's form of the real token on every request; the clone holds no token.
    expect(git.authorizations.every((a) => a === `Basic ${Buffer.from(`x-access-token:${GITHUB_TOKEN}`).toString('base64')}`)).toBe(true);
    const cloneConfig = await fs.readFile(path.join(clone, '.git', 'config'), 'utf8');
    expect(cloneConfig).not.toContain(token);
  });

  it('clones through the proxy form: http.proxy with the token as the proxy password, https:// rewritten to http://', async () => {
    // In real use: url.http://github.com/.insteadOf https://github.com/ — here the route's host.
    const clone = path.join(dir, 'clone2');
    const before = git.authorizations.length;
    await runGit([
      '-c', `http.proxy=http://x:${token}@${listener.slice('http://'.length)}`,
      '-c', `url.http://127.0.0.1:${git.port}/.insteadOf=https://github.com/`,
      'clone', '-q', 'https://github.com/owner/repo.git', clone,
    ]);
    expect(await fs.readFile(path.join(clone, 'README'), 'utf8')).toBe('hello\n');
    expect(git.authorizations.length).toBeGreaterThan(before);
  });

  it('the token as the password in the URL is not enough: git sends it only after a 401, and the proxy answers 407', async () => {
    await expect(
      runGit(['-c', `url.http://x:${token}@${listener.slice('http://'.length)}/github-git/.insteadOf=https://github.com/`, 'clone', '-q', 'https://github.com/owner/repo.git', path.join(dir, 'clone4')]),
    ).rejects.toThrow(/407/);
  });

  it('without the token git is refused (407), and the upstream is never asked', async () => {
    const before = git.authorizations.length;
    await expect(runGit(['-c', `url.${listener}/github-git/.insteadOf=https://github.com/`, 'clone', '-q', 'https://github.com/owner/repo.git', path.join(dir, 'clone3')])).rejects.toThrow();
    expect(git.authorizations.length).toBe(before);
  });
});

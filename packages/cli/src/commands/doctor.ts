/**
 * `credproxy doctor [--json]`: check what credproxy needs from this machine and say how to fix
 * what is wrong. Most checks work without a running proxy; none prints a secret (the config may
 * hold client secrets: only names, paths, modes, hosts and error codes are shown).
 */
import { promises as fs } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Command } from 'commander';
import type { CredproxyConfig, CredproxyPaths, ProviderConfig } from '@credproxy/core';
import { type CommandContext, type CommonOptions, dataOptions } from '../command-kit.js';
import { type OpResult, ProxyClient, ProxyUnavailableError, UntrustedSocketError } from '../core-client.js';
import { ExitCode, UsageError } from '../exit-codes.js';
import { type CliIO, printJson } from '../output.js';
import { isProxyProcessHere } from '../socket-owner.js';

export type CheckStatus = 'ok' | 'warn' | 'fail';

export interface Check {
  name: string;
  status: CheckStatus;
  detail: string;
  /** What to do about a warning or a failure. */
  fix?: string;
}

export interface DoctorOptions extends CommonOptions {
  /** Seconds to wait for each provider, the proxy and the keyring. */
  timeout?: string;
}

type Core = typeof import('@credproxy/core');

/** Past this, token expiry and id-token time checks go wrong. */
export const CLOCK_SKEW_WARN_SECONDS = 60;
const DEFAULT_TIMEOUT_SECONDS = 5;
/** The open-files limit the service unit sets (and what `ulimit -n` should give). */
const RECOMMENDED_OPEN_FILES = 8192;

function check(name: string, status: CheckStatus, detail: string, fix?: string): Check {
  return fix === undefined ? { name, status, detail } : { name, status, detail, fix };
}

function mode(m: number): string {
  return '0' + (m & 0o777).toString(8).padStart(3, '0');
}

function errorCode(err: unknown): string {
  const e = err as NodeJS.ErrnoException & { cause?: NodeJS.ErrnoException };
  if (e?.name === 'TimeoutError' || e?.name === 'AbortError') return 'timed out';
  return e?.cause?.code ?? e?.code ?? (e?.cause instanceof Error ? e.cause.message : undefined) ?? (err instanceof Error ? err.message : String(err));
}

function myUid(): number | undefined {
  return typeof process.getuid === 'function' ? process.getuid() : undefined;
}

/** A directory that must be ours and private (the socket's, the data dir). */
async function checkPrivateDir(name: string, dir: string, missing: string, why: string): Promise<Check> {
  let st;
  try {
    st = await fs.stat(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return check(name, 'ok', `${dir} does not exist yet — ${missing}`);
    return check(name, 'fail', `${dir} cannot be read (${errorCode(err)})`, `make it yours and private: \`chmod 700 ${dir}\`, or fix its parent's permissions`);
  }
  if (!st.isDirectory()) return check(name, 'fail', `${dir} is not a directory`, `remove it (\`rm ${dir}\`), or choose another location`);
  const uid = myUid();
  if (uid !== undefined && st.uid !== uid) {
    return check(name, 'fail', `${dir} belongs to uid ${st.uid}, not to you (uid ${uid})`, `choose another location, or have its owner remove it`);
  }
  if ((st.mode & 0o077) !== 0) {
    return check(name, 'fail', `${dir} is mode ${mode(st.mode)}: ${why}`, `\`chmod 700 ${dir}\``);
  }
  return check(name, 'ok', `${dir} is yours, mode ${mode(st.mode)}`);
}

interface ProxyProbe {
  check: Check;
  pong?: OpResult<'ping'>;
}

/** Whether a proxy answers on the socket — and if a socket file is there that nobody answers on. */
async function checkProxy(socketPath: string, timeoutMs: number): Promise<ProxyProbe> {
  const name = 'proxy';
  const start = '`credproxy serve --detach`, or run it as a service: `credproxy service install`';
  let st;
  try {
    st = await fs.lstat(socketPath);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      return { check: check(name, 'warn', `not running (no socket at ${socketPath})`, `start it: ${start}`) };
    }
    return { check: check(name, 'fail', `${socketPath} cannot be read (${errorCode(err)})`, 'check the permissions of the socket directory') };
  }
  if (!st.isSocket()) {
    return { check: check(name, 'fail', `${socketPath} is not a socket`, `remove it (\`rm ${socketPath}\`), or choose another --socket`) };
  }
  let client: ProxyClient | undefined;
  try {
    client = await ProxyClient.connect({ socketPath, timeoutMs });
    const pong = await client.call('ping', {});
    return { check: check(name, 'ok', `credproxy ${pong.version} answers on ${socketPath} (pid ${pong.pid})`), pong };
  } catch (err) {
    if (err instanceof UntrustedSocketError) return { check: check(name, 'fail', err.message, 'choose a socket in a directory only you control (--socket or CREDPROXY_SOCKET)') };
    if (err instanceof ProxyUnavailableError) {
      return {
        check: check(name, 'warn', `stale socket: ${socketPath} is there but nobody answers (a proxy that was killed)`, `start the proxy, which replaces it: ${start} — or remove it: \`rm ${socketPath}\``),
      };
    }
    return {
      check: check(name, 'fail', `something listens on ${socketPath} but does not answer as credproxy (${errorCode(err)})`, `find it with \`ss -xlp | grep ${socketPath}\` and stop it, or choose another --socket`),
    };
  } finally {
    client?.close();
  }
}

/** The running proxy's open-files limit where it can be read, else this shell's (which a proxy started from it inherits). */
async function checkOpenFiles(core: Core, socketPath: string, pong: OpResult<'ping'> | undefined): Promise<Check> {
  const name = 'open-files';
  const needed = core.MAX_CONNECTIONS + core.DESCRIPTORS_RESERVED;
  let limit: number | undefined;
  let whose = 'this shell, which a proxy started from it inherits';
  if (pong && (await isProxyProcessHere(socketPath, pong.pid))) {
    limit = core.readOpenFilesLimit(`/proc/${pong.pid}/limits`);
    if (limit !== undefined) whose = `the running proxy (pid ${pong.pid})`;
  }
  limit ??= core.readOpenFilesLimit();
  const raise = `raise it to ${RECOMMENDED_OPEN_FILES}: \`ulimit -n ${RECOMMENDED_OPEN_FILES}\` in the shell that starts the proxy, or run it as a service (\`credproxy service install\` sets LimitNOFILE=${RECOMMENDED_OPEN_FILES})`;
  if (limit === undefined) return check(name, 'warn', `cannot read the open-files limit here (no /proc/self/limits); the proxy needs ${needed} for ${core.MAX_CONNECTIONS} connections`, `check \`ulimit -n\`; ${raise}`);
  const shown = limit === Number.POSITIVE_INFINITY ? 'unlimited' : String(limit);
  if (limit < needed) {
    const cap = Math.max(16, limit - core.DESCRIPTORS_RESERVED);
    return check(name, 'warn', `${shown} for ${whose}: the proxy serves at most ${cap} connections instead of ${core.MAX_CONNECTIONS}`, raise);
  }
  return check(name, 'ok', `${shown} for ${whose} (${core.MAX_CONNECTIONS} connections need ${needed})`);
}

/** SO_PEERCRED on a throwaway socket pair: this process connects to itself and must see its own pid and uid. */
async function checkPeerCredentials(core: Core, timeoutMs: number): Promise<Check> {
  const name = 'peer-credentials';
  const warnings: string[] = [];
  const read = core.createPeerCredentialReader({ log: (level, msg) => void (level === 'warn' && warnings.push(msg)) });
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'credproxy-doctor-'));
  const server = net.createServer();
  const client = new net.Socket();
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path.join(dir, 's'), resolve);
    });
    const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
    client.connect(path.join(dir, 's'));
    const socket = await Promise.race([
      accepted,
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error('the test connection was not accepted')), timeoutMs).unref()),
    ]);
    const peer = read(socket);
    socket.destroy();
    if (peer.pid === process.pid && peer.uid === myUid()) {
      return check(name, 'ok', 'SO_PEERCRED works: the proxy sees the pid and uid of each connecting process');
    }
    const why = warnings[0] ?? `read pid ${String(peer.pid)} and uid ${String(peer.uid)}, expected ${process.pid} and ${String(myUid())}`;
    const fix =
      process.platform === 'linux'
        ? 'reinstall credproxy with its optional dependencies (koffi provides SO_PEERCRED; do not use --omit=optional); until then the socket file modes are the only guard'
        : `not available on ${process.platform}: the socket file modes are the guard`;
    return check(name, 'warn', why, fix);
  } catch (err) {
    return check(name, 'warn', `could not test peer credentials (${errorCode(err)})`, 'check that the temp directory is writable');
  } finally {
    client.destroy();
    server.close();
    await fs.rm(dir, { recursive: true, force: true });
  }
}

interface KeyringEntry {
  getPassword(signal?: AbortSignal): Promise<string | null | undefined>;
}
type KeyringModule = {
  AsyncEntry: new (service: string, account: string, options?: { linux?: { store?: 'secret-service' | 'keyutils' } }) => KeyringEntry;
};

/** A read of an entry that does not exist: nothing is created or prompted for. Throws when the store does not answer in time. */
async function probeKeyringStore(mod: KeyringModule, timeoutMs: number, store?: 'secret-service' | 'keyutils'): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    // With a store named, the constructor throws at once when that store is unavailable.
    const entry = new mod.AsyncEntry('credproxy', 'doctor-probe', store === undefined ? undefined : { linux: { store } });
    await Promise.race([
      entry.getPassword(AbortSignal.timeout(timeoutMs)),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(Object.assign(new Error('timed out'), { name: 'TimeoutError' })), timeoutMs + 250);
        timer.unref();
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Whether an OS keyring answers, within the timeout. On Linux the Secret Service is asked for by
 * name: @napi-rs/keyring otherwise falls back to the kernel keyring (keyutils), which forgets
 * everything at reboot — a key kept there would leave the store unreadable after one.
 */
async function checkKeyring(env: NodeJS.ProcessEnv, timeoutMs: number): Promise<Check> {
  const name = 'keyring';
  if (env.CREDPROXY_NO_KEYRING) return check(name, 'ok', 'not used (CREDPROXY_NO_KEYRING is set)');
  // SPEC §8's order: a key file or a passphrase comes before the keyring, which is then not asked.
  const before = (['CREDPROXY_KEY_FILE', 'CREDPROXY_PASSPHRASE_FILE'] as const).find((v) => env[v]);
  if (before) return check(name, 'ok', `not needed: ${before} wraps the data key`);
  let mod: KeyringModule;
  try {
    const pkg = '@napi-rs/keyring';
    mod = (await import(pkg)) as KeyringModule;
  } catch {
    return check(name, 'warn', 'the optional package @napi-rs/keyring is not installed: no OS keyring can hold the store key', 'reinstall credproxy with its optional dependencies, or set CREDPROXY_KEY_FILE');
  }
  const linux = process.platform === 'linux';
  try {
    await probeKeyringStore(mod, timeoutMs, linux ? 'secret-service' : undefined);
    return check(name, 'ok', `${linux ? 'the Secret Service' : 'the OS keyring'} answers (it can hold the key that wraps the data key)`);
  } catch (err) {
    const why = errorCode(err) === 'timed out' ? `did not answer within ${timeoutMs / 1000} s (locked, or waiting for a prompt)` : 'does not answer';
    const onlyKernel = linux && (await probeKeyringStore(mod, timeoutMs, 'keyutils').then(() => true, () => false));
    return check(
      name,
      'warn',
      `${linux ? 'the Secret Service' : 'the OS keyring'} ${why}${onlyKernel ? ' (only the kernel keyring does, which forgets its keys at reboot)' : ''}: without CREDPROXY_KEY_FILE or CREDPROXY_PASSPHRASE_FILE the proxy keeps its key in a key file it creates`,
      linux
        ? 'use a desktop session, or start one: `dbus-run-session` with `gnome-keyring-daemon --unlock`; or set CREDPROXY_KEY_FILE'
        : 'unlock the login keychain, or set CREDPROXY_KEY_FILE',
    );
  }
}

/** Which key wraps the data key (SPEC §8): doctor keeps showing the automatically created key file. */
async function checkKeySource(env: NodeJS.ProcessEnv, paths: CredproxyPaths): Promise<Check> {
  const name = 'key-source';
  for (const variable of ['CREDPROXY_KEY_FILE', 'CREDPROXY_PASSPHRASE_FILE'] as const) {
    const value = env[variable];
    if (!value) continue;
    const file = path.resolve(value);
    let st;
    try {
      st = await fs.stat(file);
    } catch (err) {
      const create = variable === 'CREDPROXY_KEY_FILE' ? `(umask 077; head -c 32 /dev/urandom > ${file})` : `write the passphrase into ${file} with mode 0600`;
      return check(name, 'fail', `${variable} names ${file}, which cannot be read (${errorCode(err)})`, `create it: \`${create}\`, or unset ${variable}`);
    }
    if ((st.mode & 0o077) !== 0) return check(name, 'fail', `${variable}: ${file} is mode ${mode(st.mode)}, readable by others`, `\`chmod 600 ${file}\``);
    return check(name, 'ok', `${variable}: ${file} (mode ${mode(st.mode)})`);
  }
  // core's autoKeyFile: the key file `serve` creates beside the config when nothing else is set.
  const autoKeyFile = (paths as Partial<Record<'autoKeyFile', string>>).autoKeyFile ?? path.join(path.dirname(paths.configFile), 'store.key');
  if (await fs.stat(autoKeyFile).then(() => true, () => false)) {
    return check(
      name,
      'warn',
      `the data key is wrapped by ${autoKeyFile}, a key file credproxy created because no key source was configured: anyone who can read it and the data dir can read your tokens`,
      'stronger: CREDPROXY_KEY_FILE (a key on another disk, or a systemd credential), CREDPROXY_PASSPHRASE_FILE, or an OS keyring',
    );
  }
  return check(name, 'ok', 'none configured: the OS keyring if one answers, else a key file created at the first start');
}

interface ConfigProbe {
  check: Check;
  config?: CredproxyConfig;
}

/** The config file parses, as core reads it (its errors name the line and column, never the text). */
async function checkConfig(core: Core, file: string): Promise<ConfigProbe> {
  const name = 'config';
  let st;
  try {
    st = await fs.stat(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      return { check: check(name, 'ok', `no config file at ${file} yet (add providers with \`credproxy provider add\`)`), config: undefined };
    }
    return { check: check(name, 'fail', `${file} cannot be read (${errorCode(err)})`, `check its permissions: \`ls -l ${file}\``) };
  }
  let config: CredproxyConfig;
  try {
    config = await new core.ConfigSource(file).get();
    core.resolveConfigRoutes(config.routes, file);
  } catch (err) {
    if (err instanceof core.ConfigError || err instanceof core.ProxyError) {
      return { check: check(name, 'fail', err.message, `edit ${file} where the message says; the proxy keeps its last good config until then`) };
    }
    return { check: check(name, 'fail', `${file} cannot be read (${errorCode(err)})`, `check its permissions: \`ls -l ${file}\``) };
  }
  const summary = `${file}: ${config.providers.size} provider(s), ${config.routes.size} route(s)`;
  if ((st.mode & 0o077) !== 0) {
    return { check: check(name, 'warn', `${summary}; mode ${mode(st.mode)} lets others read it, and it may hold client secrets`, `\`chmod 600 ${file}\``), config };
  }
  return { check: check(name, 'ok', summary), config };
}

interface Reachability {
  check: Check;
  /** The server's clock minus ours, in ms, from its Date header. */
  skewMs?: number;
  host?: string;
}

/** RFC 8414 §3 / OIDC Discovery §4: where an issuer's metadata lives. */
export function discoveryUrls(issuer: string): string[] {
  const u = new URL(issuer);
  const pathPart = u.pathname.replace(/\/$/, '');
  return [
    `${u.origin}${pathPart}/.well-known/openid-configuration`,
    `${u.origin}/.well-known/oauth-authorization-server${pathPart}`,
  ];
}

async function probeUrl(url: string, timeoutMs: number): Promise<{ status: number; json: unknown; skewMs?: number; ms: number }> {
  const started = Date.now();
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), headers: { accept: 'application/json' } });
  const ended = Date.now();
  let json: unknown;
  try {
    json = await res.json();
  } catch {
    json = undefined;
  }
  const date = res.headers.get('date');
  const serverMs = date ? Date.parse(date) : Number.NaN;
  // The Date header has 1 s resolution; the middle of the request is our best "same moment".
  const skewMs = Number.isFinite(serverMs) ? serverMs - (started + ended) / 2 : undefined;
  return { status: res.status, json, ms: ended - started, ...(skewMs !== undefined ? { skewMs } : {}) };
}

/** Whether a provider's authorization server answers: its discovery document, or (no issuer) its token endpoint. */
async function checkProvider(core: Core, provider: ProviderConfig, timeoutMs: number): Promise<Reachability> {
  const name = `provider ${provider.name}`;
  let resolved: ProviderConfig;
  try {
    resolved = core.applyPreset(provider).config;
  } catch (err) {
    return { check: check(name, 'fail', err instanceof Error ? err.message : String(err), 'fix the provider in the config file') };
  }
  const fixUrl = resolved.issuer
    ? `check \`issuer\` in the config (the URL from the provider's docs, without /.well-known/…), or give authorization_endpoint and token_endpoint instead`
    : 'check token_endpoint in the config';
  const targets = resolved.issuer ? discoveryUrls(resolved.issuer) : resolved.token_endpoint ? [resolved.token_endpoint] : [];
  if (targets.length === 0) return { check: check(name, 'fail', 'has neither an issuer nor a token endpoint', 'set `issuer` (or token_endpoint) in the config') };
  const statuses: string[] = [];
  let skew: { skewMs?: number; host?: string } = {};
  for (const url of targets) {
    const host = new URL(url).host;
    let answer;
    try {
      answer = await probeUrl(url, timeoutMs);
    } catch (err) {
      const code = errorCode(err);
      const why = code === 'timed out' ? `no answer within ${timeoutMs / 1000} s` : code;
      return {
        check: check(name, 'fail', `cannot reach ${host} (${why})`, `check the network and any proxy between (HTTPS_PROXY), then ${fixUrl}`),
      };
    }
    if (answer.skewMs !== undefined) skew = { skewMs: answer.skewMs, host };
    if (!resolved.issuer) {
      // A token endpoint answers a GET with 4xx; any HTTP answer means it is reachable.
      return { check: check(name, 'ok', `token endpoint ${url} answers (HTTP ${answer.status}, ${answer.ms} ms)`), ...skew };
    }
    const meta = answer.json as { token_endpoint?: unknown } | undefined;
    if (answer.status === 200 && meta && typeof meta.token_endpoint === 'string') {
      return { check: check(name, 'ok', `discovery answers: ${url} (${answer.ms} ms)`), ...skew };
    }
    statuses.push(`${url} answered HTTP ${answer.status}${answer.status === 200 ? ' without a token_endpoint' : ''}`);
  }
  return { check: check(name, 'fail', `no discovery document: ${statuses.join('; ')}`, fixUrl), ...skew };
}

function formatSkew(ms: number): string {
  const s = Math.round(Math.abs(ms) / 1000);
  const text = s >= 120 ? `${Math.floor(s / 60)}m ${s % 60}s` : `${s}s`;
  return `${text} ${ms > 0 ? 'behind' : 'ahead of'}`;
}

/** The local clock against the providers' Date headers. */
function checkClock(results: readonly Reachability[], providers: number): Check {
  const name = 'clock';
  const measured = results.filter((r): r is Reachability & { skewMs: number; host: string } => r.skewMs !== undefined && r.host !== undefined);
  if (measured.length === 0) {
    return providers === 0
      ? check(name, 'ok', 'not compared: no provider is configured')
      : check(name, 'warn', 'not compared: no provider answered with a Date header', 'fix the provider checks above, then run doctor again');
  }
  const worst = measured.reduce((a, b) => (Math.abs(b.skewMs) > Math.abs(a.skewMs) ? b : a));
  const skewText = `this clock is ${formatSkew(worst.skewMs)} ${worst.host}`;
  if (Math.abs(worst.skewMs) > CLOCK_SKEW_WARN_SECONDS * 1000) {
    return check(name, 'warn', `${skewText}: token expiry and id-token checks go wrong past ${CLOCK_SKEW_WARN_SECONDS} s`, 'sync the clock: `timedatectl set-ntp true` (or chrony / ntpd)');
  }
  return check(name, 'ok', `${skewText} (within ${CLOCK_SKEW_WARN_SECONDS} s)`);
}

export async function runChecks(options: { socket?: string; timeoutMs: number }, env: NodeJS.ProcessEnv): Promise<Check[]> {
  const core = await import('@credproxy/core');
  const paths = core.resolvePaths({ env, socketPath: options.socket });
  const t = options.timeoutMs;
  const [socketDir, proxy, peer, keyring, keySource, dataDir, config] = await Promise.all([
    checkPrivateDir('socket-dir', paths.runDir, 'created 0700 when the proxy starts', 'others could replace the socket'),
    checkProxy(paths.socketPath, Math.min(t, 2_000)),
    checkPeerCredentials(core, t),
    checkKeyring(env, Math.min(t, 2_000)),
    checkKeySource(env, paths),
    checkPrivateDir('data-dir', paths.dataDir, 'created 0700 when the proxy starts', 'it holds tokens and keys'),
    checkConfig(core, paths.configFile),
  ]);
  const providers = [...(config.config?.providers.values() ?? [])];
  const [openFiles, reach] = await Promise.all([
    checkOpenFiles(core, paths.socketPath, proxy.pong),
    Promise.all(providers.map((p) => checkProvider(core, p, t))),
  ]);
  return [
    socketDir,
    proxy.check,
    openFiles,
    peer,
    keyring,
    keySource,
    dataDir,
    config.check,
    ...reach.map((r) => r.check),
    checkClock(reach, providers.length),
  ];
}

const LABEL: Record<CheckStatus, string> = { ok: 'ok', warn: 'warn', fail: 'FAIL' };

export function formatChecks(checks: readonly Check[]): string {
  const width = Math.max(...checks.map((c) => c.name.length));
  let text = '';
  for (const c of checks) {
    text += `${LABEL[c.status].padEnd(4)}  ${c.name.padEnd(width)}  ${c.detail}\n`;
    if (c.fix !== undefined && c.status !== 'ok') text += `${' '.repeat(6)}fix: ${c.fix}\n`;
  }
  const failed = checks.filter((c) => c.status === 'fail').length;
  const warned = checks.filter((c) => c.status === 'warn').length;
  text += `\n${failed === 0 ? 'no problems' : `${failed} problem(s)`}${warned > 0 ? `, ${warned} warning(s)` : ''}\n`;
  return text;
}

export async function handleDoctor(options: DoctorOptions, io: CliIO): Promise<number> {
  const seconds = options.timeout === undefined ? DEFAULT_TIMEOUT_SECONDS : Number(options.timeout);
  if (!Number.isFinite(seconds) || seconds <= 0 || seconds > 120) throw new UsageError(`--timeout takes seconds between 0 and 120, not ${options.timeout}`);
  const checks = await runChecks({ ...(options.socket !== undefined ? { socket: options.socket } : {}), timeoutMs: seconds * 1000 }, io.env);
  if (options.json) printJson(io, { checks });
  else io.stdout.write(formatChecks(checks));
  return checks.some((c) => c.status === 'fail') ? ExitCode.ERROR : ExitCode.OK;
}

export function register(program: Command, ctx: CommandContext): void {
  dataOptions(
    program
      .command('doctor')
      .description('check this machine for what credproxy needs, and say how to fix what is wrong')
      .option('--timeout <seconds>', 'how long to wait for each provider, the proxy and the keyring', String(DEFAULT_TIMEOUT_SECONDS))
      .addHelpText(
        'after',
        `
Checks: the socket directory and a stale socket, whether the proxy answers, the open-files limit,
peer credentials (SO_PEERCRED), the OS keyring and key source, the data dir, the config file,
each provider's discovery document and the clock against it. Works without a running proxy.
Exit 0 when nothing failed (warnings allowed), 1 otherwise.

Examples:
  credproxy doctor
  credproxy doctor --json | jq '.checks[] | select(.status != "ok")'
`,
      ),
  ).action(async (opts: DoctorOptions) => {
    ctx.exitCode = await handleDoctor(opts, ctx.io);
  });
}

/**
 * `credproxy service install|uninstall|status`: run the proxy as a per-user service — a systemd
 * user unit on Linux, a launchd agent on macOS — so it starts at login, restarts after a crash,
 * and gets an open-files limit that fits its connection cap. No socket activation: the service
 * runs `credproxy serve`, which binds the socket itself.
 */
import { spawnSync } from 'node:child_process';
import { accessSync, constants as fsConstants, promises as fs } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { type CommandContext, type CommonOptions, dataOptions, socketOption } from '../command-kit.js';
import { CliError, ExitCode, UsageError } from '../exit-codes.js';
import { type CliIO, printJson } from '../output.js';
import { pingSocket, socketPathFor } from '../socket.js';

export interface ServiceOptions extends CommonOptions {
  dryRun?: boolean;
}

/** The installed command's entry (dist/bin.js), as `serve --detach` starts it. */
const BIN = fileURLToPath(new URL('../bin.js', import.meta.url));
export const UNIT_NAME = 'credproxy.service';
export const LAUNCHD_LABEL = 'dev.credproxy';
/** What the unit and the agent set: room for the 1024 connections plus the descriptors kept aside. */
export const SERVICE_OPEN_FILES = 8192;
/** How long install waits for the started service to answer ping. */
const ANSWER_TIMEOUT_MS = 10_000;

/** Variables that hold a secret (a client's capability token): never written into a unit file. */
function isSecretVariable(name: string): boolean {
  return /TOKEN|SECRET|PASSWORD|PASSPHRASE$/.test(name) && !/_FILE$/.test(name);
}

/** Variables that name a path: made absolute, since the service does not start in this directory. */
function isPathVariable(name: string): boolean {
  return /(_FILE|_DIR|_CONFIG|_SOCKET)$/.test(name);
}

export interface ServiceEnvironment {
  /** What the service gets, in a stable order. */
  vars: Array<[string, string]>;
  /** Names left out because they hold a secret. */
  skipped: string[];
}

/**
 * The CREDPROXY_* variables set now, as the service should see them, with the socket pinned to
 * the one this CLI resolves (so `credproxy` commands and the service agree on it).
 */
export function serviceEnvironment(env: NodeJS.ProcessEnv, socketPath: string): ServiceEnvironment {
  const vars = new Map<string, string>();
  const skipped: string[] = [];
  for (const name of Object.keys(env).sort()) {
    const value = env[name];
    if (!name.startsWith('CREDPROXY_') || value === undefined || value === '') continue;
    if (isSecretVariable(name)) {
      skipped.push(name);
      continue;
    }
    vars.set(name, isPathVariable(name) ? path.resolve(value) : value);
  }
  vars.set('CREDPROXY_SOCKET', socketPath);
  return { vars: [...vars].sort(([a], [b]) => a.localeCompare(b)), skipped };
}

function refuseControlCharacters(what: string, value: string): void {
  // A newline would end the line in the unit file and start a directive of the value's choosing.
  if (/[\x00-\x1f\x7f]/.test(value)) throw new UsageError(`${what} holds a control character (a newline?), which a service file cannot carry — fix its value`);
}

/** One ExecStart= word, double-quoted (systemd.syntax: C escapes; `%` specifiers; `$` expansion). */
export function systemdQuoteWord(word: string): string {
  refuseControlCharacters(`the path ${JSON.stringify(word)}`, word);
  return `"${word.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/%/g, '%%').replace(/\$/g, '$$$$')}"`;
}

/** One Environment= assignment, double-quoted (no `$` expansion there; `%` specifiers are). */
export function systemdEnvironmentLine(name: string, value: string): string {
  refuseControlCharacters(name, value);
  return `Environment="${name}=${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/%/g, '%%')}"`;
}

export interface ServiceCommand {
  node: string;
  bin: string;
  env: ServiceEnvironment;
}

export function renderSystemdUnit(cmd: ServiceCommand): string {
  return [
    '# Written by `credproxy service install`; remove it with `credproxy service uninstall`.',
    '[Unit]',
    'Description=credproxy: OAuth tokens and API keys for your tools, over a Unix socket',
    '',
    '[Service]',
    'Type=simple',
    `ExecStart=${[cmd.node, cmd.bin, 'serve'].map(systemdQuoteWord).join(' ')}`,
    'Restart=on-failure',
    'RestartSec=2',
    // 5: another proxy already serves the socket; restarting would only loop.
    'RestartPreventExitStatus=5',
    `LimitNOFILE=${SERVICE_OPEN_FILES}`,
    'UMask=0077',
    ...cmd.env.vars.map(([k, v]) => systemdEnvironmentLine(k, v)),
    '',
    '[Install]',
    'WantedBy=default.target',
    '',
  ].join('\n');
}

function xml(text: string): string {
  refuseControlCharacters(`the value ${JSON.stringify(text)}`, text);
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

export function renderLaunchdPlist(cmd: ServiceCommand, logFile: string): string {
  const env = cmd.env.vars.map(([k, v]) => `    <key>${xml(k)}</key><string>${xml(v)}</string>`);
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">',
    '<!-- Written by `credproxy service install`; remove it with `credproxy service uninstall`. -->',
    '<plist version="1.0">',
    '<dict>',
    `  <key>Label</key><string>${LAUNCHD_LABEL}</string>`,
    '  <key>ProgramArguments</key>',
    '  <array>',
    ...[cmd.node, cmd.bin, 'serve'].map((a) => `    <string>${xml(a)}</string>`),
    '  </array>',
    '  <key>EnvironmentVariables</key>',
    '  <dict>',
    ...env,
    '  </dict>',
    '  <key>RunAtLoad</key><true/>',
    '  <key>KeepAlive</key>',
    '  <dict><key>SuccessfulExit</key><false/></dict>',
    '  <key>SoftResourceLimits</key>',
    `  <dict><key>NumberOfFiles</key><integer>${SERVICE_OPEN_FILES}</integer></dict>`,
    '  <key>Umask</key><integer>63</integer>',
    `  <key>StandardErrorPath</key><string>${xml(logFile)}</string>`,
    '  <key>ProcessType</key><string>Background</string>',
    '</dict>',
    '</plist>',
    '',
  ].join('\n');
}

/** The service manager of this platform: where its file goes and how it is driven. */
interface Manager {
  kind: 'systemd' | 'launchd';
  file: string;
  tool: string;
  render(cmd: ServiceCommand): string;
  install: string[][];
  /** Over an installed service: pick the new file up and restart what runs. */
  reinstall: string[][];
  /** Steps whose failure is expected at times (unloading an agent that is not loaded). */
  mayFail?: (args: readonly string[]) => boolean;
  uninstall: string[][];
}

function homeDir(env: NodeJS.ProcessEnv): string {
  const home = env.HOME;
  if (!home) throw new CliError('HOME is not set — the service file goes under your home directory');
  return home;
}

export function serviceManager(env: NodeJS.ProcessEnv, platform: NodeJS.Platform): Manager {
  if (platform === 'darwin') {
    const home = homeDir(env);
    const file = path.join(home, 'Library', 'LaunchAgents', `${LAUNCHD_LABEL}.plist`);
    return {
      kind: 'launchd',
      file,
      tool: 'launchctl',
      render: (cmd) => renderLaunchdPlist(cmd, path.join(home, 'Library', 'Logs', 'credproxy.log')),
      install: [['load', '-w', file]],
      reinstall: [
        ['unload', file],
        ['load', '-w', file],
      ],
      mayFail: (args) => args[0] === 'unload',
      uninstall: [['unload', '-w', file]],
    };
  }
  if (platform === 'linux') {
    const configHome = env.XDG_CONFIG_HOME ? path.resolve(env.XDG_CONFIG_HOME) : path.join(homeDir(env), '.config');
    return {
      kind: 'systemd',
      file: path.join(configHome, 'systemd', 'user', UNIT_NAME),
      tool: 'systemctl',
      render: renderSystemdUnit,
      install: [
        ['--user', 'daemon-reload'],
        ['--user', 'enable', '--now', UNIT_NAME],
      ],
      reinstall: [
        ['--user', 'daemon-reload'],
        ['--user', 'enable', UNIT_NAME],
        ['--user', 'restart', UNIT_NAME],
      ],
      uninstall: [
        ['--user', 'disable', '--now', UNIT_NAME],
        ['--user', 'daemon-reload'],
      ],
    };
  }
  throw new UsageError(`running credproxy as a service is supported on Linux (systemd) and macOS (launchd), not on ${platform} — run \`credproxy serve\` from your session's startup instead`);
}

function findOnPath(tool: string, env: NodeJS.ProcessEnv): string | undefined {
  for (const dir of (env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, tool);
    try {
      accessSync(candidate, fsConstants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

interface ToolRun {
  ok: boolean;
  stdout: string;
  /** The first line of what it said on stderr, or how it ended. */
  reason: string;
}

function runTool(executable: string, args: readonly string[], env: NodeJS.ProcessEnv): ToolRun {
  const r = spawnSync(executable, args, { env, encoding: 'utf8', timeout: 30_000 });
  const firstLine = (r.stderr ?? '').trim().split('\n')[0] ?? '';
  const reason = r.error ? r.error.message : firstLine || (r.signal ? `killed by ${r.signal}` : `exit code ${String(r.status)}`);
  return { ok: r.status === 0 && !r.error, stdout: (r.stdout ?? '').trim(), reason };
}

function shellLine(tool: string, steps: readonly string[][]): string {
  return steps.map((args) => [tool, ...args].join(' ')).join(' && ');
}

async function waitForAnswer(socketPath: string, timeoutMs: number): Promise<{ pid: number; version: string } | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const pong = await pingSocket(socketPath, 1_000);
    if (pong) return pong;
    if (Date.now() > deadline) return undefined;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

export interface ServiceContext {
  io: CliIO;
  platform?: NodeJS.Platform;
  /** The `node` and the CLI entry the service runs (tests: the built CLI). */
  node?: string;
  bin?: string;
}

export async function handleServiceInstall(options: ServiceOptions, c: ServiceContext): Promise<number> {
  const { io } = c;
  const manager = serviceManager(io.env, c.platform ?? process.platform);
  const socketPath = socketPathFor(options.socket, io.env);
  const env = serviceEnvironment(io.env, socketPath);
  const text = manager.render({ node: c.node ?? process.execPath, bin: c.bin ?? BIN, env });
  const skippedNote = env.skipped.length > 0 ? `not written (they hold secrets): ${env.skipped.join(', ')}\n` : '';
  if (options.dryRun) {
    io.stdout.write(text);
    io.stderr.write(`credproxy: dry run — would write ${manager.file}\n${skippedNote}`);
    return ExitCode.OK;
  }
  const existed = await fs.stat(manager.file).then(() => true, () => false);
  // Over an installed service, what answers is (most likely) the service itself: it is restarted.
  const already = existed ? undefined : await pingSocket(socketPath);
  await fs.mkdir(path.dirname(manager.file), { recursive: true });
  // No secrets in it, but there is no reason for others to read which files hold the keys.
  await fs.writeFile(manager.file, text, { mode: 0o600 });
  await fs.chmod(manager.file, 0o600);
  io.stdout.write(`wrote ${manager.file}\n${skippedNote}`);

  const tool = findOnPath(manager.tool, io.env);
  const steps = existed ? manager.reinstall : manager.install;
  const manual = shellLine(manager.tool, steps);
  if (!tool) {
    io.stdout.write(`${manager.tool} was not found (a container, or no ${manager.kind} here): nothing was started — where ${manager.kind} runs, start it with: ${manual}\n`);
    return ExitCode.OK;
  }
  for (const args of steps) {
    const r = runTool(tool, args, io.env);
    if (!r.ok && !manager.mayFail?.(args)) {
      const hint = manager.kind === 'systemd' ? ' (no systemd user manager here? In a container there is none; over ssh, `loginctl enable-linger $USER` keeps one running)' : '';
      throw new CliError(`wrote ${manager.file}, but \`${manager.tool} ${args.join(' ')}\` failed: ${r.reason}${hint} — once it can run: ${manual}`);
    }
  }
  if (already) {
    io.stdout.write(
      `enabled; a proxy that is not the service already answers on ${socketPath} (pid ${already.pid}): the service takes over after \`credproxy stop\` and ${manager.kind === 'systemd' ? `\`systemctl --user restart ${UNIT_NAME}\`` : `\`launchctl kickstart -k gui/$(id -u)/${LAUNCHD_LABEL}\``}\n`,
    );
    return ExitCode.OK;
  }
  const pong = await waitForAnswer(socketPath, ANSWER_TIMEOUT_MS);
  if (!pong) {
    const logs = manager.kind === 'systemd' ? `\`systemctl --user status ${UNIT_NAME}\` and \`journalctl --user -u ${UNIT_NAME}\`` : '~/Library/Logs/credproxy.log';
    throw new CliError(`the service is enabled but does not answer on ${socketPath} after ${ANSWER_TIMEOUT_MS / 1000} s — see ${logs}`);
  }
  io.stdout.write(`${existed ? 'enabled and restarted' : 'enabled and started'}: credproxy ${pong.version} (pid ${pong.pid}) answers on ${socketPath}\n`);
  return ExitCode.OK;
}

export async function handleServiceUninstall(_options: ServiceOptions, c: ServiceContext): Promise<number> {
  const { io } = c;
  const manager = serviceManager(io.env, c.platform ?? process.platform);
  const exists = await fs.stat(manager.file).then(() => true, () => false);
  if (!exists) throw new CliError(`the service is not installed (no ${manager.file}) — nothing to remove`);
  const tool = findOnPath(manager.tool, io.env);
  const failures: string[] = [];
  if (tool) {
    // Stop and disable while the file is there, then forget it.
    const [stop, ...rest] = manager.uninstall;
    if (stop) {
      const r = runTool(tool, stop, io.env);
      if (!r.ok) failures.push(`\`${manager.tool} ${stop.join(' ')}\` failed: ${r.reason}`);
    }
    await fs.rm(manager.file, { force: true });
    for (const args of rest) {
      const r = runTool(tool, args, io.env);
      if (!r.ok) failures.push(`\`${manager.tool} ${args.join(' ')}\` failed: ${r.reason}`);
    }
  } else {
    await fs.rm(manager.file, { force: true });
  }
  io.stdout.write(`removed ${manager.file}\n`);
  if (!tool) io.stdout.write(`${manager.tool} was not found: if the service runs elsewhere, stop it there\n`);
  if (failures.length > 0) throw new CliError(`${failures.join('; ')} — the file is gone; stop a running service with \`credproxy stop\``);
  if (tool) io.stdout.write(manager.kind === 'systemd' ? `stopped and disabled ${UNIT_NAME}\n` : `unloaded ${LAUNCHD_LABEL}\n`);
  return ExitCode.OK;
}

export interface ServiceStatus {
  manager: 'systemd' | 'launchd';
  file: string;
  installed: boolean;
  /** systemd: is-enabled's answer; launchd: "loaded"/"not loaded"; "unknown" without the tool. */
  enabled: string;
  /** systemd: is-active's answer; launchd: "running"/"not running"; "unknown" without the tool. */
  active: string;
  proxy: { socket: string; running: boolean; pid?: number; version?: string };
}

export async function serviceStatus(options: ServiceOptions, c: ServiceContext): Promise<ServiceStatus> {
  const { io } = c;
  const manager = serviceManager(io.env, c.platform ?? process.platform);
  const installed = await fs.stat(manager.file).then(() => true, () => false);
  const tool = findOnPath(manager.tool, io.env);
  let enabled = 'unknown';
  let active = 'unknown';
  if (tool && manager.kind === 'systemd') {
    // Both print their answer on stdout and exit non-zero for "disabled"/"inactive".
    enabled = runTool(tool, ['--user', 'is-enabled', UNIT_NAME], io.env).stdout || 'unknown';
    active = runTool(tool, ['--user', 'is-active', UNIT_NAME], io.env).stdout || 'unknown';
  } else if (tool) {
    const r = runTool(tool, ['list', LAUNCHD_LABEL], io.env);
    enabled = r.ok ? 'loaded' : 'not loaded';
    active = r.ok && /"PID"\s*=\s*\d+/.test(r.stdout) ? 'running' : 'not running';
  }
  const socket = socketPathFor(options.socket, io.env);
  const pong = await pingSocket(socket);
  return {
    manager: manager.kind,
    file: manager.file,
    installed,
    enabled,
    active,
    proxy: pong ? { socket, running: true, pid: pong.pid, version: pong.version } : { socket, running: false },
  };
}

export function formatServiceStatus(s: ServiceStatus): string {
  const tool = s.manager === 'systemd' ? 'systemctl' : 'launchctl';
  const lines = [
    `service file  ${s.installed ? s.file : `not installed (${s.file}) — \`credproxy service install\``}`,
    `enabled       ${s.enabled === 'unknown' ? `unknown (${tool} not found)` : s.enabled}`,
    `active        ${s.active === 'unknown' ? `unknown (${tool} not found)` : s.active}`,
    `proxy         ${s.proxy.running ? `answers on ${s.proxy.socket} (pid ${String(s.proxy.pid)}, ${String(s.proxy.version)})` : `not answering on ${s.proxy.socket}`}`,
  ];
  return lines.join('\n') + '\n';
}

export async function handleServiceStatus(options: ServiceOptions, c: ServiceContext): Promise<number> {
  const status = await serviceStatus(options, c);
  if (options.json) printJson(c.io, status);
  else c.io.stdout.write(formatServiceStatus(status));
  return ExitCode.OK;
}

export function register(program: Command, ctx: CommandContext): void {
  const service = program
    .command('service')
    .description('run the proxy as a per-user service (systemd user unit, or launchd agent on macOS)')
    .addHelpText(
      'after',
      `
The service runs \`credproxy serve\` with LimitNOFILE=${SERVICE_OPEN_FILES}, restarts it after a crash, and
starts it at login. CREDPROXY_* variables set now (except secrets) are written into it, and
the socket is pinned to the one this command resolves.

Examples:
  credproxy service install --dry-run     print the unit without writing it
  credproxy service install
  credproxy service status
  credproxy service uninstall
`,
    );
  socketOption(
    service
      .command('install')
      .description(`write the service file, then enable and start it (${'~'}/.config/systemd/user/${UNIT_NAME})`)
      .option('--dry-run', 'print the service file and write nothing'),
  ).action(async (opts: ServiceOptions) => {
    ctx.exitCode = await handleServiceInstall(opts, { io: ctx.io });
  });
  socketOption(service.command('uninstall').description('stop and disable the service and remove its file')).action(async (opts: ServiceOptions) => {
    ctx.exitCode = await handleServiceUninstall(opts, { io: ctx.io });
  });
  dataOptions(service.command('status').description('whether the service is installed, enabled and active, and whether the proxy answers')).action(
    async (opts: ServiceOptions) => {
      ctx.exitCode = await handleServiceStatus(opts, { io: ctx.io });
    },
  );
}

/**
 * `credproxy service install|status|uninstall` through the built CLI. HOME and XDG_CONFIG_HOME
 * point at a temp dir, and a stand-in `systemctl` comes first on PATH (CI has no systemd user
 * manager): it records every call, and on `enable --now` starts what the unit's ExecStart= and
 * Environment= lines say, with nothing else in its environment but PATH and HOME — so the test
 * proves the written unit really starts a proxy that answers, on the socket the CLI uses.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { handleServiceInstall, handleServiceUninstall, serviceStatus } from '../../packages/cli/src/commands/service.js';
import type { CliIO } from '../../packages/cli/src/output.js';
import { BIN, cleanup, isAlive, makeLayout, pingPid, run, trackPid, waitFor, type Layout } from './cli-harness.js';

/** Splits one systemd unit line's value into words (systemd.syntax quoting: "…" with C escapes, %%, $$). */
function systemdWords(value: string): string[] {
  const words: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|(\S+)/g;
  for (const m of value.matchAll(re)) {
    const raw = m[1] ?? m[2] ?? '';
    words.push(raw.replace(/\\(.)/g, '$1').replace(/%%/g, '%').replace(/\$\$/g, '$'));
  }
  return words;
}

/** The stand-in's start: what systemd would run for the unit. */
const START_SCRIPT = `
import { spawn } from 'node:child_process';
import fs from 'node:fs';
const unit = fs.readFileSync(process.argv[2], 'utf8');
const unquote = ${systemdWords.toString()};
const exec = unquote(/^ExecStart=(.*)$/m.exec(unit)[1]);
const env = { PATH: process.env.PATH, HOME: process.env.HOME };
for (const m of unit.matchAll(/^Environment=(.*)$/gm)) {
  const [assignment] = unquote(m[1]);
  const i = assignment.indexOf('=');
  env[assignment.slice(0, i)] = assignment.slice(i + 1);
}
const log = fs.openSync(process.argv[3] + '.log', 'a');
const child = spawn(exec[0], exec.slice(1), { env, detached: true, stdio: ['ignore', log, log] });
fs.writeFileSync(process.argv[3], String(child.pid));
child.unref();
`;

interface Fake {
  layout: Layout;
  bin: string;
  calls: string;
  pidFile: string;
  unit: string;
}

/** A temp HOME with a stand-in systemctl first on PATH; `mode` "fail" answers like a container without a user bus. */
function fakeSystemd(mode: 'ok' | 'fail' = 'ok'): Fake {
  const layout = makeLayout();
  const home = path.join(layout.dir, 'home');
  const bin = path.join(layout.dir, 'bin');
  fs.mkdirSync(bin, { recursive: true });
  fs.mkdirSync(home, { recursive: true });
  const calls = path.join(layout.dir, 'systemctl.calls');
  const pidFile = path.join(layout.dir, 'service.pid');
  fs.writeFileSync(path.join(layout.dir, 'start.mjs'), START_SCRIPT);
  const unit = path.join(layout.dir, 'xdg', 'systemd', 'user', 'credproxy.service');
  const script =
    mode === 'fail'
      ? `#!/bin/sh\necho "$*" >> "${calls}"\necho "Failed to connect to bus: No medium found" >&2\nexit 1\n`
      : `#!/bin/sh
echo "$*" >> "${calls}"
case "$*" in
  "--user enable --now credproxy.service") exec "${process.execPath}" "${path.join(layout.dir, 'start.mjs')}" "${unit}" "${pidFile}" ;;
  "--user restart credproxy.service") [ -f "${pidFile}" ] && kill "$(cat "${pidFile}")" && while kill -0 "$(cat "${pidFile}")" 2>/dev/null; do sleep 0.05; done
    exec "${process.execPath}" "${path.join(layout.dir, 'start.mjs')}" "${unit}" "${pidFile}" ;;
  "--user disable --now credproxy.service") [ -f "${pidFile}" ] && kill "$(cat "${pidFile}")"; rm -f "${pidFile}" ;;
  "--user is-enabled credproxy.service") if [ -f "${unit}" ]; then echo enabled; else echo "not-found"; exit 1; fi ;;
  "--user is-active credproxy.service") if [ -f "${pidFile}" ] && kill -0 "$(cat "${pidFile}")" 2>/dev/null; then echo active; else echo inactive; exit 3; fi ;;
esac
exit 0
`;
  fs.writeFileSync(path.join(bin, 'systemctl'), script, { mode: 0o755 });
  layout.env = {
    ...layout.env,
    HOME: home,
    XDG_CONFIG_HOME: path.join(layout.dir, 'xdg'),
    PATH: `${bin}${path.delimiter}${process.env.PATH ?? ''}`,
    // A value systemd would misread without quoting, and a secret that must stay out of the unit.
    CREDPROXY_DEBUG: 'say "100%" $HOME \\ done',
    CREDPROXY_CAPABILITY_TOKEN: 'cpt_never_in_a_unit_file_0123456789',
  };
  return { layout, bin, calls, pidFile, unit };
}

function calls(fake: Fake): string[] {
  return fs.existsSync(fake.calls) ? fs.readFileSync(fake.calls, 'utf8').trim().split('\n') : [];
}

afterEach(cleanup);

describe('credproxy service (systemd user unit)', () => {
  it('install writes the unit, runs daemon-reload and enable --now, and the unit it wrote starts a proxy that answers; status and uninstall', async () => {
    const fake = fakeSystemd();
    const { layout } = fake;
    const install = await run(layout, ['service', 'install']);
    if (fs.existsSync(fake.pidFile)) trackPid(Number(fs.readFileSync(fake.pidFile, 'utf8')));
    expect(install.stderr).toBe('');
    expect(install.code).toBe(0);
    expect(calls(fake)).toEqual(['--user daemon-reload', '--user enable --now credproxy.service']);

    const unit = fs.readFileSync(fake.unit, 'utf8');
    expect(fs.statSync(fake.unit).mode & 0o777).toBe(0o600);
    const execStart = /^ExecStart=(.*)$/m.exec(unit)?.[1] ?? '';
    expect(systemdWords(execStart)).toEqual([process.execPath, fs.realpathSync(BIN), 'serve']);
    expect(unit).toMatch(/^LimitNOFILE=8192$/m);
    expect(unit).toMatch(/^Restart=on-failure$/m);
    expect(unit).toMatch(/^WantedBy=default\.target$/m);
    expect(unit).toContain(`Environment="CREDPROXY_SOCKET=${layout.socket}"`);
    expect(unit).toContain(`Environment="CREDPROXY_DATA_DIR=${layout.env.CREDPROXY_DATA_DIR!}"`);
    expect(unit).toContain(`Environment="CREDPROXY_CONFIG=${layout.env.CREDPROXY_CONFIG!}"`);
    // Quoted for systemd: \\ and \" escaped, % doubled; $ has no meaning in Environment=.
    expect(unit).toContain('Environment="CREDPROXY_DEBUG=say \\"100%%\\" $HOME \\\\ done"');
    expect(unit).not.toContain('cpt_never_in_a_unit_file');
    expect(install.stdout).toContain('not written (they hold secrets): CREDPROXY_CAPABILITY_TOKEN');
    // systemd's own parser, where it is installed (it runs offline): no quoting or syntax complaint.
    if (spawnSync('sh', ['-c', 'command -v systemd-analyze']).status === 0) {
      const verify = spawnSync('systemd-analyze', ['verify', fake.unit], { encoding: 'utf8' });
      expect(verify.stderr).toBe('');
      expect(verify.status).toBe(0);
    }

    const pid = Number(fs.readFileSync(fake.pidFile, 'utf8'));
    expect(install.stdout).toContain(`enabled and started: credproxy`);
    expect(install.stdout).toContain(`(pid ${pid}) answers on ${layout.socket}`);
    expect(await pingPid(layout.socket)).toBe(pid);

    const status = await run(layout, ['service', 'status', '--json']);
    expect(status.code).toBe(0);
    expect(JSON.parse(status.stdout)).toEqual({
      manager: 'systemd',
      file: fake.unit,
      installed: true,
      enabled: 'enabled',
      active: 'active',
      proxy: { socket: layout.socket, running: true, pid, version: expect.any(String) },
    });
    const human = await run(layout, ['service', 'status']);
    expect(human.stdout).toMatch(/^enabled +enabled$/m);
    expect(human.stdout).toMatch(new RegExp(`^proxy +answers on ${layout.socket} \\(pid ${pid}, `, 'm'));

    // Installing over it (a variable changed): the new unit is picked up and the service restarted.
    fs.writeFileSync(fake.calls, '');
    layout.env.CREDPROXY_DEBUG = '1';
    const again1 = await run(layout, ['service', 'install']);
    const pid2 = Number(fs.readFileSync(fake.pidFile, 'utf8'));
    trackPid(pid2);
    expect(again1.code, again1.stderr).toBe(0);
    expect(calls(fake)).toEqual(['--user daemon-reload', '--user enable credproxy.service', '--user restart credproxy.service']);
    expect(fs.readFileSync(fake.unit, 'utf8')).toContain('Environment="CREDPROXY_DEBUG=1"');
    expect(pid2).not.toBe(pid);
    expect(again1.stdout).toContain(`enabled and restarted: credproxy`);
    expect(await pingPid(layout.socket)).toBe(pid2);

    fs.writeFileSync(fake.calls, '');
    const uninstall = await run(layout, ['service', 'uninstall']);
    expect(uninstall.code).toBe(0);
    expect(calls(fake)).toEqual(['--user disable --now credproxy.service', '--user daemon-reload']);
    expect(fs.existsSync(fake.unit)).toBe(false);
    expect(uninstall.stdout).toContain(`removed ${fake.unit}`);
    await waitFor(() => !isAlive(pid2), 10_000, 'the service proxy to stop');
    expect(isAlive(pid)).toBe(false);

    const after = await run(layout, ['service', 'status', '--json']);
    expect(JSON.parse(after.stdout)).toMatchObject({ installed: false, active: 'inactive', proxy: { running: false } });
    const again = await run(layout, ['service', 'uninstall']);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('the service is not installed');
  });

  it('--dry-run prints the unit and writes nothing, calls nothing', async () => {
    const fake = fakeSystemd();
    const r = await run(fake.layout, ['service', 'install', '--dry-run']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^\[Service\]$/m);
    expect(r.stdout).toMatch(/^ExecStart=".*" ".*bin\.js" "serve"$/m);
    expect(r.stderr).toContain(`dry run — would write ${fake.unit}`);
    expect(fs.existsSync(fake.unit)).toBe(false);
    expect(calls(fake)).toEqual([]);
  });

  it('where systemctl cannot reach a user manager (a container), says the unit was written and what to run, exit 1', async () => {
    const fake = fakeSystemd('fail');
    const r = await run(fake.layout, ['service', 'install']);
    expect(r.code).toBe(1);
    expect(fs.existsSync(fake.unit)).toBe(true);
    expect(r.stdout).toContain(`wrote ${fake.unit}`);
    expect(r.stderr).toContain('`systemctl --user daemon-reload` failed: Failed to connect to bus: No medium found');
    expect(r.stderr).toContain('systemctl --user daemon-reload && systemctl --user enable --now credproxy.service');
    expect(calls(fake)).toEqual(['--user daemon-reload']);
  });

  it('without systemctl at all, writes the unit and says how to start it, exit 0; status says unknown', async () => {
    const fake = fakeSystemd();
    fs.rmSync(path.join(fake.bin, 'systemctl'));
    // PATH with node's dir only: no systemctl from the host either.
    const nodeDir = path.join(fake.layout.dir, 'nodebin');
    fs.mkdirSync(nodeDir);
    fs.symlinkSync(process.execPath, path.join(nodeDir, 'node'));
    fake.layout.env.PATH = nodeDir;
    expect(spawnSync('sh', ['-c', 'command -v systemctl'], { env: fake.layout.env }).status).not.toBe(0);
    const r = await run(fake.layout, ['service', 'install']);
    expect(r.code).toBe(0);
    expect(fs.existsSync(fake.unit)).toBe(true);
    expect(r.stdout).toContain('systemctl was not found');
    expect(r.stdout).toContain('systemctl --user daemon-reload && systemctl --user enable --now credproxy.service');
    const status = await run(fake.layout, ['service', 'status']);
    expect(status.stdout).toMatch(/^enabled +unknown \(systemctl not found\)$/m);
  });
});

/** Where python3 is, its plistlib reads the agent the way launchd's property-list parser would. */
const hasPython = spawnSync('sh', ['-c', 'command -v python3']).status === 0;

describe.runIf(hasPython)('credproxy service (launchd agent, as on macOS)', () => {
  it('writes ~/Library/LaunchAgents/dev.credproxy.plist, launchctl load -w starts what it says, unload -w and removal on uninstall', async () => {
    const layout = makeLayout();
    const home = path.join(layout.dir, 'home');
    const bin = path.join(layout.dir, 'bin');
    fs.mkdirSync(bin, { recursive: true });
    const calls = path.join(layout.dir, 'launchctl.calls');
    const pidFile = path.join(layout.dir, 'agent.pid');
    // The stand-in launchctl: records its arguments; `load` starts ProgramArguments with EnvironmentVariables.
    const starter = [
      'import os, plistlib, subprocess, sys',
      'p = plistlib.load(open(sys.argv[1], "rb"))',
      'env = dict(p["EnvironmentVariables"], PATH=os.environ["PATH"], HOME=os.environ["HOME"])',
      'log = open(p["StandardErrorPath"], "ab")',
      'child = subprocess.Popen(p["ProgramArguments"], env=env, start_new_session=True, stdin=subprocess.DEVNULL, stdout=log, stderr=log)',
      `open(${JSON.stringify(pidFile)}, "w").write(str(child.pid))`,
    ].join('\n');
    fs.writeFileSync(path.join(layout.dir, 'start.py'), starter);
    fs.writeFileSync(
      path.join(bin, 'launchctl'),
      `#!/bin/sh\necho "$*" >> "${calls}"\ncase "$1" in\n  load) mkdir -p "${home}/Library/Logs"; exec python3 "${path.join(layout.dir, 'start.py')}" "$3" ;;\n  unload) kill "$(cat "${pidFile}")" ;;\n  list) [ -f "${pidFile}" ] && echo "{ \\"PID\\" = $(cat "${pidFile}"); }" ;;\nesac\n`,
      { mode: 0o755 },
    );
    const env = { ...layout.env, HOME: home, PATH: `${bin}${path.delimiter}${process.env.PATH ?? ''}` };
    let out = '';
    let err = '';
    const io: CliIO = { stdout: { write: (s: string) => (out += s) }, stderr: { write: (s: string) => (err += s) }, stdin: process.stdin, env };
    const c = { io, platform: 'darwin' as const, node: process.execPath, bin: BIN };

    const code = await handleServiceInstall({}, c);
    const pid = Number(fs.readFileSync(pidFile, 'utf8'));
    trackPid(pid);
    expect(err).toBe('');
    expect(code).toBe(0);
    const plist = path.join(home, 'Library', 'LaunchAgents', 'dev.credproxy.plist');
    expect(fs.readFileSync(calls, 'utf8')).toBe(`load -w ${plist}\n`);
    const parsed = JSON.parse(
      spawnSync('python3', ['-c', 'import json, plistlib, sys; print(json.dumps(plistlib.load(open(sys.argv[1], "rb"))))', plist], { encoding: 'utf8' }).stdout,
    ) as Record<string, unknown>;
    expect(parsed).toMatchObject({
      Label: 'dev.credproxy',
      ProgramArguments: [process.execPath, BIN, 'serve'],
      RunAtLoad: true,
      KeepAlive: { SuccessfulExit: false },
      SoftResourceLimits: { NumberOfFiles: 8192 },
      EnvironmentVariables: { CREDPROXY_SOCKET: layout.socket, CREDPROXY_DATA_DIR: layout.env.CREDPROXY_DATA_DIR },
    });
    expect(out).toContain(`(pid ${pid}) answers on ${layout.socket}`);
    expect(await pingPid(layout.socket)).toBe(pid);
    expect(await serviceStatus({}, c)).toMatchObject({ manager: 'launchd', installed: true, enabled: 'loaded', active: 'running', proxy: { running: true, pid } });

    expect(await handleServiceUninstall({}, c)).toBe(0);
    expect(fs.readFileSync(calls, 'utf8')).toContain(`unload -w ${plist}\n`);
    expect(fs.existsSync(plist)).toBe(false);
    await waitFor(() => !isAlive(pid), 10_000, 'the agent to stop');
  });
});

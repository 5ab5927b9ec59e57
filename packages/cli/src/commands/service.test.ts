import { describe, expect, it } from 'vitest';
import { renderSystemdUnit, serviceEnvironment, serviceManager, systemdEnvironmentLine, systemdQuoteWord } from './service.js';

describe('systemd quoting', () => {
  it('double-quotes ExecStart words: backslash and quote escaped, % and $ doubled', () => {
    expect(systemdQuoteWord('/opt/my node/bin')).toBe('"/opt/my node/bin"');
    expect(systemdQuoteWord('a"b\\c%d$e')).toBe('"a\\"b\\\\c%%d$$e"');
  });

  it('Environment= lines escape quotes, backslashes and % (no $ expansion there)', () => {
    expect(systemdEnvironmentLine('CREDPROXY_X', 'a "b" 50% $HOME\\')).toBe('Environment="CREDPROXY_X=a \\"b\\" 50%% $HOME\\\\"');
  });

  it('refuses a newline, which would start a directive of the value\'s choosing', () => {
    expect(() => systemdEnvironmentLine('CREDPROXY_X', 'a\nExecStartPre=/bin/evil')).toThrow(/control character/);
    expect(() => systemdQuoteWord('/bin/a\nb')).toThrow(/control character/);
  });
});

describe('the service environment', () => {
  it('keeps CREDPROXY_* (paths made absolute), leaves out secrets and everything else, pins the socket', () => {
    const env = serviceEnvironment(
      { CREDPROXY_DATA_DIR: 'rel/data', CREDPROXY_KEY_FILE: '/k', CREDPROXY_CAPABILITY_TOKEN: 'cpt_x', CREDPROXY_DEBUG: '1', HOME: '/h', AWS_SECRET: 's' },
      '/run/user/1/credproxy/proxy.sock',
    );
    expect(env.vars).toEqual([
      ['CREDPROXY_DATA_DIR', `${process.cwd()}/rel/data`],
      ['CREDPROXY_DEBUG', '1'],
      ['CREDPROXY_KEY_FILE', '/k'],
      ['CREDPROXY_SOCKET', '/run/user/1/credproxy/proxy.sock'],
    ]);
    expect(env.skipped).toEqual(['CREDPROXY_CAPABILITY_TOKEN']);
    const unit = renderSystemdUnit({ node: '/usr/bin/node', bin: '/x/bin.js', env });
    expect(unit).not.toContain('cpt_x');
    expect(unit).toMatch(/^LimitNOFILE=8192$/m);
  });

  it('puts the unit under $XDG_CONFIG_HOME, else ~/.config; the agent under ~/Library/LaunchAgents; refuses other platforms', () => {
    expect(serviceManager({ HOME: '/h', XDG_CONFIG_HOME: '/c' }, 'linux').file).toBe('/c/systemd/user/credproxy.service');
    expect(serviceManager({ HOME: '/h' }, 'linux').file).toBe('/h/.config/systemd/user/credproxy.service');
    expect(serviceManager({ HOME: '/h' }, 'darwin').file).toBe('/h/Library/LaunchAgents/dev.credproxy.plist');
    expect(() => serviceManager({ HOME: '/h' }, 'win32')).toThrow(/Linux \(systemd\) and macOS \(launchd\)/);
  });
});

import { describe, expect, it } from 'vitest';
import { secretServiceReachable } from './key-source.js';

describe('secretServiceReachable', () => {
  const none = (): boolean => false;

  it('on Linux: a session bus address, an X display or a bus socket in the runtime dir', () => {
    expect(secretServiceReachable({ DBUS_SESSION_BUS_ADDRESS: 'unix:path=/tmp/bus' }, 'linux', none, 1000)).toBe(true);
    expect(secretServiceReachable({ DISPLAY: ':0' }, 'linux', none, 1000)).toBe(true);
    expect(secretServiceReachable({ XDG_RUNTIME_DIR: '/run/user/1000' }, 'linux', (f) => f === '/run/user/1000/bus', 1000)).toBe(true);
    expect(secretServiceReachable({}, 'linux', (f) => f === '/run/user/1000/bus', 1000)).toBe(true);
  });

  it('on Linux without any of them (a server, a container, CI): no', () => {
    expect(secretServiceReachable({}, 'linux', none, 1000)).toBe(false);
    expect(secretServiceReachable({ XDG_RUNTIME_DIR: '/run/user/1000' }, 'linux', none, 1000)).toBe(false);
    expect(secretServiceReachable({ DBUS_SESSION_BUS_ADDRESS: '' }, 'linux', none, undefined)).toBe(false);
  });

  it('elsewhere the OS keyring is always asked', () => {
    expect(secretServiceReachable({}, 'darwin', none, 501)).toBe(true);
    expect(secretServiceReachable({}, 'win32', none, undefined)).toBe(true);
  });
});

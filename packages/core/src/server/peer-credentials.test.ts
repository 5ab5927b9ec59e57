import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createPeerCredentialReader } from './peer-credentials.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe.runIf(process.platform === 'linux')('peer credentials (SO_PEERCRED through koffi)', () => {
  it("reads the connecting process's real pid and uid: koffi's native module is in place without its install script", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'cp-peer-'));
    dirs.push(dir);
    const socketPath = path.join(dir, 's');
    const warnings: string[] = [];
    const read = createPeerCredentialReader({ log: (level, msg) => void (level === 'warn' && warnings.push(msg)) });
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(socketPath, resolve));
    const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
    const child = spawn(process.execPath, ['-e', `require('net').connect(${JSON.stringify(socketPath)}); setTimeout(() => {}, 10000)`]);
    try {
      const socket = await accepted;
      const peer = read(socket);
      expect(warnings).toEqual([]);
      expect(peer.pid).toBe(child.pid);
      expect(peer.uid).toBe(process.getuid!());
      expect(peer.gid).toBe(process.getgid!());
      // The reader reuses its buffers: a second read of another socket is that socket's peer.
      const second = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
      const own = net.connect(socketPath);
      const ownSocket = await second;
      expect(read(ownSocket)).toEqual({ pid: process.pid, uid: process.getuid!(), gid: process.getgid!() });
      expect(read(socket).pid).toBe(child.pid);
      own.destroy();
      ownSocket.destroy();
      socket.destroy();
    } finally {
      child.kill();
      server.close();
    }
  });
});

describe('peer credentials where the platform cannot tell', () => {
  it('answers {} and says so once in the log', () => {
    const warnings: string[] = [];
    const read = createPeerCredentialReader({ log: (level, msg) => void (level === 'warn' && warnings.push(msg)) }, 'darwin');
    expect(read(new net.Socket())).toEqual({});
    expect(read(new net.Socket())).toEqual({});
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('relying on socket file modes');
  });
});

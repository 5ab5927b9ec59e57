import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { isRunning } from './process.js';

describe('isRunning', () => {
  it('is true for a live process', () => {
    expect(isRunning(process.pid)).toBe(true);
  });

  it.runIf(fs.existsSync('/proc/self/stat'))('counts an unreaped (zombie) process as stopped', async () => {
    // `sleep 0.05` is a child of a shell that then becomes `sleep 5` and never reaps it.
    const parent = spawn('sh', ['-c', 'sleep 0.05 & echo $!; exec sleep 5'], { stdio: ['ignore', 'pipe', 'ignore'] });
    try {
      const pid = Number(await new Promise<string>((resolve) => parent.stdout.once('data', (d: Buffer) => resolve(d.toString()))));
      expect(isRunning(pid)).toBe(true);
      const deadline = Date.now() + 3000;
      while (!/\) Z /.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8')) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      expect(() => process.kill(pid, 0)).not.toThrow(); // still "alive" to kill(0)…
      expect(isRunning(pid)).toBe(false); // …but stopped
    } finally {
      parent.kill('SIGKILL');
    }
  });
});

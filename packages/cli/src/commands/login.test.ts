import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { ExitCode } from '../exit-codes.js';
import { readLine } from './login.js';

describe('readLine', () => {
  it('reads one pasted line', async () => {
    const stdin = new PassThrough();
    const line = readLine(stdin);
    stdin.write('code#state\n');
    await expect(line).resolves.toBe('code#state');
  });

  it('is cancelled by the signal while waiting', async () => {
    const stdin = new PassThrough();
    const ctl = new AbortController();
    const line = readLine(stdin, ctl.signal);
    ctl.abort();
    await expect(line).rejects.toMatchObject({ exitCode: ExitCode.INTERRUPTED });
  });

  // Ctrl-C can land while the URL is still being printed, before the prompt: the signal is then
  // already aborted, and waiting for a line would hang.
  it('gives up at once on a signal that was aborted before it was called', async () => {
    const stdin = new PassThrough();
    const ctl = new AbortController();
    ctl.abort();
    await expect(readLine(stdin, ctl.signal)).rejects.toMatchObject({ exitCode: ExitCode.INTERRUPTED });
    expect(stdin.listenerCount('data')).toBe(0);
  });
});

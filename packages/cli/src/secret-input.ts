/**
 * Read a secret from stdin, never from argv: piped input whole, or typed at a terminal with echo
 * off (raw mode), so it lands neither in shell history nor in `ps`.
 */
import { CliError, ExitCode } from './exit-codes.js';
import type { CliIO } from './output.js';

/** Piped input, minus one trailing newline (what `echo` and here-strings add). */
export async function readPiped(stdin: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stdin) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer));
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

/** One line typed at a terminal with echo off. Ctrl-C cancels (exit 130), Ctrl-D ends the line. */
export function readHidden(io: CliIO, prompt: string): Promise<string> {
  const { stdin, stderr } = io;
  return new Promise((resolve, reject) => {
    let value = '';
    const finish = (err?: Error): void => {
      stdin.off('data', onData);
      stdin.setRawMode?.(false);
      stdin.pause();
      stderr.write('\n');
      if (err) reject(err);
      else resolve(value);
    };
    const onData = (chunk: Buffer | string): void => {
      for (const ch of chunk.toString('utf8')) {
        if (ch === '\r' || ch === '\n' || ch === '\u0004') return finish();
        if (ch === '\u0003') return finish(new CliError('cancelled', ExitCode.INTERRUPTED));
        if (ch === '\u007f' || ch === '\b') value = [...value].slice(0, -1).join('');
        else if (ch >= ' ') value += ch;
      }
    };
    stderr.write(prompt);
    stdin.setRawMode?.(true);
    stdin.on('data', onData);
    stdin.resume();
  });
}

export function readSecret(io: CliIO, prompt: string): Promise<string> {
  return io.stdin.isTTY && io.stdin.setRawMode ? readHidden(io, prompt) : readPiped(io.stdin);
}

/**
 * `credproxy audit verify` checks the audit log's hash chain (SPEC §9) and names the file and
 * line where it breaks; `credproxy audit tail [-n N] [--follow] [--client C] [--json]` reads it.
 * Both read `<data dir>/audit.log*` directly: the proxy need not run.
 */
import { closeSync, fstatSync, openSync, readSync, statSync } from 'node:fs';
import type { Command } from 'commander';
import type { CommandContext } from '../command-kit.js';
import { CliError, ExitCode, UsageError } from '../exit-codes.js';
import { type CliIO, printJson } from '../output.js';

interface VerifyOptions {
  json?: boolean;
}

interface TailOptions {
  lines?: string;
  follow?: boolean;
  client?: string;
  json?: boolean;
}

async function auditLogPath(io: CliIO): Promise<string> {
  const { resolvePaths } = await import('@credproxy/core');
  return resolvePaths({ env: io.env }).auditLog;
}

export async function handleAuditVerify(options: VerifyOptions, io: CliIO): Promise<number> {
  const core = await import('@credproxy/core');
  const file = core.resolvePaths({ env: io.env }).auditLog;
  const report = core.verifyAuditChain(file);
  if (options.json) {
    printJson(io, report);
    return report.ok ? ExitCode.OK : ExitCode.ERROR;
  }
  if (report.files.length === 0) throw new CliError(`no audit log at ${file} — the proxy writes it once it has served a connection`);
  if (!report.ok) {
    const b = report.break!;
    throw new CliError(`the audit log's chain breaks at ${b.file} line ${b.line}: ${b.reason}`);
  }
  const start = report.fromGenesis ? 'from the first line ever written' : 'from the oldest line kept (older files were rotated away)';
  io.stdout.write(`audit log intact: ${report.lines} lines in ${report.files.length} file(s), chained ${start}\n`);
  return ExitCode.OK;
}

/** One line as a person reads it: time, client, what, outcome, then the other fields. */
export function formatAuditLine(record: Record<string, unknown>): string {
  const { ts, prev: _prev, client, event, op, outcome, provider, bucket, ...rest } = record;
  const what = event === 'op' || event === undefined ? String(op ?? '') : event === op ? String(event) : `${String(event)} ${String(op ?? '')}`.trim();
  const account = provider === undefined ? '' : ` ${String(provider)}/${String(bucket ?? 'default')}`;
  const extra = Object.entries(rest)
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
  return `${String(ts ?? '')}  ${String(client ?? '-')}  ${what}  ${String(outcome ?? '')}${account}${extra ? `  ${extra}` : ''}\n`;
}

class LineSink {
  #rest = '';
  constructor(
    private readonly io: CliIO,
    private readonly options: TailOptions,
  ) {}

  /** Feed text; complete lines are printed, a partial one waits for the rest. */
  push(text: string, limit?: { last: number }): void {
    const parts = (this.#rest + text).split('\n');
    this.#rest = parts.pop() ?? '';
    const wanted = parts.filter((line) => line !== '' && this.#matches(line));
    for (const line of limit ? wanted.slice(-limit.last) : wanted) this.#print(line);
  }

  #matches(line: string): boolean {
    if (this.options.client === undefined) return true;
    try {
      return (JSON.parse(line) as { client?: unknown }).client === this.options.client;
    } catch {
      return false;
    }
  }

  #print(line: string): void {
    if (this.options.json) {
      this.io.stdout.write(`${line}\n`);
      return;
    }
    try {
      this.io.stdout.write(formatAuditLine(JSON.parse(line) as Record<string, unknown>));
    } catch {
      this.io.stdout.write(`(unreadable line) ${line.slice(0, 200)}\n`);
    }
  }
}

function readFrom(fd: number, offset: number): { text: string; offset: number } {
  const size = fstatSync(fd).size;
  if (size <= offset) return { text: '', offset: size < offset ? 0 : offset };
  const buf = Buffer.alloc(size - offset);
  const n = readSync(fd, buf, 0, buf.length, offset);
  return { text: buf.subarray(0, n).toString('utf8'), offset: offset + n };
}

export async function handleAuditTail(options: TailOptions, io: CliIO, signal?: AbortSignal): Promise<number> {
  const last = options.lines === undefined ? 20 : Number(options.lines);
  if (!Number.isInteger(last) || last < 0) throw new UsageError('-n takes a whole number of lines, e.g. -n 50');
  const file = await auditLogPath(io);
  const sink = new LineSink(io, options);
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    if (!options.follow) throw new CliError(`no audit log at ${file} — the proxy writes it once it has served a connection`);
    fd = -1;
  }
  let offset = 0;
  if (fd >= 0) {
    const first = readFrom(fd, 0);
    sink.push(first.text, { last });
    offset = first.offset;
  }
  if (!options.follow) {
    if (fd >= 0) closeSync(fd);
    return ExitCode.OK;
  }
  // Follow: read what is appended; when the proxy rotates the file (a new inode at the path),
  // finish the old one through the descriptor we hold, then open the new one.
  await new Promise<void>((resolve) => {
    const stop = (): void => {
      clearInterval(timer);
      process.off('SIGINT', stop);
      resolve();
    };
    const timer = setInterval(() => {
      if (fd >= 0) {
        const next = readFrom(fd, offset);
        sink.push(next.text);
        offset = next.offset;
      }
      let ino: number | undefined;
      try {
        ino = statSync(file).ino;
      } catch {
        return;
      }
      if (fd < 0 || ino !== fstatSync(fd).ino) {
        if (fd >= 0) closeSync(fd);
        fd = openSync(file, 'r');
        offset = 0;
      }
    }, 250);
    signal?.addEventListener('abort', stop, { once: true });
    process.once('SIGINT', stop);
  });
  if (fd >= 0) closeSync(fd);
  return ExitCode.OK;
}

export function register(program: Command, ctx: CommandContext): void {
  const audit = program.command('audit').description('check and read the audit log (a hash chain of every connect, handshake, op and forwarded request)');
  audit
    .command('verify')
    .description('check the hash chain; exits 1 naming the file and line where a line was changed, removed or reordered')
    .option('--json', 'print the report as JSON')
    .action(async (opts: VerifyOptions) => {
      ctx.exitCode = await handleAuditVerify(opts, ctx.io);
    });
  audit
    .command('tail')
    .description('print the last lines of the audit log')
    .option('-n, --lines <n>', 'how many lines (default 20)')
    .option('-f, --follow', 'keep printing lines as they are written (Ctrl-C stops)')
    .option('--client <name>', 'only the lines of this client (or "owner")')
    .option('--json', 'print the lines as they are stored (JSON)')
    .action(async (opts: TailOptions) => {
      ctx.exitCode = await handleAuditTail(opts, ctx.io);
    });
}

/**
 * What commands print. Human text for people; with `--json`, exactly the `data` object of the op
 * behind the command, as one JSON document and nothing else on stdout (SPEC §5).
 */

/** The streams and environment a command runs with; tests pass their own. */
export interface CliIO {
  stdout: { write(chunk: string): unknown };
  stderr: { write(chunk: string): unknown; isTTY?: boolean };
  stdin: NodeJS.ReadableStream & { isTTY?: boolean; setRawMode?(mode: boolean): unknown };
  env: NodeJS.ProcessEnv;
}

export function processIO(): CliIO {
  return { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin, env: process.env };
}

export function printJson(io: CliIO, data: unknown): void {
  io.stdout.write(JSON.stringify(data, null, 2) + '\n');
}

/** Print `data` as JSON with --json, else the human text (which ends with a newline). */
export function printResult<T>(io: CliIO, json: boolean | undefined, data: T, human: (data: T) => string): void {
  if (json) printJson(io, data);
  else io.stdout.write(human(data));
}

/** "github" for the default bucket, "github:work" otherwise — the same form `--provider` takes. */
export function accountLabel(provider: string, bucket?: string): string {
  return bucket === undefined || bucket === 'default' ? provider : `${provider}:${bucket}`;
}

/** Columns padded to their widest cell, two spaces apart, no trailing blanks. */
export function formatTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  return all
    .map((row) =>
      row
        .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n')
    .concat('\n');
}

/** "in 42m", "in 3h", "5m ago": coarse on purpose, for a quick look. */
export function formatRelative(seconds: number): string {
  const abs = Math.abs(Math.round(seconds));
  let text: string;
  if (abs < 90) text = `${abs}s`;
  else if (abs < 90 * 60) text = `${Math.round(abs / 60)}m`;
  else if (abs < 36 * 3600) text = `${Math.round(abs / 3600)}h`;
  else text = `${Math.round(abs / 86_400)}d`;
  return seconds >= 0 ? `in ${text}` : `${text} ago`;
}

function pad2(n: number): string {
  return String(n).padStart(2, '0');
}

/** Local time as "2026-11-23 14:05". */
export function formatLocalTime(unixSeconds: number): string {
  const d = new Date(unixSeconds * 1000);
  return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ${pad2(d.getHours())}:${pad2(d.getMinutes())}`;
}

/** "2026-11-23 14:05 (in 42m)"; "-" when there is no time. */
export function formatExpiry(unixSeconds: number | undefined, nowMs = Date.now()): string {
  if (unixSeconds === undefined) return '-';
  return `${formatLocalTime(unixSeconds)} (${formatRelative(unixSeconds - nowMs / 1000)})`;
}

/** Parsing of the argument forms commands share; each failure is a UsageError naming the form. */
import { UsageError } from './exit-codes.js';

const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };

/** `90s`, `30m`, `12h`, `7d` or plain seconds → seconds (a positive integer). */
export function parseDuration(text: string): number {
  const match = /^(\d+)([smhd]?)$/.exec(text.trim());
  const seconds = match ? Number(match[1]) * (UNIT_SECONDS[match[2] || 's'] ?? 1) : NaN;
  if (!Number.isSafeInteger(seconds) || seconds <= 0) {
    throw new UsageError(`invalid duration '${text}' — use a number with s, m, h or d (90s, 30m, 12h, 7d) or plain seconds`);
  }
  return seconds;
}

/** A whole number of seconds, zero allowed (`--min-valid 0`). */
export function parseSeconds(text: string, option: string): number {
  const n = /^\d+$/.test(text.trim()) ? Number(text.trim()) : NaN;
  if (!Number.isSafeInteger(n)) throw new UsageError(`${option} takes a whole number of seconds, not '${text}'`);
  return n;
}

export interface AccountSpec {
  provider: string;
  bucket?: string;
}

/** `PROVIDER` or `PROVIDER:BUCKET` (names cannot contain ':'). */
export function parseAccountSpec(text: string): AccountSpec {
  const colon = text.indexOf(':');
  const provider = colon === -1 ? text : text.slice(0, colon);
  const bucket = colon === -1 ? undefined : text.slice(colon + 1);
  if (provider === '' || bucket === '' || (bucket !== undefined && bucket.includes(':'))) {
    throw new UsageError(`invalid account '${text}' — use PROVIDER or PROVIDER:BUCKET, e.g. github or github:work`);
  }
  return bucket === undefined ? { provider } : { provider, bucket };
}

/** An environment variable name a shell can use. */
export function assertEnvName(name: string): string {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
    throw new UsageError(`invalid environment variable name '${name}' — use letters, digits and _, e.g. ACCESS_TOKEN`);
  }
  return name;
}

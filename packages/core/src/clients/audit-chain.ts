/**
 * The audit log as a hash chain (SPEC §9): every line is a JSON object whose `prev` field is the
 * hex SHA-256 of the previous line's bytes without its newline — across rotated files — and the
 * first line ever carries 64 zeros. A changed, removed or reordered line breaks the chain at the
 * line after it (or at it), which `verifyAuditChain` names by file and 1-based line.
 *
 * Tamper-evident, not tamper-proof: whoever can rewrite the whole file can rebuild the chain.
 * What it buys is that an edit of part of the history (one line removed to hide a request) shows.
 */
import { hash } from 'node:crypto';
import { closeSync, openSync, readFileSync, readSync, statSync } from 'node:fs';

/** Rotated files the proxy keeps: audit.log.1 … audit.log.AUDIT_KEEP. */
export const AUDIT_KEEP = 3;

/** `prev` of the first line ever written. */
export const GENESIS_PREV = '0'.repeat(64);

/** The SHA-256 of a line's bytes (UTF-8, without its newline), as hex; a string is hashed as UTF-8. */
export function lineHash(line: string | Uint8Array): string {
  return hash('sha256', line, 'hex');
}

/** The files of one log, oldest first: audit.log.N … audit.log.1, audit.log. */
export function auditFiles(file: string, keep: number): string[] {
  const out: string[] = [];
  for (let i = keep; i >= 1; i--) out.push(`${file}.${i}`);
  out.push(file);
  return out.filter((f) => {
    try {
      return statSync(f).isFile();
    } catch {
      return false;
    }
  });
}

/** The last complete line of a file (without newline), or undefined when it has none. */
export function lastLineOf(file: string): string | undefined {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    return undefined;
  }
  try {
    const size = statSync(file).size;
    // Lines are short (every field capped); read a tail that surely holds the last two.
    let span = Math.min(size, 64 * 1024);
    for (;;) {
      const buf = Buffer.alloc(span);
      readSync(fd, buf, 0, span, size - span);
      const text = buf.toString('utf8');
      const end = text.endsWith('\n') ? text.length - 1 : text.length;
      const start = text.lastIndexOf('\n', end - 1);
      if (start >= 0 || span === size) return end === 0 ? undefined : text.slice(start + 1, end);
      span = Math.min(size, span * 4);
    }
  } finally {
    closeSync(fd);
  }
}

/** Where the next line's `prev` comes from: the newest line on disk, across rotated files. */
export function chainHead(file: string, keep: number): string {
  const files = auditFiles(file, keep);
  for (let i = files.length - 1; i >= 0; i--) {
    const last = lastLineOf(files[i]!);
    if (last !== undefined) return lineHash(last);
  }
  return GENESIS_PREV;
}

export interface ChainBreak {
  file: string;
  /** 1-based line number in `file`. */
  line: number;
  reason: string;
}

export interface ChainReport {
  ok: boolean;
  files: string[];
  lines: number;
  /** False when the oldest file's first line is not the first line ever (older files rotated away). */
  fromGenesis: boolean;
  break?: ChainBreak;
}

/**
 * Check the chain over every file of the log, oldest first. The first line of the oldest file
 * starts the chain: 64 zeros when nothing was rotated away, else whatever it says (the lines
 * before it are gone with their file).
 */
export function verifyAuditChain(file: string, keep = AUDIT_KEEP): ChainReport {
  const files = auditFiles(file, Math.max(keep, 16));
  let prevHash: string | undefined;
  let prevWhere = '';
  let lines = 0;
  let fromGenesis = true;
  for (const f of files) {
    const text = readFileSync(f, 'utf8');
    const rows = text.split('\n');
    if (rows[rows.length - 1] === '') rows.pop();
    for (let i = 0; i < rows.length; i++) {
      const row = rows[i]!;
      const where = `${f}:${i + 1}`;
      let prev: unknown;
      try {
        const value: unknown = JSON.parse(row);
        prev = typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>).prev : undefined;
      } catch {
        return { ok: false, files, lines, fromGenesis, break: { file: f, line: i + 1, reason: 'not a JSON object (the line was changed or torn)' } };
      }
      if (typeof prev !== 'string' || !/^[0-9a-f]{64}$/.test(prev)) {
        return { ok: false, files, lines, fromGenesis, break: { file: f, line: i + 1, reason: 'no "prev" field of 64 hex characters' } };
      }
      if (prevHash === undefined) {
        fromGenesis = prev === GENESIS_PREV;
      } else if (prev !== prevHash) {
        return {
          ok: false,
          files,
          lines,
          fromGenesis,
          break: {
            file: f,
            line: i + 1,
            reason: `its "prev" is not the SHA-256 of the line before it (${prevWhere}): that line was changed, or lines between them were removed or reordered`,
          },
        };
      }
      prevHash = lineHash(row);
      prevWhere = where;
      lines++;
    }
  }
  return { ok: true, files, lines, fromGenesis };
}

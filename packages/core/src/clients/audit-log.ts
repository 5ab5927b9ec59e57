/**
 * The audit log: one JSON line per connect, handshake and op (client, op, provider/bucket,
 * outcome, pid, duration) in `<data dir>/audit.log`, 0600, rotated by size. Events carry names
 * and codes only — never payload values — so no secret byte can reach it. Lines are batched into
 * one append at a time to stay off the hot path.
 */
import { appendFileSync, renameSync, statSync } from 'node:fs';
import type { Clock } from '../util/clock.js';

/**
 * Lines are written in batches: at most this long after the first queued line, or sooner when
 * this much is queued. A crash can lose that window of audit lines, never a token.
 */
const FLUSH_DELAY_MS = 100;
const FLUSH_BYTES = 64 * 1024;
const QUOTED_CACHE_ENTRIES = 1024;

export type AuditRecord = Record<string, string | number | boolean | undefined>;

export interface AuditLogOptions {
  file: string;
  clock: Clock;
  maxBytes?: number;
  /** Rotated files kept: audit.log.1 … audit.log.N. */
  keep?: number;
}

export class AuditLog {
  readonly #o: Required<AuditLogOptions>;
  /**
   * Lines are encoded into this buffer as they come, so no line string outlives its op: queued
   * strings survived garbage collections, which made V8 grow its young generation under load.
   */
  readonly #buffer = Buffer.allocUnsafe(FLUSH_BYTES);
  #used = 0;
  #timer: NodeJS.Timeout | undefined;
  #size: number | undefined;
  /** The line prefix for the current millisecond: many ops share one. */
  #tsAt = Number.NaN;
  readonly #quoted = new Map<string, string>();
  #lastOp: { client: string; op: string; outcome: string; provider: string | undefined; bucket: string | undefined; json: string } | undefined;
  #ts = '';

  constructor(options: AuditLogOptions) {
    this.#o = { maxBytes: 10 * 1024 * 1024, keep: 3, ...options };
  }

  record<T extends { [K in keyof T]: AuditRecord[string] }>(event: T): void {
    let body = '';
    for (const key in event) {
      const value: AuditRecord[string] = event[key];
      if (value === undefined) continue;
      body += `,"${key}":${typeof value === 'string' ? this.#quote(value) : String(value)}`;
    }
    this.#push(body);
  }

  /**
   * The line of one op — the same bytes as record({event: 'op', client, op, outcome, provider,
   * bucket, ms, pid}) — without building an event object. Consecutive ops of the same kind (a
   * client polling get_token) share the line's middle.
   */
  op(client: string, op: string, outcome: string, provider: string | undefined, bucket: string | undefined, ms: number | undefined, pid: number | undefined): void {
    let last = this.#lastOp;
    if (last === undefined || last.client !== client || last.op !== op || last.outcome !== outcome || last.provider !== provider || last.bucket !== bucket) {
      let json = `,"event":"op","client":${this.#quote(client)},"op":${this.#quote(op)},"outcome":${this.#quote(outcome)}`;
      if (provider !== undefined) json += `,"provider":${this.#quote(provider)}`;
      if (bucket !== undefined) json += `,"bucket":${this.#quote(bucket)}`;
      last = { client, op, outcome, provider, bucket, json };
      this.#lastOp = last;
    }
    let body = last.json;
    if (ms !== undefined) body += `,"ms":${ms}`;
    if (pid !== undefined) body += `,"pid":${pid}`;
    this.#push(body);
  }

  /** Add `{"ts":…` + body + `}` as a line to the batch. */
  #push(body: string): void {
    const now = this.#o.clock.now();
    if (now !== this.#tsAt) {
      this.#tsAt = now;
      this.#ts = `{"ts":"${new Date(now).toISOString()}"`;
    }
    const line = `${this.#ts}${body}}\n`;
    // At most 4 bytes of UTF-8 per UTF-16 unit: flush first when the line might not fit.
    if (this.#used + line.length * 4 > FLUSH_BYTES) {
      this.#write();
      if (line.length * 4 > FLUSH_BYTES) {
        this.#append(Buffer.from(line, 'utf8'));
        return;
      }
    }
    this.#used += this.#buffer.write(line, this.#used, 'utf8');
    this.#timer ??= setTimeout(() => this.#write(), FLUSH_DELAY_MS);
  }

  /** JSON of a string; names, ops and outcomes repeat, so their JSON is kept (a bounded set). */
  #quote(value: string): string {
    let quoted = this.#quoted.get(value);
    if (quoted === undefined) {
      quoted = JSON.stringify(value);
      if (this.#quoted.size >= QUOTED_CACHE_ENTRIES) this.#quoted.clear();
      this.#quoted.set(value, quoted);
    }
    return quoted;
  }

  /**
   * One synchronous append per batch (well under a millisecond for 64 KiB). An earlier version
   * with async appends could stall under sustained load after a rotation and then kept every
   * later line in memory; a synchronous write cannot be left pending.
   */
  #write(): void {
    if (this.#timer) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    if (this.#used === 0) return;
    const chunk = this.#buffer.subarray(0, this.#used);
    this.#used = 0;
    this.#append(chunk);
  }

  #append(chunk: Buffer): void {
    try {
      this.#rotateIfNeeded(chunk.length);
      appendFileSync(this.#o.file, chunk, { mode: 0o600 });
      this.#size = (this.#size ?? 0) + chunk.length;
    } catch {
      // Auditing must never take the proxy down; the batch is dropped, the next one tries again.
      this.#size = undefined;
    }
  }

  /** Everything recorded so far is on disk when this returns. */
  async flush(): Promise<void> {
    this.#write();
  }

  async close(): Promise<void> {
    this.#write();
  }

  #rotateIfNeeded(incoming: number): void {
    if (this.#size === undefined) {
      try {
        this.#size = statSync(this.#o.file).size;
      } catch {
        this.#size = 0;
      }
    }
    if (this.#size + incoming <= this.#o.maxBytes) return;
    for (let i = this.#o.keep - 1; i >= 1; i--) {
      try {
        renameSync(`${this.#o.file}.${i}`, `${this.#o.file}.${i + 1}`);
      } catch {
        // that generation does not exist yet
      }
    }
    try {
      renameSync(this.#o.file, `${this.#o.file}.1`);
    } catch {
      // nothing to rotate
    }
    this.#size = 0;
  }
}

/**
 * The audit log: one JSON line per connect, handshake and op (client, op, provider/bucket,
 * outcome, pid, duration) in `<data dir>/audit.log`, 0600, rotated by size. Events carry names
 * and codes only — never payload values — so no secret byte can reach it. Lines are batched into
 * one append at a time to stay off the hot path.
 *
 * A peer must not be able to rotate the history away or pin memory through it: every string is
 * capped (MAX_FIELD_CHARS, truncation marked), and a failure line repeated within a second is
 * written once, then counted (`"repeat": N` on one line when the second is over).
 *
 * A line is encoded into the batch buffer when it is recorded, with room left for its `prev`; the
 * chain is filled in when the batch is written — one tight loop of SHA-256s over bytes already in
 * place, so no line string outlives its request and no hashing is in a request's latency. (Hashing
 * each line as it came, a few per connection, cost 3–5× more CPU per line in a busy proxy: each
 * hash then ran with cold caches.) The order of the lines is the order they were recorded in.
 */
import { closeSync, constants as fsConstants, openSync, readSync, renameSync, statSync, writeSync } from 'node:fs';
import type { Clock } from '../util/clock.js';
import { AUDIT_KEEP, chainHead, lineHash } from './audit-chain.js';

/**
 * Lines are written in batches: at most this long after the first queued line, or sooner when
 * this much is queued. A crash can lose that window of audit lines, never a token.
 */
const FLUSH_DELAY_MS = 100;
const FLUSH_BYTES = 64 * 1024;
const QUOTED_CACHE_ENTRIES = 1024;
/** Lines one batch holds at most (a line is at least ~100 bytes, so 64 KiB holds fewer). */
const MAX_BATCH_LINES = 1024;
/** What a line's `prev` holds until its batch is chained: as long as the hash that replaces it. */
const PREV_PLACEHOLDER = '0'.repeat(64);
/** Between the line's `{"ts":"…"` and its `prev` value. */
const PREV_KEY = ',"prev":"';
/** What follows a line's milliseconds up to its `prev` value: `Z","prev":"`. */
const PREV_HEAD = Buffer.from(`Z"${PREV_KEY}`, 'latin1');
const MS_KEY = Buffer.from(',"ms":', 'latin1');
const PID_KEY = Buffer.from(',"pid":', 'latin1');
const UID_KEY = Buffer.from(',"uid":', 'latin1');
/** Refused batches kept for a retry at most (a full disk); older ones are dropped. */
const MAX_UNWRITTEN_BYTES = 1024 * 1024;
/** The quoted-string cache is dropped when its keys and values pass this many UTF-16 units. */
const QUOTED_CACHE_CHARS = 128 * 1024;
/** Longer strings are cut here and marked: names are at most 64 characters, op names shorter. */
export const MAX_FIELD_CHARS = 64;
/** Identical failure lines within this window are counted, not each written. */
const REPEAT_WINDOW_MS = 1000;
/** Distinct failure lines tracked per window (by size); past it, lines are written as they come. */
const REPEAT_KEYS_CHARS = 256 * 1024;

/** A string as the audit log writes it: at most MAX_FIELD_CHARS, a longer one marked as cut. */
export function capAuditString(value: string): string {
  return value.length <= MAX_FIELD_CHARS ? value : `${value.slice(0, MAX_FIELD_CHARS)}…(${value.length} chars)`;
}

export type AuditRecord = Record<string, string | number | boolean | undefined>;

/** A connect or handshake line (and, through {@link AuditSink.op}, an op line). */
export interface AuditEvent {
  event: 'connect' | 'handshake' | 'op';
  client: string;
  op: string;
  outcome: 'ok' | string;
  provider?: string;
  bucket?: string;
  ms?: number;
  /** The peer's pid and uid as the kernel reported them at connect(). */
  pid?: number;
  uid?: number;
}

/**
 * Where the server's audit lines go: the one sink type of every listener. `op` takes an op line
 * as arguments, without an event object (the get_token hot path).
 */
export interface AuditSink {
  record(event: AuditEvent): void;
  op(client: string, op: string, outcome: string, provider: string | undefined, bucket: string | undefined, ms: number | undefined, pid: number | undefined): void;
  /** A connect or handshake line — the same as record({event, client, op: event, outcome, pid, uid}) — without an event object. */
  connection(event: 'connect' | 'handshake', client: string, outcome: string, pid: number | undefined, uid: number | undefined): void;
}

/** A sink that hands every line to `fn` as an event object (tests, custom auditing). */
export function auditSinkOf(fn: (event: AuditEvent) => void): AuditSink {
  return {
    record: fn,
    op(client, op, outcome, provider, bucket, ms, pid) {
      const event: AuditEvent = { event: 'op', client, op, outcome };
      if (provider !== undefined) event.provider = provider;
      if (bucket !== undefined) event.bucket = bucket;
      if (ms !== undefined) event.ms = ms;
      if (pid !== undefined) event.pid = pid;
      fn(event);
    },
    connection(kind, client, outcome, pid, uid) {
      const event: AuditEvent = { event: kind, client, op: kind, outcome };
      if (pid !== undefined) event.pid = pid;
      if (uid !== undefined) event.uid = uid;
      fn(event);
    },
  };
}

export interface AuditLogOptions {
  file: string;
  clock: Clock;
  maxBytes?: number;
  /** Rotated files kept: audit.log.1 … audit.log.N. */
  keep?: number;
}

export class AuditLog implements AuditSink {
  readonly #o: Required<AuditLogOptions>;
  /**
   * Lines are encoded into this buffer as they are recorded, so no line string outlives its
   * request: strings queued until the batch was written survived garbage collections, which made
   * V8 grow its young generation under load.
   */
  readonly #buffer = Buffer.allocUnsafe(FLUSH_BYTES);
  #used = 0;
  /** Where each line of the batch puts its `prev` value, and where it ends (after its newline). */
  readonly #prevAt = new Int32Array(MAX_BATCH_LINES);
  readonly #endAt = new Int32Array(MAX_BATCH_LINES);
  #lines = 0;
  #timer: NodeJS.Timeout | undefined;
  #size: number | undefined;
  /** The line prefix for the current millisecond: many ops share one. */
  #tsAt = Number.NaN;
  readonly #quoted = new Map<string, string>();
  #quotedChars = 0;
  /** Failure lines (without their ms) seen in the current window, and how often they repeated. */
  readonly #repeats = new Map<string, number>();
  #repeatChars = 0;
  #repeatTimer: NodeJS.Timeout | undefined;
  #lastOp: { client: string; op: string; outcome: string; provider: string | undefined; bucket: string | undefined; json: string; bytes: Buffer } | undefined;
  /** One per event kind: a connection's connect and handshake lines alternate. */
  #lastConnect: { client: string; outcome: string; json: string; bytes: Buffer } | undefined;
  #lastHandshake: { client: string; outcome: string; json: string; bytes: Buffer } | undefined;
  /** #secondPrefix encoded (ASCII). */
  #secondBytes: Buffer = Buffer.alloc(0);
  #ts = '';
  /** `#ts` and a `prev` placeholder: the ASCII start of every line of the current millisecond. */
  #head = '';
  /** The second #secondPrefix (`{"ts":"YYYY-MM-DDTHH:MM:SS.`) is of. */
  #second = Number.NaN;
  #secondPrefix = '';
  /** The SHA-256 of the last line chained: the next line's `prev` (audit-chain.ts). */
  #prev: string;
  /** Batches an append refused (a full disk, no descriptors), retried first; bounded in bytes. */
  readonly #unwritten: Buffer[] = [];

  constructor(options: AuditLogOptions) {
    this.#o = { maxBytes: 10 * 1024 * 1024, keep: AUDIT_KEEP, ...options };
    this.#prev = chainHead(this.#o.file, this.#o.keep);
    // A line torn by a crash mid-write gets its newline, so the next line starts a line of its own.
    if (endsWithoutNewline(this.#o.file)) this.#unwritten.push(Buffer.from('\n'));
  }

  record<T extends { [K in keyof T]: AuditRecord[string] }>(event: T): void {
    const outcome = (event as AuditRecord).outcome;
    const failed = typeof outcome === 'string' && outcome !== 'ok';
    let body = '';
    let key = '';
    for (const field in event) {
      const value: AuditRecord[string] = event[field];
      if (value === undefined) continue;
      const part = `,"${field}":${typeof value === 'string' ? this.#quote(value) : String(value)}`;
      body += part;
      if (failed && field !== 'ms') key += part;
    }
    if (failed) this.#failure(key, body);
    else this.#push(body);
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
      last = { client, op, outcome, provider, bucket, json, bytes: Buffer.from(json, 'utf8') };
      this.#lastOp = last;
    }
    if (outcome === 'ok' && this.#pushEncoded(last.bytes, MS_KEY, ms, PID_KEY, pid)) return;
    let body = last.json;
    if (ms !== undefined) body += `,"ms":${ms}`;
    if (pid !== undefined) body += `,"pid":${pid}`;
    if (outcome === 'ok') {
      this.#push(body);
      return;
    }
    this.#failure(pid === undefined ? last.json : `${last.json},"pid":${pid}`, body);
  }

  /**
   * A connect or handshake line — the same bytes as record({event, client, op: event, outcome,
   * pid, uid}) — without an event object; a connection's lines share their middle with the last one.
   */
  connection(event: 'connect' | 'handshake', client: string, outcome: string, pid: number | undefined, uid: number | undefined): void {
    let last = event === 'connect' ? this.#lastConnect : this.#lastHandshake;
    if (last === undefined || last.client !== client || last.outcome !== outcome) {
      const json = `,"event":"${event}","client":${this.#quote(client)},"op":"${event}","outcome":${this.#quote(outcome)}`;
      last = { client, outcome, json, bytes: Buffer.from(json, 'utf8') };
      if (event === 'connect') this.#lastConnect = last;
      else this.#lastHandshake = last;
    }
    if (outcome === 'ok' && this.#pushEncoded(last.bytes, PID_KEY, pid, UID_KEY, uid)) return;
    let body = last.json;
    if (pid !== undefined) body += `,"pid":${pid}`;
    if (uid !== undefined) body += `,"uid":${uid}`;
    if (outcome === 'ok') this.#push(body);
    else this.#failure(body, body);
  }

  /**
   * A failure line: the first of its kind in a window is written, the same line again (`key`: the
   * line without its ms) within the window is only counted; the count is written when the window
   * ends. So a peer repeating a refused request costs the log one line a second, not one per frame.
   */
  #failure(key: string, body: string): void {
    const seen = this.#repeats.get(key);
    if (seen !== undefined) {
      this.#repeats.set(key, seen + 1);
      return;
    }
    if (this.#repeatChars + key.length <= REPEAT_KEYS_CHARS) {
      this.#repeats.set(key, 0);
      this.#repeatChars += key.length;
      if (this.#repeatTimer === undefined) {
        this.#repeatTimer = setTimeout(() => this.#endRepeatWindow(), REPEAT_WINDOW_MS);
        this.#repeatTimer.unref();
      }
    }
    this.#push(body);
  }

  #endRepeatWindow(): void {
    if (this.#repeatTimer) {
      clearTimeout(this.#repeatTimer);
      this.#repeatTimer = undefined;
    }
    for (const [key, count] of this.#repeats) {
      if (count > 0) this.#push(`${key},"repeat":${count}`);
    }
    this.#repeats.clear();
    this.#repeatChars = 0;
  }

  /**
   * Record a line whose middle is already encoded, followed by up to two numeric fields: the same
   * bytes as #push(`${middle},"k1":${v1},"k2":${v2}`), without a C++ call or a string per line
   * (the connect, handshake and op lines of the hot paths). False when the time cannot be
   * formatted from the cached second (#push handles it).
   */
  #pushEncoded(middle: Buffer, k1: Uint8Array, v1: number | undefined, k2: Uint8Array, v2: number | undefined): boolean {
    const now = this.#o.clock.now();
    if (!Number.isSafeInteger(now) || now < 0) return false;
    const second = Math.floor(now / 1000);
    if (second !== this.#second) this.#timestamp(now);
    const prefix = this.#secondBytes;
    // Two numbers of at most 24 characters each (what String() gives a double) with their keys.
    const most = prefix.length + 3 + PREV_HEAD.length + 65 + middle.length + k1.length + k2.length + 48 + 2;
    if (this.#used + most > FLUSH_BYTES || this.#lines === MAX_BATCH_LINES) this.#write();
    const buffer = this.#buffer;
    const start = this.#used;
    buffer.set(prefix, start);
    let at = start + prefix.length;
    const ms = now - second * 1000;
    buffer[at] = 0x30 + Math.floor(ms / 100);
    buffer[at + 1] = 0x30 + (Math.floor(ms / 10) % 10);
    buffer[at + 2] = 0x30 + (ms % 10);
    at += 3;
    buffer.set(PREV_HEAD, at);
    at += PREV_HEAD.length;
    const prevAt = at;
    // The placeholder is not written: #chainBatch writes every line's prev before hashing it.
    at += PREV_PLACEHOLDER.length;
    buffer[at++] = 0x22; // "
    buffer.set(middle, at);
    at += middle.length;
    if (v1 !== undefined) at = writeField(buffer, at, k1, v1);
    if (v2 !== undefined) at = writeField(buffer, at, k2, v2);
    buffer[at++] = 0x7d; // }
    buffer[at++] = 0x0a; // newline
    this.#used = at;
    this.#prevAt[this.#lines] = prevAt;
    this.#endAt[this.#lines] = at;
    this.#lines += 1;
    this.#timer ??= setTimeout(() => this.#write(), FLUSH_DELAY_MS);
    return true;
  }

  /** Record a line (its time is now): encoded into the batch now, chained when it is written. */
  #push(body: string): void {
    const now = this.#o.clock.now();
    if (now !== this.#tsAt) {
      this.#tsAt = now;
      this.#ts = this.#timestamp(now);
      this.#head = `${this.#ts}${PREV_KEY}${PREV_PLACEHOLDER}"`;
    }
    // The head is ASCII; the body at most 3 bytes of UTF-8 per UTF-16 unit; then `}` and newline.
    const most = this.#head.length + body.length * 3 + 2;
    if (this.#used + most > FLUSH_BYTES || this.#lines === MAX_BATCH_LINES) {
      this.#write();
      if (most > FLUSH_BYTES) {
        // A line larger than a batch goes alone, chained as it is written.
        const bytes = Buffer.from(`${this.#head}${body}}\n`, 'utf8');
        bytes.write(this.#prev, this.#ts.length + PREV_KEY.length, 'latin1');
        this.#prev = lineHash(bytes.subarray(0, bytes.length - 1));
        this.#append(bytes);
        return;
      }
    }
    // Written in parts, so the line is never built as one string.
    const buffer = this.#buffer;
    const start = this.#used;
    let at = start + buffer.write(this.#head, start, 'latin1');
    at += buffer.write(body, at, 'utf8');
    buffer[at++] = 0x7d; // }
    buffer[at++] = 0x0a; // newline
    this.#used = at;
    this.#prevAt[this.#lines] = start + this.#ts.length + PREV_KEY.length;
    this.#endAt[this.#lines] = at;
    this.#lines += 1;
    this.#timer ??= setTimeout(() => this.#write(), FLUSH_DELAY_MS);
  }

  /**
   * Fill in the batch's chain, in the order the lines were recorded: each line's `prev` is the
   * SHA-256 of the line before it as written (without its newline).
   */
  #chainBatch(): void {
    const buffer = this.#buffer;
    let start = 0;
    for (let i = 0; i < this.#lines; i++) {
      const end = this.#endAt[i]!;
      buffer.write(this.#prev, this.#prevAt[i]!, 'latin1');
      this.#prev = lineHash(buffer.subarray(start, end - 1));
      start = end;
    }
    this.#lines = 0;
  }

  /**
   * `{"ts":"<ISO 8601>"`: the date and time up to the second are formatted once a second, the
   * milliseconds appended (the same text as toISOString; other times are formatted whole).
   */
  #timestamp(now: number): string {
    if (!Number.isSafeInteger(now) || now < 0) return `{"ts":"${new Date(now).toISOString()}"`;
    const second = Math.floor(now / 1000);
    if (second !== this.#second) {
      const iso = new Date(second * 1000).toISOString();
      this.#second = second;
      this.#secondPrefix = `{"ts":"${iso.slice(0, iso.length - 4)}`;
      this.#secondBytes = Buffer.from(this.#secondPrefix, 'latin1');
    }
    const ms = now - second * 1000;
    return `${this.#secondPrefix}${ms < 10 ? '00' : ms < 100 ? '0' : ''}${ms}Z"`;
  }

  /**
   * JSON of a string, capped; names, ops and outcomes repeat, so their JSON is kept (a set bounded
   * in entries and in size; a string over the cap is never a key).
   */
  #quote(value: string): string {
    if (value.length > MAX_FIELD_CHARS) return JSON.stringify(capAuditString(value));
    let quoted = this.#quoted.get(value);
    if (quoted === undefined) {
      quoted = JSON.stringify(value);
      if (this.#quoted.size >= QUOTED_CACHE_ENTRIES || this.#quotedChars > QUOTED_CACHE_CHARS) {
        this.#quoted.clear();
        this.#quotedChars = 0;
      }
      this.#quoted.set(value, quoted);
      this.#quotedChars += value.length + quoted.length;
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
    this.#chainBatch();
    const chunk = this.#buffer.subarray(0, this.#used);
    this.#used = 0;
    this.#append(chunk);
  }

  #append(chunk: Buffer): void {
    // Batches refused earlier go first, so the chain stays in order on disk.
    const pending = this.#unwritten.length > 0 ? Buffer.concat([...this.#unwritten.splice(0), chunk]) : chunk;
    try {
      this.#rotateIfNeeded(pending.length);
      // O_NOFOLLOW: a planted audit.log symlink must not make the proxy append to another file.
      const fd = openSync(this.#o.file, fsConstants.O_WRONLY | fsConstants.O_APPEND | fsConstants.O_CREAT | fsConstants.O_NOFOLLOW, 0o600);
      try {
        writeSync(fd, pending);
      } finally {
        closeSync(fd);
      }
      this.#size = (this.#size ?? 0) + pending.length;
    } catch {
      // Auditing must never take the proxy down. The batch is kept for the next write (a full
      // disk or descriptor table passes); past the bound it is dropped, and `audit verify` shows
      // the gap as a break in the chain.
      this.#size = undefined;
      // A copy: the batch buffer is reused for the next lines.
      if (pending.length <= MAX_UNWRITTEN_BYTES) this.#unwritten.push(pending.buffer === this.#buffer.buffer ? Buffer.from(pending) : pending);
    }
  }

  /** Everything recorded so far, repeat counts included, is on disk when this returns. */
  async flush(): Promise<void> {
    this.#endRepeatWindow();
    this.#write();
  }

  async close(): Promise<void> {
    this.#endRepeatWindow();
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

/** `key` then the number as String() writes it (ASCII), at `at`; returns where it ends. */
function writeField(buffer: Buffer, at: number, key: Uint8Array, value: number): number {
  buffer.set(key, at);
  at += key.length;
  const text = String(value);
  for (let i = 0; i < text.length; i++) buffer[at + i] = text.charCodeAt(i);
  return at + text.length;
}

function endsWithoutNewline(file: string): boolean {
  try {
    const size = statSync(file).size;
    if (size === 0) return false;
    const fd = openSync(file, 'r');
    try {
      const last = Buffer.alloc(1);
      readSync(fd, last, 0, 1, size - 1);
      return last[0] !== 0x0a;
    } finally {
      closeSync(fd);
    }
  } catch {
    return false;
  }
}

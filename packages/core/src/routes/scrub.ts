/**
 * Scrubbing of the injected credential from what upstream sends back (SPEC §6): an upstream that
 * echoes the request must not hand the secret to the client. Every occurrence of the secret — as
 * sent, base64 (standard and url-safe, at each of the three byte alignments inside a longer
 * base64 text), percent-encoded and JSON-escaped — is overwritten with `*`, byte for byte, so an
 * uncompressed body keeps its length (and its Content-Length).
 */
import { Duplex, pipeline, Readable, Transform, type TransformCallback } from 'node:stream';
import zlib from 'node:zlib';

const MASK = 0x2a; // '*'
/** Derived forms shorter than this are not scrubbed: they would match ordinary text. */
const MIN_DERIVED_LENGTH = 6;

function base64Forms(bytes: Buffer): string[] {
  const out: string[] = [];
  const n = bytes.length;
  for (let k = 0; k < 3; k++) {
    // Encode k filler bytes and the secret; keep only the characters made of secret bits alone,
    // which are what appears wherever the secret sits at that alignment in a longer text.
    const encoded = Buffer.concat([Buffer.alloc(k), bytes]).toString('base64');
    const start = Math.ceil((8 * k) / 6);
    const end = Math.floor((8 * (k + n)) / 6);
    out.push(encoded.slice(start, end));
  }
  // The whole encoding of the secret alone, unpadded (its last character mixes in zero bits).
  out.push(bytes.toString('base64').replace(/=+$/, ''));
  return out.flatMap((s) => [s, s.replace(/\+/g, '-').replace(/\//g, '_')]);
}

function percentForms(text: string): string[] {
  const upper = encodeURIComponent(text);
  const lower = upper.replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase());
  // Every byte percent-encoded, as some encoders do.
  const all = [...Buffer.from(text, 'utf8')].map((b) => `%${b.toString(16).padStart(2, '0').toUpperCase()}`).join('');
  return [upper, lower, upper.replace(/%20/g, '+'), all, all.toLowerCase()];
}

/**
 * Every byte sequence that betrays one of `secrets`. The raw forms are always kept; derived
 * forms only when long enough not to match ordinary text.
 */
export function scrubPatterns(secrets: readonly string[]): Buffer[] {
  const forms = new Set<string>();
  for (const secret of secrets) {
    if (secret.length === 0) continue;
    forms.add(secret);
    const derived = [
      ...base64Forms(Buffer.from(secret, 'utf8')),
      ...percentForms(secret),
      JSON.stringify(secret).slice(1, -1),
      JSON.stringify(secret).slice(1, -1).replace(/\//g, '\\/'),
    ];
    for (const d of derived) if (d.length >= MIN_DERIVED_LENGTH) forms.add(d);
  }
  const buffers = new Map<string, Buffer>();
  for (const f of forms) {
    const b = Buffer.from(f, 'utf8');
    buffers.set(b.toString('hex'), b);
  }
  return [...buffers.values()];
}

/** Chunks up to this size are searched as one-byte text (one conversion, then no native call per pattern). */
const SMALL_CHUNK = 4096;

export class SecretScrubber {
  readonly #patterns: readonly Buffer[];
  /** The patterns' bytes as one-byte (latin-1) text: byte-exact, searchable without native calls. */
  readonly #bytePatterns: readonly string[];
  /** Those patterns by their first byte. */
  readonly #byFirstByte: ReadonlyArray<readonly string[] | undefined>;
  readonly #minPatternLength: number;
  readonly #textPatterns: readonly string[];
  /** Shorter text holds no pattern (most header values): it is not searched. */
  readonly #minTextLength: number;
  readonly maxPatternLength: number;

  constructor(patterns: readonly Buffer[]) {
    this.#patterns = patterns.filter((p) => p.length > 0);
    this.#bytePatterns = this.#patterns.map((p) => p.toString('latin1'));
    const byFirst: Array<string[] | undefined> = new Array<string[] | undefined>(256).fill(undefined);
    for (const p of this.#bytePatterns) (byFirst[p.charCodeAt(0)] ??= []).push(p);
    this.#byFirstByte = byFirst;
    this.maxPatternLength = this.#patterns.reduce((m, p) => Math.max(m, p.length), 0);
    this.#minPatternLength = this.#patterns.reduce((m, p) => Math.min(m, p.length), Infinity);
    // Header values are strings; upstream's bytes may have been read as UTF-8 or as latin-1.
    const texts = new Set<string>();
    for (const p of this.#patterns) {
      texts.add(p.toString('utf8'));
      texts.add(p.toString('latin1'));
    }
    this.#textPatterns = [...texts].filter((t) => t.length > 0);
    this.#minTextLength = this.#textPatterns.reduce((m, t) => Math.min(m, t.length), Infinity);
  }

  /** The scrubber for one injected credential: the header value as sent and the bare secret. */
  static forCredential(secret: string, headerValue: string): SecretScrubber {
    const secrets = [secret, headerValue];
    // A Basic value's plain text (`x-access-token:SECRET`) is a form of the secret too.
    if (/^basic /i.test(headerValue)) secrets.push(Buffer.from(headerValue.slice(6), 'base64').toString('utf8'));
    return new SecretScrubber(scrubPatterns(secrets));
  }

  /** A scrubber for this one's patterns and `other`'s. */
  with(other: SecretScrubber): SecretScrubber {
    const merged = new Map<string, Buffer>();
    for (const p of [...this.#patterns, ...other.#patterns]) merged.set(p.toString('hex'), p);
    return new SecretScrubber([...merged.values()]);
  }

  /**
   * Mark every whole occurrence in `buf` (1 = to be masked). `mask` carries marks made earlier
   * on the first bytes; returns undefined when nothing is marked at all.
   */
  markMatches(buf: Buffer, mask?: Uint8Array): Uint8Array | undefined {
    if (buf.length < this.#minPatternLength) return mask;
    // A small chunk as one-byte text, searched by the patterns' text; a large one as it is.
    const text = buf.length <= SMALL_CHUNK ? buf.toString('latin1') : undefined;
    for (let i = 0; i < this.#patterns.length; i++) {
      const p = this.#patterns[i]!;
      const t = this.#bytePatterns[i]!;
      for (let at = text === undefined ? buf.indexOf(p) : text.indexOf(t); at !== -1; at = text === undefined ? buf.indexOf(p, at + 1) : text.indexOf(t, at + 1)) {
        mask ??= new Uint8Array(buf.length);
        mask.fill(1, at, at + p.length);
      }
    }
    return mask;
  }

  /**
   * Overwrite every whole occurrence in `buf`. Returns `buf` itself when there is none, else a
   * masked copy (the caller's buffer is never written).
   */
  scrubBuffer(buf: Buffer): Buffer {
    return applyMask(buf, this.markMatches(buf));
  }

  /**
   * Length of the longest suffix of `buf` that is a proper prefix of some pattern: the first
   * position, from the earliest a pattern could still be completing, where a pattern starting
   * with that byte begins with all the rest of `buf`.
   */
  heldTailLength(buf: Buffer): number {
    const from = Math.max(0, buf.length - (this.maxPatternLength - 1));
    if (from >= buf.length) return 0;
    const tail = buf.toString('latin1', from);
    for (let j = 0; j < tail.length; j++) {
      const candidates = this.#byFirstByte[tail.charCodeAt(j)];
      if (candidates === undefined) continue;
      const rest = tail.length - j;
      for (const p of candidates) {
        if (p.length <= rest) continue;
        let k = 1;
        while (k < rest && p.charCodeAt(k) === tail.charCodeAt(j + k)) k++;
        if (k === rest) return rest;
      }
    }
    return 0;
  }

  scrubText(text: string): string {
    if (text.length < this.#minTextLength) return text;
    let out = text;
    for (const p of this.#textPatterns) {
      if (out.includes(p)) out = out.split(p).join('*'.repeat(p.length));
    }
    return out;
  }

  /** True when a string carries a form of the secret. */
  containsSecret(text: string): boolean {
    if (text.length < this.#minTextLength) return false;
    return this.#textPatterns.some((p) => text.includes(p));
  }

  /**
   * A stream that scrubs a body on its way through. It holds back only a suffix that could be
   * the start of a pattern (at most maxPatternLength - 1 bytes) and passes everything before it
   * on at once, so an SSE event is never kept waiting for the next chunk.
   */
  createStream(): ScrubStream {
    return new ScrubStream(this);
  }

  /** The same scrubbing without a stream: the caller feeds chunks and writes what comes out. */
  createBody(): BodyScrubber {
    return new BodyScrubber(this);
  }
}

/** `buf` with the marked bytes replaced by MASK: `buf` itself when none is marked, else a copy. */
function applyMask(buf: Buffer, mask: Uint8Array | undefined, end = buf.length): Buffer {
  const view = end === buf.length ? buf : buf.subarray(0, end);
  if (mask === undefined) return view;
  let out: Buffer | undefined;
  for (let i = 0; i < end; i++) {
    if (mask[i] === 1) {
      out ??= Buffer.from(view);
      out[i] = MASK;
    }
  }
  return out ?? view;
}

const EMPTY = Buffer.alloc(0);

/**
 * The scrubbing of one body, chunk by chunk, with no stream around it: `write` hands on at once
 * everything that cannot be the start of a pattern and holds back the rest; `end` hands on what
 * is held. The forwarder drives it from the upstream body's 'data' events (a Transform and two
 * pipes per response cost more than the scrubbing itself); ScrubStream wraps it as a stream.
 *
 * The held tail is kept as upstream sent it, with its marks beside it: a short pattern masked
 * inside the tail must not hide the start of a longer one that completes with the next chunk.
 * So the output equals scrubbing the whole body at once, whatever the chunking.
 */
export class BodyScrubber {
  readonly #scrubber: SecretScrubber;
  #tail: Buffer = EMPTY;
  #tailMask: Uint8Array | undefined;
  /** Bytes handed on, after scrubbing. */
  bytesOut = 0;

  constructor(scrubber: SecretScrubber) {
    this.#scrubber = scrubber;
  }

  /** Scrub `chunk`; what may pass now goes to `emit`, in order (none, one or two buffers). */
  write(chunk: Buffer, emit: (out: Buffer) => void): void {
    if (this.#tail.length > 0 && chunk.length >= this.#scrubber.maxPatternLength) {
      this.#writeLarge(chunk, emit);
      return;
    }
    const raw = this.#tail.length === 0 ? chunk : Buffer.concat([this.#tail, chunk]);
    let mask: Uint8Array | undefined;
    if (this.#tailMask !== undefined) {
      mask = new Uint8Array(raw.length);
      mask.set(this.#tailMask);
    }
    mask = this.#scrubber.markMatches(raw, mask);
    const held = this.#scrubber.heldTailLength(raw);
    const cut = raw.length - held;
    // Copies, so a held tail never pins a large chunk in memory.
    this.#tail = held === 0 ? EMPTY : Buffer.from(raw.subarray(cut));
    this.#tailMask = held === 0 || mask === undefined ? undefined : mask.slice(cut);
    if (cut > 0) {
      this.bytesOut += cut;
      emit(applyMask(raw, mask, cut));
    }
  }

  /** The body ended: what was held back goes to `emit`. */
  end(emit: (out: Buffer) => void): void {
    const tail = this.#tail;
    const mask = this.#tailMask;
    this.#tail = EMPTY;
    this.#tailMask = undefined;
    if (tail.length > 0) {
      this.bytesOut += tail.length;
      emit(applyMask(tail, mask));
    }
  }

  /**
   * A held tail and a chunk at least a pattern long, without copying the chunk behind the tail
   * (a copy per chunk was most of the garbage made while streaming a large body): matches that
   * span the two lie within the tail and the chunk's first maxPatternLength - 1 bytes, and the
   * suffix to hold back lies within the chunk. Same output as the concatenating path.
   */
  #writeLarge(chunk: Buffer, emit: (out: Buffer) => void): void {
    const tail = this.#tail;
    const edge = this.#scrubber.maxPatternLength - 1;
    const boundary = Buffer.concat([tail, chunk.subarray(0, edge)]);
    let boundaryMask: Uint8Array | undefined;
    if (this.#tailMask !== undefined) {
      boundaryMask = new Uint8Array(boundary.length);
      boundaryMask.set(this.#tailMask);
    }
    boundaryMask = this.#scrubber.markMatches(boundary, boundaryMask);
    let chunkMask = this.#scrubber.markMatches(chunk);
    if (boundaryMask !== undefined) {
      for (let i = tail.length; i < boundary.length; i++) {
        if (boundaryMask[i] === 1) {
          chunkMask ??= new Uint8Array(chunk.length);
          chunkMask[i - tail.length] = 1;
        }
      }
    }
    const held = this.#scrubber.heldTailLength(chunk);
    const cut = chunk.length - held;
    this.#tail = held === 0 ? EMPTY : Buffer.from(chunk.subarray(cut));
    this.#tailMask = held === 0 || chunkMask === undefined ? undefined : chunkMask.slice(cut);
    this.bytesOut += tail.length + cut;
    emit(applyMask(tail, boundaryMask));
    if (cut > 0) emit(applyMask(chunk, chunkMask, cut));
  }
}

/** A BodyScrubber as a Transform stream. */
export class ScrubStream extends Transform {
  readonly #body: BodyScrubber;
  readonly #emit = (out: Buffer): void => {
    this.push(out);
  };

  constructor(scrubber: SecretScrubber) {
    super();
    this.#body = new BodyScrubber(scrubber);
  }

  /** Bytes passed on, after scrubbing. */
  get bytesOut(): number {
    return this.#body.bytesOut;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#body.write(chunk, this.#emit);
    callback();
  }

  override _flush(callback: TransformCallback): void {
    this.#body.end(this.#emit);
    callback();
  }
}

/** Content codings this proxy can undo in order to scrub (SPEC §6: compressed bodies too). */
const DECODERS: Readonly<Record<string, () => Duplex>> = {
  gzip: () => zlib.createGunzip({ flush: zlib.constants.Z_SYNC_FLUSH, finishFlush: zlib.constants.Z_SYNC_FLUSH }),
  'x-gzip': () => zlib.createGunzip({ flush: zlib.constants.Z_SYNC_FLUSH, finishFlush: zlib.constants.Z_SYNC_FLUSH }),
  deflate: deflateDecoder,
  br: () =>
    zlib.createBrotliDecompress({
      flush: zlib.constants.BROTLI_OPERATION_FLUSH,
      finishFlush: zlib.constants.BROTLI_OPERATION_FLUSH,
    }),
};

/** The codings asked of upstream: those we can decode, in the client's order. */
export function acceptableEncodings(clientAcceptEncoding: string | undefined): string {
  if (clientAcceptEncoding === undefined) return 'identity';
  const wanted = clientAcceptEncoding
    .split(',')
    .map((s) => s.trim())
    .filter((s) => {
      const [coding = '', ...params] = s.split(';').map((x) => x.trim().toLowerCase());
      if (params.some((p) => /^q=0(\.0*)?$/.test(p))) return false;
      return Object.hasOwn(DECODERS, coding);
    });
  return wanted.length === 0 ? 'identity' : wanted.join(', ');
}

/**
 * The decoders for a Content-Encoding header, outermost coding last in the header and first in
 * the returned chain; `undefined` when one of the codings cannot be decoded.
 */
export function decodersFor(contentEncoding: string): Duplex[] | undefined {
  const codings = contentEncoding
    .split(',')
    .map((s) => s.trim().toLowerCase())
    .filter((s) => s !== '' && s !== 'identity');
  if (codings.length > 3) return undefined;
  const chain: Duplex[] = [];
  for (const coding of codings.reverse()) {
    if (!Object.hasOwn(DECODERS, coding)) {
      // The stages made for the codings before it hold zlib state: released now, not at a GC.
      for (const stage of chain) stage.destroy();
      return undefined;
    }
    chain.push(DECODERS[coding]!());
  }
  return chain;
}

/**
 * HTTP `deflate` is zlib-wrapped (RFC 9110 §8.4.1.2) but some servers send raw deflate: the
 * first two bytes tell which (a zlib header is a multiple of 31 with method 8). A generator
 * stage, so backpressure holds across the switch.
 */
function deflateDecoder(): Duplex {
  return Duplex.from(async function* (source: AsyncIterable<Buffer>) {
    const it = source[Symbol.asyncIterator]();
    let head = Buffer.alloc(0);
    while (head.length < 2) {
      const next = await it.next();
      if (next.done) break;
      head = Buffer.concat([head, next.value]);
    }
    if (head.length === 0) return;
    const zlibWrapped = head.length >= 2 && (head[0]! & 0x0f) === 8 && ((head[0]! << 8) | head[1]!) % 31 === 0;
    const options = { flush: zlib.constants.Z_SYNC_FLUSH, finishFlush: zlib.constants.Z_SYNC_FLUSH };
    const inflater = zlibWrapped ? zlib.createInflate(options) : zlib.createInflateRaw(options);
    const rest = Readable.from(
      (async function* () {
        yield head;
        for (let next = await it.next(); !next.done; next = await it.next()) yield next.value;
      })(),
    );
    pipeline(rest, inflater, () => undefined);
    for await (const chunk of inflater) yield chunk as Buffer;
  });
}

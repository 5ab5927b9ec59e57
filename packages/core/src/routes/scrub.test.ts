import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatCredential } from './route-config.js';
import { acceptableEncodings, decodersFor, scrubPatterns, SecretScrubber } from './scrub.js';

const SECRET = 'sk-ant-api03-Zq8fP1x_7Lw2Kd9sTn4R/vB+ea=Qm';

/** Every form of the secret the spec names, as they would appear in a body. */
function secretForms(secret: string, value: string): string[] {
  const b64 = (s: string | Buffer): string => Buffer.from(s).toString('base64');
  const url = (s: string): string => s.replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  return [
    secret,
    value,
    b64(secret),
    url(b64(secret)),
    b64(value),
    url(b64(value)),
    encodeURIComponent(secret),
    encodeURIComponent(value),
    encodeURIComponent(secret).replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase()),
    // Inside a longer base64 text at each alignment.
    b64(`x${secret}yz`),
    b64(`xy${secret}z`),
    b64(`xyz${secret}`),
    url(b64(`{"k":"${secret}","n":1}`)),
    JSON.stringify(secret),
  ];
}

/** Where a form's bytes would survive scrubbing: the secret's own encoded characters. */
function leaks(scrubbed: string, secret: string): boolean {
  const scrubber = SecretScrubber.forCredential(secret, formatCredential('Bearer {}', secret));
  return scrubber.containsSecret(scrubbed);
}

async function run(stream: NodeJS.ReadWriteStream, chunks: Buffer[], onChunk?: (c: Buffer) => void): Promise<Buffer> {
  const out: Buffer[] = [];
  await pipeline(
    Readable.from(chunks, { objectMode: false }),
    stream,
    new Writable({
      write(c: Buffer, _e, cb) {
        out.push(c);
        onChunk?.(c);
        cb();
      },
    }),
  );
  return Buffer.concat(out);
}

describe('scrub patterns', () => {
  it('cover the secret as sent, base64 (standard and url-safe, all alignments), percent- and JSON-encoded', () => {
    const value = formatCredential('Bearer {}', SECRET);
    const scrubber = SecretScrubber.forCredential(SECRET, value);
    for (const form of secretForms(SECRET, value)) {
      const body = `before ${form} after`;
      const out = scrubber.scrubBuffer(Buffer.from(body)).toString();
      expect(out.length, form).toBe(body.length);
      expect(out.startsWith('before ') && out.endsWith(' after'), form).toBe(true);
      expect(leaks(out, SECRET), `${form} → ${out}`).toBe(false);
      expect(out, form).toMatch(/\*{20,}/);
    }
  });

  it('cover the base64 inside a Basic value and the plain text it encodes', () => {
    const value = formatCredential('Basic x-access-token:{}', 'ghs_abcdefghijklmnop');
    const scrubber = SecretScrubber.forCredential('ghs_abcdefghijklmnop', value);
    for (const form of [value, value.slice(6), 'x-access-token:ghs_abcdefghijklmnop', 'ghs_abcdefghijklmnop']) {
      expect(scrubber.scrubText(`a ${form} b`)).not.toContain(form);
    }
  });

  it('leave ordinary text alone and never return the caller buffer written', () => {
    const scrubber = SecretScrubber.forCredential(SECRET, `Bearer ${SECRET}`);
    const clean = Buffer.from('{"id": "msg_1", "content": "hello"}');
    expect(scrubber.scrubBuffer(clean)).toBe(clean);
    const dirty = Buffer.from(`x${SECRET}y`);
    const copy = Buffer.from(dirty);
    scrubber.scrubBuffer(dirty);
    expect(dirty.equals(copy)).toBe(true);
  });

  it('drop derived forms too short to be safe but keep the raw secret', () => {
    const p = scrubPatterns(['abc']).map((b) => b.toString());
    expect(p).toContain('abc');
    expect(p.every((s) => s === 'abc' || s.length >= 6)).toBe(true);
  });
});

describe('scrub stream', () => {
  const value = `Bearer ${SECRET}`;
  const scrubber = SecretScrubber.forCredential(SECRET, value);

  it('catches a secret split at every chunk boundary, in every form', async () => {
    for (const form of secretForms(SECRET, value)) {
      const body = Buffer.from(`data: {"echo": "${form}"}\n\n`);
      for (let cut = 1; cut < body.length; cut++) {
        const out = await run(scrubber.createStream(), [body.subarray(0, cut), body.subarray(cut)]);
        expect(out.length).toBe(body.length);
        expect(leaks(out.toString(), SECRET), `${form} cut at ${cut}`).toBe(false);
      }
    }
  });

  it('equals whole-buffer scrubbing for any chunking (property)', async () => {
    const forms = secretForms(SECRET, value);
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.oneof(fc.constantFrom(...forms), fc.string({ maxLength: 30 })), { maxLength: 8 }),
        fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 20 }),
        async (parts, sizes) => {
          const body = Buffer.from(parts.join(''));
          const chunks: Buffer[] = [];
          for (let at = 0, i = 0; at < body.length; i++) {
            const n = sizes[i % sizes.length]!;
            chunks.push(body.subarray(at, at + n));
            at += n;
          }
          const out = await run(scrubber.createStream(), chunks);
          expect(out.equals(scrubber.scrubBuffer(body))).toBe(true);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('equals whole-buffer scrubbing with chunks longer than a pattern after a held tail (property)', async () => {
    const forms = secretForms(SECRET, value);
    const prefixes = forms.flatMap((f) => [f.slice(0, 1), f.slice(0, Math.floor(f.length / 2)), f.slice(0, f.length - 1)]);
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.oneof(fc.constantFrom(...forms), fc.constantFrom(...prefixes), fc.string({ maxLength: 200 })), { maxLength: 12 }),
        fc.array(fc.integer({ min: 1, max: 400 }), { minLength: 1, maxLength: 20 }),
        async (parts, sizes) => {
          const body = Buffer.from(parts.join(''));
          const chunks: Buffer[] = [];
          for (let at = 0, i = 0; at < body.length; i++) {
            const n = sizes[i % sizes.length]!;
            chunks.push(body.subarray(at, at + n));
            at += n;
          }
          const out = await run(scrubber.createStream(), chunks);
          expect(out.equals(scrubber.scrubBuffer(body))).toBe(true);
        },
      ),
      { numRuns: 400 },
    );
  });

  it('passes an SSE event on at once, holding back only a possible start of the secret', async () => {
    const stream = scrubber.createStream();
    const seen: string[] = [];
    stream.on('data', (c: Buffer) => seen.push(c.toString()));
    stream.write(Buffer.from('event: a\ndata: {"x": 1}\n\n'));
    await new Promise((r) => setImmediate(r));
    expect(seen.join('')).toBe('event: a\ndata: {"x": 1}\n\n');
    // A chunk ending in what could start the secret: that part waits, the rest goes.
    stream.write(Buffer.from(`data: ${SECRET.slice(0, 10)}`));
    await new Promise((r) => setImmediate(r));
    expect(seen.join('')).toBe('event: a\ndata: {"x": 1}\n\ndata: ');
    stream.write(Buffer.from(`${SECRET.slice(10)}\n\n`));
    await new Promise((r) => setImmediate(r));
    expect(seen.join('')).toBe(`event: a\ndata: {"x": 1}\n\ndata: ${'*'.repeat(SECRET.length)}\n\n`);
    stream.end();
  });

  it('marks and holds exactly what a naive search over every pattern does, for small chunks and large ones', () => {
    const patterns = scrubPatterns([SECRET, value]);
    const own = new SecretScrubber(patterns);
    const naiveMask = (buf: Buffer): number[] => {
      const marked = new Array<number>(buf.length).fill(0);
      for (const p of patterns) for (let at = buf.indexOf(p); at !== -1; at = buf.indexOf(p, at + 1)) marked.fill(1, at, at + p.length);
      return marked;
    };
    const naiveHeld = (buf: Buffer): number => {
      let held = 0;
      for (const p of patterns) {
        for (let n = Math.min(p.length - 1, buf.length); n > held; n--) {
          if (buf.subarray(buf.length - n).equals(p.subarray(0, n))) {
            held = n;
            break;
          }
        }
      }
      return held;
    };
    // Text made of pieces of the patterns (whole, cut short, cut at the start) and other bytes.
    const piece = fc.oneof(
      fc.constantFrom(...patterns).chain((p) => fc.tuple(fc.nat(p.length), fc.nat(p.length)).map(([a, b]) => p.subarray(Math.min(a, b), Math.max(a, b)))),
      fc.uint8Array({ maxLength: 40 }).map((a) => Buffer.from(a)),
      fc.constantFrom(Buffer.from('"data": '), Buffer.from('\u00e9\n'), Buffer.alloc(5000, 'q')),
    );
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 12 }), (pieces) => {
        const buf = Buffer.concat(pieces);
        const mask = own.markMatches(buf);
        expect(mask === undefined ? new Array<number>(buf.length).fill(0) : [...mask]).toEqual(naiveMask(buf));
        expect(own.heldTailLength(buf)).toBe(naiveHeld(buf));
      }),
      { numRuns: 400 },
    );
  });

  it('masks overlapping occurrences of a secret that overlaps itself', () => {
    const own = new SecretScrubber(scrubPatterns(['xyzxyzxyz']));
    expect(own.scrubBuffer(Buffer.from('a xyzxyzxyzxyz b')).toString()).toBe(`a ${'*'.repeat(12)} b`);
  });

  it('holds at most maxPatternLength - 1 bytes', () => {
    const worst = Buffer.from(value.slice(0, -1));
    expect(scrubber.heldTailLength(worst)).toBe(worst.length);
    expect(scrubber.heldTailLength(worst)).toBeLessThan(scrubber.maxPatternLength);
    expect(scrubber.heldTailLength(Buffer.from('no secret here\n'))).toBe(0);
  });
});

describe('compressed bodies', () => {
  const body = Buffer.from(`{"echo": "Bearer ${SECRET}"}`.repeat(50));

  it.each([
    ['gzip', zlib.gzipSync(body)],
    ['x-gzip', zlib.gzipSync(body)],
    ['br', zlib.brotliCompressSync(body)],
    ['deflate', zlib.deflateSync(body)],
    ['deflate', zlib.deflateRawSync(body)],
    ['gzip, br', zlib.brotliCompressSync(zlib.gzipSync(body))],
  ])('%s is decoded, then scrubbed', async (coding, encoded) => {
    const chain = decodersFor(coding)!;
    const scrubber = SecretScrubber.forCredential(SECRET, `Bearer ${SECRET}`);
    const chunks = [...Array(Math.ceil(encoded.length / 7)).keys()].map((i) => encoded.subarray(i * 7, i * 7 + 7));
    const out: Buffer[] = [];
    await pipeline(
      Readable.from(chunks, { objectMode: false }),
      ...(chain as unknown as [NodeJS.ReadWriteStream]),
      scrubber.createStream(),
      new Writable({
        write(c: Buffer, _e, cb) {
          out.push(c);
          cb();
        },
      }),
    );
    const text = Buffer.concat(out).toString();
    expect(text.length).toBe(body.length);
    expect(text).not.toContain(SECRET);
    expect(text).toContain('"echo": "*****');
  });

  it('refuses codings it cannot decode, and asks upstream only for decodable ones', () => {
    expect(decodersFor('zstd')).toBeUndefined();
    expect(decodersFor('gzip, compress')).toBeUndefined();
    expect(decodersFor('compress, gzip, br')).toBeUndefined();
    expect(decodersFor('identity')).toEqual([]);
    expect(acceptableEncodings('gzip, deflate, br, zstd')).toBe('gzip, deflate, br');
    expect(acceptableEncodings('zstd')).toBe('identity');
    expect(acceptableEncodings('br;q=0, gzip;q=0.5')).toBe('gzip;q=0.5');
    expect(acceptableEncodings(undefined)).toBe('identity');
  });
});
